"""DragPicker without a browser: traitlets round trips, the mask's bytes, validation, preview(), no torch."""

import io
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import sdelab.widgets as sdelab_widgets
from sdelab.widgets import MASK_RGBA, SOURCE_COLOUR, TARGET_COLOUR, DragPicker

W, H = 64, 40


@pytest.fixture
def picker():
    return DragPicker(Image.new("RGB", (W, H), (128, 128, 128)), display_size=512)


def _sync_from_front_end(widget, **state):
    """What ipywidgets does with a comm message from the browser: buffers arrive as memoryviews."""
    widget.set_state({k: memoryview(v) if isinstance(v, bytes) else v for k, v in state.items()})


@pytest.mark.parametrize("image", [
    Image.new("L", (W, H)), Image.new("RGBA", (W, H)), Image.new("P", (W, H)), np.zeros((H, W), np.uint8),
    np.zeros((H, W, 3), np.uint8), np.ones((H, W, 1), np.float32), np.zeros((H, W), bool)],
    ids=["L", "RGBA", "P", "uint8", "uint8-rgb", "float", "bool"])
def test_image_kinds_are_sent_as_png_of_their_size(image):
    picker = DragPicker(image)
    png = Image.open(io.BytesIO(picker.get_state()["_png"]))
    assert png.format == "PNG" and png.size == (W, H) == picker.image.size
    assert (picker.get_state()["_width"], picker.get_state()["_height"]) == (W, H)


def test_image_from_a_path(tmp_path):
    Image.new("RGB", (W, H), "red").save(tmp_path / "red.png")
    assert DragPicker(tmp_path / "red.png").image.getpixel((0, 0)) == (255, 0, 0)
    assert DragPicker(str(tmp_path / "red.png")).image.size == (W, H)


@pytest.mark.parametrize("image, message", [
    (np.full((4, 4), 1.5), r"image as a float array must lie in \[0, 1\], got \[1.5, 1.5\]"),
    (np.zeros((4, 4), np.int64), "image as an array must be uint8, bool or float"),
    (np.zeros((4, 4, 2), np.uint8), r"image as an array must be \(H, W\) or \(H, W, 1\|3\|4\), got shape \(4, 4, 2\)"),
    ([[0, 1]], "image must be a PIL image, a path or a numpy array, got list")])
def test_bad_images_raise(image, message):
    with pytest.raises(ValueError, match=message):
        DragPicker(image)


@pytest.mark.parametrize("size", [0, -5, 2.5])
def test_bad_display_size_raises(size):
    with pytest.raises(ValueError, match=rf"display_size must be a positive integer \(CSS pixels\), got {size}"):
        DragPicker(Image.new("L", (4, 4)), display_size=size)


def test_points_round_trip_through_the_traitlets(picker):
    picker.set_points([(0, 0), (np.int64(63), 39)], [(10, 20), (5, 6)])
    assert picker.source_points == [(0, 0), (63, 39)] and picker.target_points == [(10, 20), (5, 6)]
    state = picker.get_state()
    assert state["source_points"] == [(0, 0), (63, 39)] and state["target_points"] == [(10, 20), (5, 6)]
    _sync_from_front_end(picker, source_points=[[1, 2], [3, 4], [5, 6]], target_points=[[7, 8], [9, 10]])
    assert picker.source_points == [(1, 2), (3, 4), (5, 6)]  # a source waiting for its target
    assert picker.target_points == [(7, 8), (9, 10)]
    assert all(isinstance(v, int) for p in picker.source_points for v in p)


def test_observe_fires_on_points_and_mask(picker):
    seen = []
    picker.observe(lambda change: seen.append(change["name"]), names=["source_points", "target_points", "mask"])
    picker.set_points([(1, 1)], [(2, 2)])
    _sync_from_front_end(picker, mask=bytes([255]) * (W * H))
    picker.set_mask(None)
    assert seen == ["source_points", "target_points", "mask", "mask"]


@pytest.mark.parametrize("sources, targets, message", [
    ([(64, 0)], [(0, 0)], r"sources has the point \(64, 0\) outside the 64x40 image: 0 <= x < 64, 0 <= y < 40"),
    ([(0, 0)], [(0, -1)], r"targets has the point \(0, -1\) outside the 64x40 image: 0 <= x < 64"),
    ([(0, 0), (1, 1)], [(2, 2)], "sources and targets must pair up: got 2 sources and 1 targets"),
    ([(0.5, 1)], [(0, 0)], r"sources must be a list of \(x, y\) pairs of integers, got \[\(0.5, 1\)\]"),
    ([(1, 2, 3)], [(0, 0)], r"sources must be a list of \(x, y\) pairs of integers, got \[\(1, 2, 3\)\]")])
def test_bad_points_raise_naming_the_argument(picker, sources, targets, message):
    with pytest.raises(ValueError, match=message):
        picker.set_points(sources, targets)
    assert picker.source_points == [] and picker.target_points == []


