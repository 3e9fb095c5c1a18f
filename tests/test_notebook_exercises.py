"""The notebooks' exercises follow one pattern, and their checks test the student's own answer.

Every exercise is a student's stub (``my_...``), a hidden solution (``solution_...``) and a check that calls
``answer(my_..., solution_..., "my_...")``: the structure is checked on every notebook, the behaviour (a wrong answer
fails, a right one passes, the stub falls back on the solution) by running notebook 01 with answers put in.
"""

from __future__ import annotations

import ast
import contextlib
import io
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
TITLE = "# @title Solution"
# the exercises the notebooks are known to have (a notebook may gain more; none may lose one)
AT_LEAST = {"01": 3, "02": 2, "03": 2, "04": 3, "05": 2, "06": 3, "07": 3, "08": 3, "09": 2, "10": 3}


def python(source: str) -> str:
    """A code cell's source with its IPython magics and shell lines (% or !) replaced by ``pass``."""
    return "\n".join(line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())


def parse(source: str) -> ast.Module:
    """A code cell's AST, IPython magics and shell lines left out."""
    return ast.parse(python(source))


def assigned(tree: ast.AST) -> dict[str, ast.AST]:
    """Names bound at any depth (assignments, defs, imports, loop targets) -> the node that binds them."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.For | ast.NamedExpr):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        names[name.id] = node
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                names[(alias.asname or alias.name).split(".")[0]] = node
    return names


def is_ellipsis(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is Ellipsis


def is_stub_node(node: ast.AST) -> bool:
    """``my_x = ...`` or a def whose body is only ``...`` / ``pass`` / a docstring."""
    if isinstance(node, ast.Assign | ast.AnnAssign):
        return node.value is not None and is_ellipsis(node.value)
    if isinstance(node, ast.FunctionDef):
        return all(isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                                               and (is_ellipsis(s.value) or isinstance(s.value.value, str)))
                   for s in node.body)
    return False


def answer_calls(tree: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
            and n.func.id == "answer"]


def exercises(nb) -> list[tuple[int, int, int]]:
    """(stub, solution, check) cell indices of every hidden-solution cell. The check is the first later code cell that
    calls answer() on one of the stub's my_ names: cells may stand between (a prediction asked before the run that
    measures it), and the cell right after the solution stands in when none does (the structure test then fails)."""
    found = []
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code" or not c.source.lstrip().startswith(TITLE):
            continue
        mine = {n for n in assigned(parse(nb.cells[i - 1].source))} if nb.cells[i - 1].cell_type == "code" else set()
        mine = {n for n in mine if n.startswith("my_")}
        later = [j for j in range(i + 1, len(nb.cells)) if nb.cells[j].cell_type == "code"
                 and any(isinstance(student, ast.Name) and student.id in mine
                         for call in answer_calls(parse(nb.cells[j].source))
                         for student in [*call.args, *(k.value for k in call.keywords)][:1])]
        found.append((i - 1, i, later[0] if later else i + 1))
    return found


def code_cells(nb):
    return [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_exercise_is_stub_solution_check(path):
    nb = nbformat.read(path, as_version=4)
    for stub_i, sol_i, check_i in exercises(nb):
        where = f"{path.name} cell {sol_i}"
        assert 0 < stub_i and check_i < len(nb.cells), f"{where}: a solution needs a stub before and a check after"
        stub, sol, chk = nb.cells[stub_i], nb.cells[sol_i], nb.cells[check_i]
        assert sol.metadata.get("cellView") == "form" and sol.metadata.get("jupyter", {}).get("source_hidden"), \
            f"{where}: the solution cell is not hidden"
        assert nb.cells[stub_i - 1].cell_type == "markdown" and "Exercise" in nb.cells[stub_i - 1].source, \
            f"{where}: the stub is not preceded by the exercise's markdown"
        assert stub.cell_type == "code" and chk.cell_type == "code", f"{where}: stub and check must be code cells"
        stub_tree, sol_tree, check_tree = parse(stub.source), parse(sol.source), parse(chk.source)
        mine = {name: node for name, node in assigned(stub_tree).items() if name.startswith("my_")}
        assert mine, f"{where}: the cell before the solution assigns no my_ name"
        assert all(is_stub_node(node) for node in mine.values()), f"{where}: the student's cell is not a stub (...)"
        solutions = {name for name in assigned(sol_tree) if name.startswith("solution_")}
        assert solutions, f"{where}: the solution assigns no solution_ name"
        assert not [n for n in assigned(sol_tree) if n.startswith("my_")], f"{where}: the solution assigns a my_ name"
        assert "answer(" in chk.source, f"{where}: the check after the solution calls no answer(...)"
        checked = set()
        for call in answer_calls(check_tree):
            given = [*call.args, *(k.value for k in call.keywords)]
            assert len(given) >= 2, f"{where}: answer() takes the student's answer and the solution"
            student, solved = given[0], given[1]
            assert isinstance(student, ast.Name) and student.id in mine, f"{where}: answer() is not given a my_ name"
            assert isinstance(solved, ast.Name) and solved.id in solutions, \
                f"{where}: answer() is not given the solution's solution_ name"
            checked.add(student.id)
        assert checked == set(mine), f"{where}: the check does not take {set(mine) - checked} through answer()"
        through_answer = {id([*call.args, *(k.value for k in call.keywords)][1]) for call in answer_calls(check_tree)}
        assert all(id(n) in through_answer for n in ast.walk(check_tree)
                   if isinstance(n, ast.Name) and n.id.startswith("solution_")), \
            f"{where}: the check uses a solution_ name outside answer(): it must test the student's answer"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_only_the_stubs_assign_my_names(path):
    """Nothing else (a solution, a check, a later cell) overwrites what the student wrote."""
    nb = nbformat.read(path, as_version=4)
    stubs = {stub for stub, _, _ in exercises(nb)}
    for i, cell in code_cells(nb):
        if i not in stubs:
            assert not [n for n in assigned(parse(cell.source)) if n.startswith("my_")], f"{path.name} cell {i}"


@pytest.mark.parametrize("prefix", sorted(AT_LEAST))
def test_notebooks_keep_their_exercises(prefix):
    (path,) = [p for p in NOTEBOOKS if p.name.startswith(f"{prefix}_")]
    assert len(exercises(nbformat.read(path, as_version=4))) >= AT_LEAST[prefix]


# ---- behaviour: notebook 01 run with answers put into the students' cells --------------------------------------------
NB01 = next(p for p in NOTEBOOKS if p.name.startswith("01_"))
WRONG_01 = {  # plausible mistakes, one per exercise
    "my_first_single": "my_first_single = 400  # guessed where the modes merge",
    "my_step": ("def my_step(x_t, eps, alpha_t, sigma_t, alpha_s, sigma_s, eta, w):\n"
                "    x0_hat = (x_t - sigma_t * eps) / alpha_t\n"
                "    rho = eta * sigma_s / sigma_t * (1 - alpha_t**2 / alpha_s**2) ** 0.5\n"
                "    return alpha_s * x0_hat + sigma_s * eps + rho * w  # forgot to take rho out of the old noise\n"),
    "my_noise": ("def my_noise(x_t, x_s, eps, alpha_t, sigma_t, alpha_s, sigma_s):\n"
                 "    x0_hat = (x_t - sigma_t * eps) / alpha_t\n"
                 "    return (x_s - alpha_s * x0_hat - sigma_s * eps) / sigma_s  # not Eq. 8\n"),
}


def run_notebook(path: Path, answers: dict[str, str]) -> dict[str, str]:
    """Run a notebook's code cells in one namespace (in its folder, at the environment's sizes) with the students'
    cells replaced by ``answers`` (my_ name -> source); returns, per my_ name, "failed: <message>" if its check raised
    ExerciseFailed, else the check's printout."""
    import matplotlib

    from sdelab.exercises import ExerciseFailed
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nb = nbformat.read(path, as_version=4)
    checks = {check: stub for stub, _, check in exercises(nb)}
    stub_names = {stub: next(n for n in assigned(parse(nb.cells[stub].source)) if n.startswith("my_"))
                  for stub in checks.values()}
    namespace, results = {"__name__": "__notebook__"}, {}
    for i, cell in code_cells(nb):
        source = python(cell.source)
        if i in stub_names and stub_names[i] in answers:
            source = answers[stub_names[i]]
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(source, f"<{path.name} cell {i}>", "exec"), namespace)
        except ExerciseFailed as failure:
            results[stub_names[checks[i]]] = f"failed: {failure}"
            continue
        finally:
            plt.close("all")
        if i in checks:
            results[stub_names[checks[i]]] = out.getvalue()
    return results


