"""The repository's promises: notebook headers, one repository URL, README commands == CI."""

import re

import nbformat
import pytest

from tools.notebooks import ROOT, badge, colab_url, readme_table, repo_url

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# toy, digits and DragBench (shapes) notebooks are committed with the outputs of a full run (README,
# "Notebooks"; Makefile, figures)
FULL_RUN = [p for p in NOTEBOOKS if p.name[:2] in {"01", "02", "03", "04", "05", "06", "07", "08", "09", "10"}]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_header(path):
    nb = nbformat.read(path, as_version=4)
    title, install, params = nb.cells[:3]
    assert title.cell_type == "markdown" and title.source.startswith("# ")
    assert badge(path.name) in title.source and "What you will learn" in title.source
    assert "google.colab" in install.source and f"git+{repo_url()}" in install.source
    assert "parameters" in params.metadata.get("tags", []) and 'os.environ.get("CI")' in params.source


@pytest.mark.parametrize("path", FULL_RUN, ids=lambda p: p.name)
def test_full_run_notebooks_carry_outputs_without_errors(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells[3:] if c.cell_type == "code"]
    assert code and all(c.execution_count for c in code), "execute the notebook at full size before committing"
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(o.output_type == "display_data" for o in outputs), "figures should be shown"


def test_readme_lists_every_notebook_with_colab_links():
    readme = (ROOT / "README.md").read_text()
    assert readme_table() in readme, "run: python tools/notebooks.py"
    for path in NOTEBOOKS:
        assert colab_url(path.name) in readme


def test_repository_url_is_written_nowhere_else():
    # every GitHub URL in the README and notebooks is derived from pyproject's [project.urls] Repository
    owner_repo = repo_url().removeprefix("https://github.com/")
    for path in [ROOT / "README.md", *NOTEBOOKS]:
        text = path.read_text()
        links = re.findall(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob", text)
        links += re.findall(r"git\+https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?[\\\"'\s]", text)
        assert links, f"{path.name} links nowhere"
        for found in links:
            assert found == owner_repo, f"{path.name} names {found}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r"```(?:bash|sh)\n(make test)\n```", readme).group(1)
    assert re.search(rf"^{command}$", ci, re.M)


def test_figures_are_the_ones_notebooks_save():
    # every committed figure has a stable name that some notebook, module or tool (tools/*.py) saves
    sources = "".join(c.source for p in NOTEBOOKS for c in nbformat.read(p, as_version=4).cells) + "".join(
        p.read_text() for p in [*(ROOT / "sdelab").rglob("*.py"), *(ROOT / "tools").glob("*.py")])
    for fig in (ROOT / "figures").glob("*.png"):
        assert f'"{fig.stem}"' in sources, f"figures/{fig.name} is not produced by any notebook, module or tool"


def test_nothing_points_at_files_that_do_not_ship():
    # the design notes behind the project are not part of it: cite the paper or docs/ instead
    paths = [ROOT / "README.md", *NOTEBOOKS, *(ROOT / "docs").glob("*.md")]
    paths += [p for d in ("sdelab", "tests", "benchmarks", "tools") for p in (ROOT / d).rglob("*.py")]
    for path in paths:
        text = path.read_text()
        if path.name == "test_repo.py":
            continue
        assert not re.search(r"\bSPEC\b|DESIGN\.md", text), f"{path.relative_to(ROOT)} cites a file that does not ship"
    for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "sdelab").rglob("*.py")]:
        for doc in re.findall(r"docs/[\w.-]+\.md", path.read_text()):
            assert (ROOT / doc).is_file(), f"{path.relative_to(ROOT)} cites {doc}, which does not exist"
