"""The inpainting and image-to-image figures follow the course's conventions: masks white where editable, each
sampler's colour, the paired differences drawn against 0."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from sdelab.eval.bootstrap import Estimate  # noqa: E402
from sdelab.plotting import COLOURS  # noqa: E402
from sdelab.reproduce.figures import (  # noqa: E402
    i2i_differences_figure,
    i2i_examples_figure,
    inpainting_differences_figure,
    inpainting_examples_figure,
)
from sdelab.reproduce.i2i import EDITS, I2IDifference, I2IResult  # noqa: E402
from sdelab.reproduce.inpainting import MASKS, InpaintingDifference, InpaintingResult  # noqa: E402


def drawn(ax) -> np.ndarray:
    """The RGB colours an axes' one image shows, (h, w, 3)."""
    image = ax.get_images()[0]
    return image.to_rgba(image.get_array())[..., :3]


def errorbar_colours(ax) -> set:
    return {to_rgba(c.lines[0].get_color()) for c in ax.containers} | {
        to_rgba(cap.get_markeredgecolor()) for c in ax.containers for cap in c.lines[1]}


def test_inpainting_examples_draw_the_hole_white_and_the_ink_dark():
    gen = torch.Generator().manual_seed(0)
    k, steps = 2, 5
    examples = {"input": torch.zeros(k, 1, 16, 16)}
    examples["input"][:, :, 4:12, 7:9] = 1.0  # a stroke of ink
    for i, name in enumerate(MASKS):
        mask = torch.zeros(k, 1, 16, 16, dtype=torch.bool)
        mask[:, :, : 4 * (i + 1)] = True
        examples[f"mask_{name}"] = mask
        for sampler in ("ode", "sde"):
            examples[f"{sampler}_{name}_{steps}"] = torch.rand(k, 1, 16, 16, generator=gen)
    fig = inpainting_examples_figure(examples, steps, k=k)
    axes = np.array(fig.axes).reshape(k, -1)
    ink = drawn(axes[0, 0])
    assert ink[8, 7].max() < 0.1 and ink[0, 0].min() > 0.9  # dark ink on white paper
    hole = drawn(axes[0, 1])
    assert hole[0, 0].min() > 0.9 and hole[15, 0].max() < 0.1  # the hole (rows 0-3) white, the kept region black
    assert "mask" in axes[0, 1].get_title()
    assert to_rgba(axes[0, 2].title.get_color()) == to_rgba(COLOURS["ode"])
    assert to_rgba(axes[0, 3].title.get_color()) == to_rgba(COLOURS["sde"])
    plt.close(fig)


def test_inpainting_differences_are_drawn_in_the_sde_colour_against_zero():
    e = Estimate(-0.08, -0.14, -0.03)
    result = InpaintingResult([], [InpaintingDifference(m, k, {"fd_pca": e, "class_kept": e}) for m in MASKS
                                   for k in (25, 50)], {})
    fig = inpainting_differences_figure(result)
    for ax in fig.axes:
        assert len(ax.containers) == 4
        assert errorbar_colours(ax) == {to_rgba(COLOURS["sde"])}
        assert any(np.allclose(line.get_xdata(), 0) for line in ax.get_lines())  # the line at 0
    plt.close(fig)


def test_i2i_figures_take_each_samplers_colour_and_draw_the_mask_white():
    e = Estimate(0.01, -0.02, 0.04)
    t0s = (0.3, 0.6)
    differences = [I2IDifference(edit, name, t0, {k: e for k in ("fd_pca", "target", "distance")})
                   for t0 in t0s for edit, names in EDITS.items() for name in names if name != "ode"]
    fig = i2i_differences_figure(I2IResult([], differences, {}), {0.3: "SD 0.42"})
    pairs = [(edit, name) for edit, names in EDITS.items() for name in names if name != "ode"]
    axes = np.array(fig.axes).reshape(3, len(pairs))
    for col, (_, name) in enumerate(pairs):
        assert errorbar_colours(axes[0, col]) == {to_rgba(COLOURS[name])}
    assert [t.get_text() for t in axes[0, 0].get_yticklabels()] == ["t0=0.3 (SD 0.42)", "t0=0.6"]
    plt.close(fig)

    mask = torch.zeros(2, 1, 16, 16, dtype=torch.bool)
    mask[:, :, :8] = True
    examples = {"input": torch.zeros(2, 1, 16, 16), "mask": mask, "source": [1, 2], "target": [4, 5]}
    for t0 in t0s:
        for name in ("ode", "cycle-sde"):
            examples[f"diffedit_{name}_{t0}"] = torch.zeros(2, 1, 16, 16)
    fig = i2i_examples_figure(examples, t0s, k=2)
    axes = np.array(fig.axes).reshape(2, -1)
    shown = drawn(axes[0, 1])
    assert shown[0, 0].min() > 0.9 and shown[15, 0].max() < 0.1  # editable (rows 0-7) white
    assert to_rgba(axes[0, 3].title.get_color()) == to_rgba(COLOURS["cycle-sde"])
    plt.close(fig)
