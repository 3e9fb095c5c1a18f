"""Figures shared by the notebooks: how they are saved (with the line that says what produced them) and the plots
that several notebooks draw."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

# ---- the course's conventions: one colour per sampler, one mask convention, one ink polarity ------------------------
# Warm colours for the SDE family (noise injected), cool ones for the ODE family (deterministic); editors take their
# sampler's colour (SDE-Drag runs Cycle-SDE, ODE-Drag the ODE). Every notebook and figure reads them from here.
COLOURS = {
    "ode": "#1f77b4",            # blue: the probability-flow ODE (DDIM, eta = 0), Eq. 5
    "ode-inversion": "#17becf",  # cyan: the ODE started from a DDIM-inverted latent
    "sde": "#d62728",            # red: the SDE (DDPM, eta = 1, fresh noise), Eq. 4
    "cycle-sde": "#ff7f0e",      # orange: Cycle-SDE (Eqs. 7-8, the stored chain's noises)
    "ode-drag": "#1f77b4",       # ODE-Drag: the ODE's colour
    "sde-drag": "#ff7f0e",       # SDE-Drag: Cycle-SDE's colour
    "copy-paste": "#9467bd",     # purple: the edit alone, before any sampling
    "input": "0.3",              # dark grey: the unedited input
    "truth": "#2ca02c",          # green: the ground truth (the shapes world)
}
DIGIT_CMAP = "gray_r"  # digits (ink = 1 in the arrays) are drawn as dark ink on white paper
MASK_CMAP = "gray"     # masks are drawn white where the edit may change the picture (editable, a hole), black elsewhere
OUTSIDE_SHADE = 0.35   # mask_overlay: the brightness kept outside the editable region

FOOTER_POINTS = 7  # font size of the provenance footer
FOOTER_GAP = 0.06  # inches between the lowest drawn element (tick labels, axis label) and the footer
DPI = 110  # of the saved PNGs


def machine() -> str:
    """A short description of the machine: the GPU if one is used, else the CPU and its core count."""
    if torch.cuda.is_available():
        return f"GPU {torch.cuda.get_device_name(0)}"
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu}, {os.cpu_count()} cores"


def _wrap(artist, text: str, width_px: float, renderer) -> str:
    """``text`` broken at spaces so that no rendered line of ``artist`` is wider than ``width_px`` (greedy)."""
    lines, line = [], ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        artist.set_text(candidate)
        if line and artist.get_window_extent(renderer).width > width_px:
            lines.append(line)
            candidate = word
        line = candidate
    return "\n".join([*lines, line])


def add_footer(fig, text: str):
    """Write ``text`` under everything the figure draws, wrapped to the drawing's width; returns the Text artist.

    Placed below the lowest tick label or axis label (never over them) and never wider than the axes and
    their labels, so a long setup line adds lines at the bottom instead of blank margins at the side.
    """
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.get_tightbbox(renderer)  # inches: everything drawn so far
    width, height = fig.get_size_inches()
    footer = fig.text(box.x0 / width, (box.y0 - FOOTER_GAP) / height, "", fontsize=FOOTER_POINTS, color="0.35",
                      ha="left", va="top")
    footer.set_text(_wrap(footer, text, box.width * fig.dpi, renderer))
    return footer


def save_figure(fig, name: str, setup: str, directory) -> Path:
    """Save ``fig`` as ``directory/<name>.png`` (the folder created if needed) with a footer naming its setup (model,
    steps, seed) and machine."""
    text = f"{setup} | {machine()} | torch {torch.__version__}"
    shown_dpi = fig.dpi
    fig.set_dpi(DPI)  # wrap the footer at the resolution it is saved at (glyph widths do not scale exactly)
    add_footer(fig, text)
    path = Path(directory) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight", metadata={"Description": text})
    fig.set_dpi(shown_dpi)
    return path


def colour(name: str) -> str:
    """The course's colour of a sampler, editor or role (``COLOURS``; e.g. "ode", "cycle-sde", "sde-drag")."""
    key = name.lower().replace("_", "-")
    if key not in COLOURS:
        raise ValueError(f"name must be one of {sorted(COLOURS)}, got {name!r}")
    return COLOURS[key]


def _show_grey(ax, x, cmap: str, title: str | None) -> None:
    """One grey-level picture (an array or tensor that squeezes to (h, w), values in [0, 1]) in ``cmap``, no ticks."""
    x = x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else x
    ax.imshow(x.squeeze().astype(float), cmap=cmap, vmin=0, vmax=1)
    ax.set(xticks=[], yticks=[])
    if title is not None:
        ax.set_title(title, fontsize=8)


def show_digit(ax, x, title: str | None = None) -> None:
    """A digit (an (h, w) or (1, h, w) array or tensor, ink = 1) as dark ink on white (``DIGIT_CMAP``), no ticks."""
    _show_grey(ax, x, DIGIT_CMAP, title)


def show_mask(ax, mask, title: str | None = None) -> None:
    """A mask ((h, w), true or 1 = editable) drawn white where the edit may change the picture, black elsewhere."""
    _show_grey(ax, mask, MASK_CMAP, title)


def mask_overlay(image, mask):
    """The picture (an (h, w) or (h, w, c) array in [0, 1]) with what lies outside the editable region (mask false)
    dimmed to ``OUTSIDE_SHADE``: the editable region stays as bright as it was."""
    import numpy as np

    image, mask = np.asarray(image, dtype=float), np.asarray(mask, dtype=bool)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask must have the picture's height and width {image.shape[:2]}, got {mask.shape}")
    keep = mask if image.ndim == 2 else mask[..., None]
    return np.where(keep, image, OUTSIDE_SHADE * image)


