"""Notebook header cells and the repository links, from the one URL in pyproject.toml.

``python tools/notebooks.py`` rewrites every notebook's badge and Colab install cell and the
README's notebook table so that they all point at [project.urls] Repository.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def repo_url() -> str:
    """The repository URL, defined once in pyproject.toml."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def colab_url(filename: str) -> str:
    owner_repo = repo_url().removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{owner_repo}/blob/main/notebooks/{filename}"


def badge(filename: str) -> str:
    return (f'<a href="{colab_url(filename)}" target="_parent"><img '
            'src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>')


def install_source() -> str:
    return (
        "# Runs only in Colab: installs sdelab (and keeps Colab's own CUDA torch).\n"
        "import sys\n"
        "if 'google.colab' in sys.modules:\n"
        f"    %pip install -q \"sdelab @ git+{repo_url()}\"")


def header_cells(filename: str, title: str, learn: list[str], parameters: str) -> list:
    """The three first cells every notebook has: title + badge, Colab install, tagged parameters."""
    intro = f"# {title}\n\n{badge(filename)}\n\n**What you will learn**\n\n" + "\n".join(f"- {x}" for x in learn)
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    return [nbformat.v4.new_markdown_cell(intro), nbformat.v4.new_code_cell(install_source()), params]


BADGE_RE = re.compile(r'<a href="https://colab\.research\.google\.com/github/[^"]*"[^>]*>.*?</a>', re.S)
INSTALL_RE = re.compile(r'"sdelab @ git\+[^"]*"')


def sync_notebook(path: Path) -> bool:
    """Point the badge and the install cell of one notebook at the repository URL; True if changed."""
    nb = nbformat.read(path, as_version=4)
    before = nbformat.writes(nb)
    nb.cells[0].source = BADGE_RE.sub(badge(path.name), nb.cells[0].source)
    nb.cells[1].source = INSTALL_RE.sub(f'"sdelab @ git+{repo_url()}"', nb.cells[1].source)
    if nbformat.writes(nb) != before:
        nbformat.write(nb, path)
        return True
    return False


def readme_table() -> str:
    rows = ["| notebook | what it shows | Colab |", "|---|---|---|"]
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        title = nb.cells[0].source.splitlines()[0].lstrip("# ").strip()
        rows.append(f"| [`{path.name}`](notebooks/{path.name}) | {title} | [open]({colab_url(path.name)}) |")
    return "\n".join(rows)


def sync_readme() -> bool:
    readme = ROOT / "README.md"
    text = readme.read_text()
    new = re.sub(r"(<!-- notebooks:start -->\n).*?(<!-- notebooks:end -->)",
                 lambda m: m.group(1) + readme_table() + "\n" + m.group(2), text, flags=re.S)
    if new != text:
        readme.write_text(new)
        return True
    return False


if __name__ == "__main__":
    changed = [p.name for p in sorted(NOTEBOOKS.glob("*.ipynb")) if sync_notebook(p)]
    if sync_readme():
        changed.append("README.md")
    print("updated:", ", ".join(changed) if changed else "nothing")
    sys.exit(0)
