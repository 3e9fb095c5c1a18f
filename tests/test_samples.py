"""The sample images and the drag results that ship inside the package (notebook 08 reads both in Colab)."""

import json
from importlib.resources import files

import pytest

from sdelab.reproduce.drag import MASKS, METHODS
from sdelab.samples import SAMPLES, sample_image


@pytest.mark.parametrize("name", list(SAMPLES))
def test_sample_images_are_512_rgb(name):
    image = sample_image(name)
    assert image.size == (512, 512) and image.mode == "RGB"


def test_unknown_sample_is_refused():
    with pytest.raises(ValueError, match="name must be one of"):
        sample_image("lena")


def test_shipped_drag_results_are_a_full_run():
    result = json.loads((files("sdelab") / "data" / "drag_digits.json").read_text())
    s = result["settings"]
    assert s["n"] == 450 and s["t0"] == [0.2, 0.4, 0.6] and s["intervals"] == 100  # the README's table
    assert {(r["method"], r["mask"]) for r in result["rows"]} == {(m, k) for m in METHODS for k in MASKS}
    assert len(result["rows"]) == len(MASKS) * (2 + 2 * len(s["t0"]))