@pytest.fixture
def smoke_env(tmp_path, monkeypatch):
    monkeypatch.setenv("CI", "1")
    monkeypatch.setenv("SDELAB_FIGURES", str(tmp_path))
    monkeypatch.setenv("SDELAB_SD_MODEL", "none")
    monkeypatch.chdir(NB01.parent)
    return tmp_path


@pytest.mark.slow
def test_notebook_01_checks_test_the_students_answers(smoke_env):
    nb = nbformat.read(NB01, as_version=4)
    solutions = {next(n for n in assigned(parse(nb.cells[stub].source)) if n.startswith("my_")):
                 nb.cells[sol].source.replace("solution_", "my_") for stub, sol, _ in exercises(nb)}
    assert set(solutions) == set(WRONG_01)

    wrong = run_notebook(NB01, WRONG_01)
    assert set(wrong) == set(WRONG_01)
    assert all(result.startswith("failed: ") for result in wrong.values()), wrong

    right = run_notebook(NB01, solutions)  # the solutions' code under the students' names
    for name, result in right.items():
        assert f"checking your {name}" in result and "correct: " in result, (name, result)

    untouched = run_notebook(NB01, {})  # the stubs as shipped: the checks run on the hidden solutions
    for name, result in untouched.items():
        assert f"{name} is not answered yet" in result and "correct: " in result, (name, result)
