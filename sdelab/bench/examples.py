"""Six small DragBench samples made from scikit-image's bundled pictures: the test fixtures and notebook 09's data.

Three samples in each layout (``sdelab.bench.data``): DragBench-S folders (origin_image.png, mask.png or none,
prompt.json) and DragBench-D folders (original_image.png, meta_data.pkl with prompt, alternating handle /
target points and a 0/1 mask), in category folders, at small and partly non-square sizes so that the
resizing to a model's size is exercised. The pictures are public domain or CC0 (their ``skimage.data``
docstrings; tests/fixtures/README.md lists them); scikit-image ships them, so nothing is downloaded.
``python tools/make_dragbench_fixtures.py`` rewrites tests/fixtures/ with ``write_examples``.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from skimage import data

# name: (skimage.data function, crop box (left, top, right, bottom), output (width, height))
PICTURES = {
    "astronaut": ("astronaut", (96, 0, 352, 256), (64, 64)),
    "chelsea": ("chelsea", (60, 20, 380, 260), (80, 60)),  # 80 x 60: not a multiple of 8, resized for a model
    "coffee": ("coffee", (140, 20, 460, 400), (48, 72)),  # portrait, 48 x 72
    "cat": ("chelsea", (100, 0, 420, 240), (64, 48)),
    "rocket": ("rocket", (230, 0, 430, 256), (56, 72)),
    "camera": ("camera", (128, 32, 384, 288), (64, 64)),  # grayscale: stored as an "L" PNG
}

# DragBench-S: folder -> (picture, mask as an ellipse box or None, sources, targets, prompt)
S_SAMPLES = {
    "space/astronaut_face": ("astronaut", (14, 4, 54, 44), [[30, 20], [40, 30]], [[36, 18], [44, 34]],
                             "a photo of an astronaut"),
    "animals/chelsea_eye": ("chelsea", None, [[26, 24]], [[20, 30]], "a photo of a cat"),
    "objects/coffee_cup": ("coffee", (4, 16, 44, 56), [[24, 36]], [[24, 44]], "a cup of coffee"),
}
# DragBench-D: folder -> (picture, mask as a rectangle box, points (handle, target, ...), prompt)
D_SAMPLES = {
    "animals/cat_eyes": ("cat", (0, 8, 64, 40), [[44, 22], [48, 18], [16, 22], [12, 18]], "a photo of a cat"),
    "other_objects/rocket": ("rocket", (12, 16, 44, 72), [[28, 40], [28, 30]], "a rocket on a launch pad"),
    "human_upper_body/camera_man": ("camera", (24, 8, 60, 48), [[38, 26], [46, 26]], "a man with a camera"),
}


def picture(name: str) -> Image.Image:
    """One of PICTURES: cropped and downscaled (Lanczos), RGB or grayscale as scikit-image gives it."""
    func, box, size = PICTURES[name]
    image = Image.fromarray(getattr(data, func)()).crop(box).resize(size, Image.Resampling.LANCZOS)
    return image.convert("L") if image.mode == "L" else image.convert("RGB")


def write_s(root: Path) -> None:
    """The DragBench-S samples under root."""
    for folder, (name, ellipse, sources, targets, prompt) in S_SAMPLES.items():
        path = root / folder
        path.mkdir(parents=True, exist_ok=True)
        image = picture(name)
        image.save(path / "origin_image.png", optimize=True)
        if ellipse is not None:
            mask = Image.new("L", image.size, 0)
            ImageDraw.Draw(mask).ellipse(ellipse, fill=255)  # white = editable
            mask.save(path / "mask.png", optimize=True)
        (path / "prompt.json").write_text(json.dumps({"source": sources, "target": targets, "prompt": prompt}))


def write_d(root: Path) -> None:
    """The DragBench-D samples under root (pickle protocol 4, the default of Python 3.8-3.13)."""
    for folder, (name, box, points, prompt) in D_SAMPLES.items():
        path = root / folder
        path.mkdir(parents=True, exist_ok=True)
        image = picture(name)
        image.save(path / "original_image.png", optimize=True)
        mask = np.zeros(image.size[::-1], dtype=np.uint8)  # (H, W), 1 = editable, as the real set stores it
        left, top, right, bottom = box
        mask[top:bottom, left:right] = 1
        with open(path / "meta_data.pkl", "wb") as f:
            pickle.dump({"prompt": prompt, "points": points, "mask": mask}, f, protocol=4)


def write_examples(root) -> tuple[Path, Path]:
    """Write root/dragbench_s and root/dragbench_d; returns the two folders."""
    root = Path(root)
    write_s(root / "dragbench_s")
    write_d(root / "dragbench_d")
    return root / "dragbench_s", root / "dragbench_d"
