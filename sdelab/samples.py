"""Sample images that ship with sdelab (512 x 512 JPEGs in sdelab/data, made by tools/make_sample_images.py).

From scikit-image's bundled data, with their licences: ``astronaut`` (Eileen Collins, NASA, public domain),
``chelsea`` (a cat, CC0, photo by Stefan van der Walt), ``coffee`` (a cup, CC0, photo by Rachel Michetti).
"""

from __future__ import annotations

from importlib.resources import files

from PIL import Image

SAMPLES = {
    "astronaut": "Eileen Collins, NASA; public domain",
    "chelsea": "a cat; CC0, photo by Stefan van der Walt",
    "coffee": "a coffee cup; CC0, photo by Rachel Michetti",
}


def sample_image(name: str) -> Image.Image:
    """One of the shipped sample images as a 512 x 512 RGB PIL image."""
    if name not in SAMPLES:
        raise ValueError(f"name must be one of {list(SAMPLES)}, got {name!r}")
    with Image.open(files("sdelab") / "data" / f"{name}.jpg") as image:
        return image.convert("RGB")
