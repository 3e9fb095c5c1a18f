"""What users hand in, checked in one place (no torch here, so the picker stays light): pictures and (x, y) points.

- ``as_picture``: a path, PIL image or array -> a PIL image (the picker, the editors' image conversion).
- ``check_points``: (x, y) points inside an image (the editors, the picker, DragBench and its metrics).

Points are (x, y) in image pixels (docs/conventions.md); a point lies in an image of size (height, width) when
0 <= x < width and 0 <= y < height. Nothing is clamped: a point outside is an error naming the argument.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from PIL import Image


def uint8(array: np.ndarray, name: str) -> np.ndarray:
    """A bool, uint8 or float (values in [0, 1]) array -> uint8; ValueError naming ``name`` else."""
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        if array.size and not (0 <= array.min() and array.max() <= 1):
            raise ValueError(f"{name} as a float array must lie in [0, 1], got [{array.min():.3g}, {array.max():.3g}]")
        return np.round(array * 255).astype(np.uint8)
    raise ValueError(f"{name} as an array must be uint8, bool or float in [0, 1], got dtype {array.dtype}")


def as_picture(image, name: str = "image") -> Image.Image:
    """A PIL image, a path, or an (H, W) / (H, W, 1|3|4) array -> a PIL image in mode L, RGB or RGBA (decoded)."""
    if isinstance(image, str | Path):
        image = Image.open(image)
        image.load()
    elif isinstance(image, np.ndarray):
        array = image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
        if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
            raise ValueError(f"{name} as an array must be (H, W) or (H, W, 1|3|4), got shape {image.shape}")
        image = Image.fromarray(uint8(array, name))
    if not isinstance(image, Image.Image):
        raise ValueError(f"{name} must be a PIL image, a path or a numpy array, got {type(image).__name__}")
    if min(image.size) < 1:
        raise ValueError(f"{name} must have at least one pixel, got (width, height) = {image.size}")
    return image if image.mode in ("L", "RGB", "RGBA") else image.convert("RGBA" if "A" in image.getbands() else "RGB")


def check_points(points, name: str, size: tuple[int, int], *, integers: bool = False,
                 allow_empty: bool = False) -> list[tuple]:
    """``points`` as a list of (x, y) tuples inside an image of size = (height, width), else ValueError naming ``name``.

    integers: the coordinates must be whole numbers (the picker's clicks); else any finite real numbers.
    """
    h, w = size
    kind = "integers" if integers else "numbers"
    wanted = Integral if integers else Real
    try:
        pairs = [tuple(p) for p in points]
        ok = not isinstance(points, str | bytes | dict) and all(
            len(p) == 2 and all(isinstance(v, wanted) and not isinstance(v, bool) for v in p) for p in pairs)
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a list of (x, y) pairs of {kind}, got {points!r}"[:300])
    pairs = [(int(x), int(y)) if integers else (float(x), float(y)) for x, y in pairs]
    if not pairs and not allow_empty:
        raise ValueError(f"{name} must hold at least one point")
    if not all(math.isfinite(v) for p in pairs for v in p):
        raise ValueError(f"{name} must be finite numbers, got {pairs}")
    for x, y in pairs:
        if not (0 <= x < w and 0 <= y < h):
            raise ValueError(f"{name} has the point ({x:g}, {y:g}) outside the {w}x{h} image: 0 <= x < {w}, "
                             f"0 <= y < {h} (nothing is clamped)")
    return pairs
