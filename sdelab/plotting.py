"""Figures shared by the notebooks: where they are saved, and the line that says what produced them."""

from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path

import torch


def machine() -> str:
    """A short description of the machine: the GPU if one is used, else the CPU and its core count."""
    if torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)}"
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu}, {os.cpu_count()} cores"


def figure_dir() -> Path:
    """``$SDELAB_FIGURES`` if set; a temporary folder in CI (smoke runs never overwrite the committed
    figures); else the repository's ``figures/`` when run from notebooks/, else ``./figures``."""
    if os.environ.get("SDELAB_FIGURES"):
        path = Path(os.environ["SDELAB_FIGURES"])
    elif os.environ.get("CI"):
        path = Path(tempfile.gettempdir()) / "sdelab-figures"
    elif Path("../figures").is_dir() and Path("../sdelab").is_dir():
        path = Path("../figures")
    else:
        path = Path("figures")
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_figure(fig, name: str, setup: str) -> Path:
    """Save ``fig`` as ``figures/<name>.png`` with a footer naming its setup (model, steps, seed) and machine."""
    text = f"{setup} | {machine()} | torch {torch.__version__}"
    fig.text(0.01, -0.02, text, fontsize=7, color="0.35", ha="left", va="top")  # below the axes labels
    path = figure_dir() / f"{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Description": text})
    return path
