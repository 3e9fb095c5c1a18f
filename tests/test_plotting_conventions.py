"""The course's conventions live in sdelab.plotting: one colour per sampler, white = editable, dark ink on white."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from sdelab.eval.bootstrap import Estimate  # noqa: E402
from sdelab.plotting import (  # noqa: E402
    COLOURS,
    colour,
    difference_plot,
    mask_overlay,
    show_digit,
    show_mask,
)


def test_editors_take_their_samplers_colour_and_families_differ():
    assert colour("SDE-Drag") == colour("cycle-sde") and colour("ode_drag") == colour("ode")
    assert len({COLOURS[m] for m in ["ode", "sde", "cycle-sde", "ode-inversion", "copy-paste", "truth"]}) == 6
    with pytest.raises(ValueError, match="name must be one of"):
        colour("dpm")


def test_ink_is_dark_and_editable_is_white():
    fig, (a, b) = plt.subplots(1, 2)
    digit = torch.zeros(1, 8, 8)
    digit[0, 2:6, 4] = 1  # a stroke of ink
    show_digit(a, digit)
    mask = np.zeros((8, 8), bool)
    mask[:4] = True  # the editable top half
    show_mask(b, mask)
    fig.canvas.draw()
    ink = a.images[0].to_rgba(a.images[0].get_array())
    assert ink[3, 4, :3].max() < 0.1 and ink[0, 0, :3].min() > 0.9  # dark stroke on white paper
    m = b.images[0].to_rgba(b.images[0].get_array())
    assert m[0, 0, :3].min() > 0.9 and m[7, 7, :3].max() < 0.1  # editable white, kept black
    plt.close(fig)


def test_mask_overlay_dims_only_outside():
    image = np.ones((4, 4, 3))
    mask = np.zeros((4, 4), bool)
    mask[1:3, 1:3] = True
    out = mask_overlay(image, mask)
    assert np.all(out[1:3, 1:3] == 1) and np.all(out[0] < 1)
    with pytest.raises(ValueError, match="mask must have"):
        mask_overlay(image, mask[:3])


def test_difference_plot_draws_each_interval_against_zero():
    fig, ax = plt.subplots()
    difference_plot(ax, {"sde": Estimate(-1.0, -2.0, -0.5), "cycle-sde": Estimate(0.2, -0.1, 0.6)}, "FD(SDE) - FD(ODE)")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["sde", "cycle-sde"]
    assert any(np.allclose(line.get_xdata(), [0, 0]) for line in ax.lines)
    with pytest.raises(ValueError, match="differences must"):
        difference_plot(ax, {}, "x")
    plt.close(fig)


def test_difference_plot_draws_every_row_in_one_given_colour():
    fig, ax = plt.subplots()
    difference_plot(ax, {"small mask": Estimate(-1.0, -2.0, -0.5), "large mask": Estimate(0.2, -0.1, 0.6)}, "x",
                    colour=COLOURS["sde"])
    drawn = [matplotlib.colors.to_hex(c.lines[0].get_color()) for c in ax.containers]
    bars = [matplotlib.colors.to_hex(c.lines[2][0].get_color()[0]) for c in ax.containers]
    assert drawn == bars == [COLOURS["sde"]] * 2
    plt.close(fig)