def difference_plot(ax, differences: dict, xlabel: str, colour: str | None = None) -> None:
    """Paired differences (name -> ``sdelab.eval.bootstrap.Estimate``) as points with their 95% intervals, one row
    each, against a line at 0: an interval that excludes 0 is a difference, whatever the marginal intervals show.
    Every row in ``colour`` if given (e.g. the sampler all rows compare, ``COLOURS["sde"]``); else a name that is a
    key of ``COLOURS`` (e.g. "sde") takes its colour, any other dark grey."""
    names = list(differences)
    if not names:
        raise ValueError("differences must name at least one paired difference")
    for row, name in enumerate(names):
        e = differences[name]
        c = colour or COLOURS.get(name.lower(), "0.2")
        ax.errorbar([e.value], [row], xerr=[[e.value - e.low], [e.high - e.value]], fmt="o", color=c, capsize=3)
    ax.axvline(0, color="0.5", lw=1, ls="--")
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(-0.6, len(names) - 0.4)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)


def image_comparison(pictures: dict, reference: str, differences: list[str], scale: float = 2.5):
    """One row: each picture (a (1, c, H, W) image in [0, 1]; one channel drawn as ``DIGIT_CMAP``), then
    |picture - reference| (mean over channels) for every name in ``differences``, on one colour scale with its colour
    bar; returns the figure."""
    import matplotlib.pyplot as plt

    for name in [reference, *differences]:
        if name not in pictures:
            raise ValueError(f"{name!r} is not among the pictures {list(pictures)}")
    maps = {name: (pictures[name] - pictures[reference])[0].abs().mean(0).float().cpu() for name in differences}
    vmax = max(float(m.max()) for m in maps.values()) or 1.0
    fig, axes = plt.subplots(1, len(pictures) + len(maps), figsize=(scale * (len(pictures) + len(maps)), scale + 0.6))
    for ax, (name, x) in zip(axes, pictures.items(), strict=False):
        ax.imshow(x[0].permute(1, 2, 0).float().cpu().numpy().squeeze(), cmap=DIGIT_CMAP, vmin=0, vmax=1)
        ax.set_title(name, fontsize=9)
    for ax, (name, m) in zip(axes[len(pictures):], maps.items(), strict=True):
        image = ax.imshow(m.numpy(), cmap="magma", vmin=0, vmax=vmax)
        ax.set_title(f"|{name} - {reference}|\nmean {m.mean():.1e}", fontsize=9)
    fig.colorbar(image, ax=list(axes[len(pictures):]), fraction=0.025)
    for ax in axes:
        ax.set(xticks=[], yticks=[])
    return fig


def digit_columns(columns: list[tuple[str, object]], k: int, cell: tuple[float, float], pad: float = 0.4):
    """A grid of small grey-level images, ink dark: k rows, one titled column per (title, images (n, 1, h, w) in
    [0, 1], tensor or array). cell: inches per image (width, height); pad: extra inches of height.
    Returns (figure, axes (k, len(columns)))."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(k, len(columns), figsize=(cell[0] * len(columns), cell[1] * k + pad), squeeze=False)
    for j, (title, images) in enumerate(columns):
        axes[0, j].set_title(title, fontsize=8)
        for i in range(k):
            x = images[i, 0]
            show_digit(axes[i, j], x)
    return fig, axes


def figure_slider(draw, **controls):
    """The notebooks' sliders: ipywidgets controls above an image of ``draw(**values)``, redrawn when one changes.

    ``draw`` takes the controls' values as keyword arguments and returns a matplotlib figure (closed once
    rendered). The figure is an ``ipywidgets.Image``, not the Output widget of ``interact``: executing a notebook
    whose cells write into Output widgets can hang nbclient (jupyter/nbclient#312), and so ``make figures`` and CI.
    Controls redraw on release (``continuous_update=False``).
    """
    import io

    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    if not controls:
        raise ValueError("figure_slider needs at least one control, e.g. t=IntSlider(...)")

    def render() -> bytes:
        fig = draw(**{name: control.value for name, control in controls.items()})
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
        plt.close(fig)
        return buffer.getvalue()

    for name, control in controls.items():
        if not control.description:
            control.description = name
        if hasattr(control, "continuous_update"):
            control.continuous_update = False
    image = widgets.Image(value=render(), format="png")
    for control in controls.values():
        control.observe(lambda _: setattr(image, "value", render()), names="value")
    return widgets.VBox([widgets.HBox(list(controls.values())), image])


ROUNDTRIP_STYLES = {m: (COLOURS[m], marker) for m, marker in [("ode", "o"), ("cycle-sde", "s"), ("sde", "d")]}


def roundtrip_plot(ax, errors, title: str) -> None:
    """``sdelab.edit.roundtrip_errors``'s errors against steps on log-log axes: float32 filled and solid, float64
    hollow and dashed (both visible)."""
    from matplotlib.ticker import NullFormatter, NullLocator

    from sdelab.samplers import sampler

    for method in errors.methods:
        color, marker = ROUNDTRIP_STYLES[method]
        for dtype in errors.dtypes:
            hollow = dtype == "float64"
            look = dict(ls="--", markerfacecolor="none", markersize=10) if hollow else dict(markersize=5)
            ax.plot(errors.steps, errors.curve(method, dtype), marker=marker, color=color,
                    label=f"{sampler(method).label}, {dtype}", **look)
    ax.set(xscale="log", yscale="log", xlabel="steps from t0 to 0", ylabel="max |x0_hat - x0|", title=title)
    ax.set_xticks(errors.steps, [str(s) for s in errors.steps])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="major", color="0.9")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