def test_assigning_points_outside_the_image_raises(picker):
    with pytest.raises(ValueError, match=r"target_points has the point \(0, 40\) outside the 64x40 image"):
        picker.target_points = [(0, 40)]


def test_mask_is_none_until_something_is_painted(picker):
    assert picker.mask is None and picker.get_state()["mask"] is None
    picker.set_mask(np.zeros((H, W), bool))
    assert picker.mask is None


def test_mask_bytes_from_the_front_end_become_an_L_image(picker):
    painted = np.zeros((H, W), np.uint8)
    painted[5:9, 10:30] = 255
    _sync_from_front_end(picker, mask=painted.tobytes())
    assert picker.mask.mode == "L" and picker.mask.size == (W, H)
    assert np.array_equal(np.asarray(picker.mask), painted)
    _sync_from_front_end(picker, mask=None)
    assert picker.mask is None


@pytest.mark.parametrize("kind", ["bool", "uint8", "float", "PIL"])
def test_set_mask_round_trips_as_raw_bytes(picker, kind):
    editable = np.zeros((H, W), bool)
    editable[10:20, 3:7] = True
    mask = {"bool": editable, "uint8": editable * np.uint8(200), "float": editable * 0.9,
            "PIL": Image.fromarray(editable).convert("RGB")}[kind]
    picker.set_mask(mask)
    expected = editable.astype(np.uint8) * 255
    assert np.array_equal(np.asarray(picker.mask), expected)
    sent = picker.get_state()["mask"]  # raw H*W bytes, row by row, as the front end reads them
    assert np.array_equal(np.frombuffer(sent, np.uint8).reshape(H, W), expected)


@pytest.mark.parametrize("mask, message", [
    (Image.new("L", (W + 1, H)), r"mask must have the image's \(width, height\) = \(64, 40\), got \(65, 40\)"),
    (np.zeros((W, H), bool), r"mask must have the image's \(width, height\) = \(64, 40\), got \(40, 64\)"),
    (np.zeros((H, W, 3), bool), r"mask as an array must be \(H, W\), got shape \(40, 64, 3\)"),
    ("mask.png", "mask must be None, a PIL image or a numpy array, got str")])
def test_bad_masks_raise(picker, mask, message):
    with pytest.raises(ValueError, match=message):
        picker.set_mask(mask)


def test_preview_draws_points_and_the_overlay_inside_the_mask_only(picker):
    plain = np.asarray(picker.preview(), dtype=int)
    assert plain.shape == (320, 512, 3) and (plain == 128).all()
    editable = np.zeros((H, W), bool)
    editable[2:12, 40:60] = True
    picker.set_mask(editable)
    masked = np.asarray(picker.preview(), dtype=int)
    changed = (masked != plain).any(axis=2)
    inside = np.kron(editable, np.ones((8, 8), bool))  # the mask enlarged 8 times like the preview
    assert changed[inside].all() and not changed[~inside].any()
    alpha = MASK_RGBA[3] / 255
    assert np.abs(masked[inside][0] - (alpha * np.array(MASK_RGBA[:3]) + (1 - alpha) * 128)).max() <= 1

    picker.set_points([(5, 5), (30, 30)], [(20, 10), (50, 35)])
    drawn = np.asarray(picker.preview())
    for points, colour in ((picker.source_points, SOURCE_COLOUR), (picker.target_points, TARGET_COLOUR)):
        for x, y in points:
            assert tuple(drawn[int((y + 0.5) * 8), int((x + 0.5) * 8)]) == colour
    assert picker.preview(size=64).size == (64, 40)  # the image's own size


def test_preview_of_a_small_image_is_enlarged_pixel_by_pixel():
    digit = np.zeros((16, 16), np.uint8)
    digit[3, 4] = 255
    preview = np.asarray(DragPicker(digit, display_size=256).preview())
    assert preview.shape == (256, 256, 3)
    assert (preview[48:64, 64:80] == 255).all() and (preview[:48] == 0).all() and (preview[64:] == 0).all()


def test_front_end_files_ship_with_the_package(picker):
    package = Path(sdelab_widgets.__file__).parent
    pyproject = tomllib.loads((package.parent / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["sdelab"]
    for name in ("picker.js", "picker.css"):
        assert (package / "_widget" / name).is_file()
        assert any(fnmatch(f"_widget/{name}", pattern) for pattern in patterns), f"_widget/{name} is not package data"
    assert "export default" in picker.get_state()["_esm"] and ".sdelab-picker" in picker.get_state()["_css"]


def test_the_module_imports_no_torch():
    # sdelab/__init__.py imports torch for the samplers, so stand in an empty package for it and import
    # sdelab.widgets alone: the module and what it imports (anywidget, ipywidgets, PIL, numpy) need no torch
    folder = str(Path(sdelab_widgets.__file__).parent)
    code = ("import sys, types\n"
            f"package = types.ModuleType('sdelab'); package.__path__ = [{folder!r}]\n"
            "sys.modules['sdelab'] = package\n"
            "import sdelab.widgets\n"
            "print(sdelab.widgets.DragPicker.__name__, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["DragPicker", "False"]
