"""The provenance footer of every saved figure: under the axis labels, never wider than the drawing."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from sdelab.plotting import add_footer, digit_columns, save_figure  # noqa: E402

LONG = ("q0 = 0.5N(-2, 0.5^2) + 0.5N(2, 0.5^2), SD schedule, t0 = 0.6, 120 steps, edit: half of x < 0 moved by +2, "
        "n = 20000, seed = 0, k = 5, 95% bands from 30 half-samples, and then some more words to make it long")


def small_figure():
    fig, ax = plt.subplots(figsize=(4, 2.5))
    ax.plot([0, 1], [0, 1])
    ax.set(xlabel="x (a label that must stay readable)", ylabel="y")
    return fig, ax


def test_footer_sits_below_the_axis_label_and_within_the_width():
    fig, ax = small_figure()
    footer = add_footer(fig, LONG)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    text_box = footer.get_window_extent(renderer)
    label_box = ax.xaxis.label.get_window_extent(renderer)
    drawing = ax.get_tightbbox(renderer)  # the axes with its ticks and labels, display pixels
    assert text_box.y1 < label_box.y0, "the footer overlaps the x label"
    assert text_box.width <= drawing.width + 1, "the footer is wider than the drawing"
    assert footer.get_text().count("\n") >= 1, "a long footer should wrap"
    assert footer.get_text().replace("\n", " ") == LONG, "wrapping must keep every word"
    plt.close(fig)


def test_short_footer_stays_on_one_line():
    fig, _ = small_figure()
    assert "\n" not in add_footer(fig, "digits DDPM, seed 0").get_text()
    plt.close(fig)


def test_saved_figure_gains_no_side_margin(tmp_path):
    fig, _ = small_figure()
    fig.savefig(tmp_path / "bare.png", dpi=110, bbox_inches="tight")
    path = save_figure(fig, "with_footer", setup=LONG, directory=tmp_path / "figures")
    plt.close(fig)
    bare, footed = Image.open(tmp_path / "bare.png").size, Image.open(path).size
    assert footed[0] <= bare[0] + 2, f"the footer widened the figure from {bare[0]} to {footed[0]} px"
    assert footed[1] > bare[1], "the footer must be in the saved picture"
    assert LONG in Image.open(path).info["Description"]


@pytest.mark.parametrize("text", ["", "one"])
def test_degenerate_footers(text):
    fig, _ = small_figure()
    assert add_footer(fig, text).get_text() == text
    plt.close(fig)


def test_image_comparison_draws_pictures_and_difference_maps_on_one_scale():
    import torch

    from sdelab.plotting import image_comparison

    base = torch.zeros(1, 3, 8, 8)
    pictures = {"input": base, "a": base + 0.1, "b": base + 0.4}
    fig = image_comparison(pictures, "input", ["a", "b"])
    maps = [ax.images[0] for ax in fig.axes[3:5]]
    assert [m.get_array().max() for m in maps] == pytest.approx([0.1, 0.4])
    assert all(m.get_clim() == pytest.approx((0, 0.4)) for m in maps), "one colour scale for every difference map"
    assert "mean 1.0e-01" in fig.axes[3].get_title()
    plt.close(fig)
    with pytest.raises(ValueError, match="'c' is not among"):
        image_comparison(pictures, "input", ["c"])


def test_figure_slider_redraws_its_image_when_a_control_moves():
    from ipywidgets import FloatSlider, Image

    from sdelab.plotting import figure_slider

    calls = []

    def draw(a):
        calls.append(a)
        fig, ax = plt.subplots(figsize=(2, 1.5))
        ax.plot([0, 1], [0, a])
        return fig

    open_before = plt.get_fignums()  # figures other tests of this worker left open
    box = figure_slider(draw, a=FloatSlider(value=1.0, min=0, max=2))
    slider, image = box.children[0].children[0], box.children[1]
    assert isinstance(image, Image) and image.value[:4] == b"\x89PNG"
    assert slider.description == "a" and slider.continuous_update is False
    first = image.value
    slider.value = 2.0
    assert calls == [1.0, 2.0] and image.value != first
    assert plt.get_fignums() == open_before, "rendered figures must be closed"
    with pytest.raises(ValueError, match="at least one control"):
        figure_slider(draw)


def test_digit_columns_draws_each_column_ink_dark_from_tensors_or_arrays():
    images = torch.rand(3, 1, 16, 16)
    fig, axes = digit_columns([("tensor", images), ("array", images.numpy())], 1, cell=(1.0, 1.0))
    assert axes.shape == (1, 2) and fig.get_size_inches().tolist() == [2.0, 1.4]  # k = 1 keeps a 2-d grid
    assert [ax.get_title() for ax in axes[0]] == ["tensor", "array"]
    for ax in axes[0]:
        shown = ax.images[0]
        grey = shown.to_rgba(shown.get_array())[..., 0]  # what is drawn: ink = 1 comes out dark
        assert np.allclose(grey, 1 - images[0, 0].numpy(), atol=2 / 255)
    plt.close(fig)
