"""The digits data: scikit-learn's 8x8 digits at 16x16, and the edits the digits experiments make on them.

- ``digits_dataset``: the images (ink = 1) with a fixed train / test split; ``train_batches`` draws training
  batches from it (``python -m sdelab train digits``, ``sdelab.recipes``).
- ``drag_cases`` and ``band_masks``: one drag per held-out digit and the band mask around it (``reproduce drag``).
- ``stroke_masks``: free-form holes of a given area (``reproduce inpainting``; the paper's mask ratios 0.2, 0.4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

SIZE = 16  # image side in pixels
CHANNELS = 1  # grayscale
PROMPTS = tuple(str(k) for k in range(10))  # the class-conditional model's prompt for each label: "0" .. "9"
SPLITS = ("all", "train", "test")


def digits_dataset(size: int = SIZE, split: str = "all", return_labels: bool = False):
    """scikit-learn's 1797 digits upsampled (bilinear) to (n, 1, size, size) float32 in [0, 1], ink = 1.

    ``split`` "train" (1347 images) / "test" (450) is a fixed stratified 75/25 split (random_state 0): the
    model is trained on "train", quality is measured against "test". With ``return_labels`` also the
    (n,) int64 class labels.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")
    data = load_digits()
    index = np.arange(len(data.target))
    if split != "all":
        train, test = train_test_split(index, test_size=0.25, random_state=0, stratify=data.target)
        index = train if split == "train" else test
    images = torch.as_tensor(data.images[index] / 16.0, dtype=torch.float32)[:, None]  # (n, 1, 8, 8)
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    if return_labels:
        return images, torch.as_tensor(data.target[index], dtype=torch.int64)
    return images


def train_batches():
    """Training batches of the "train" split: ``draw(batch_size, generator)`` -> images (b, 1, 16, 16), labels (b,),
    drawn uniformly with replacement on the CPU generator (the same data on every device for one seed)."""
    images, labels = digits_dataset(split="train", return_labels=True)  # (1347, 1, 16, 16), (1347,)

    def draw(batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.randint(len(images), (batch_size,), generator=generator)  # (b,)
        return images[index], labels[index]

    return draw


@dataclass
class DragCases:
    """The benchmark's inputs: images (n, 1, 16, 16) in [0, 1] with one drag each, (x, y) pixels."""

    images: torch.Tensor
    labels: torch.Tensor  # (n,) true classes
    source: torch.Tensor  # (n, 2) int64
    target: torch.Tensor  # (n, 2) int64


def drag_cases(n: int = 450, radius: int = 2, seed: int = 0) -> DragCases:
    """One drag per held-out digit (module docstring), drawn with ``numpy.random.default_rng(seed)``."""
    images, labels = digits_dataset(split="test", return_labels=True)
    if not 1 <= n <= len(images):
        raise ValueError(f"n must lie in [1, {len(images)}], got {n}")
    images, labels = images[:n], labels[:n]
    rng = np.random.default_rng(seed)
    lo, hi = radius + 1, SIZE - 1 - (radius + 1)  # whole windows: [p - r, p + r) inside, one pixel to spare
    sources, targets = [], []
    for image in images[:, 0].numpy():
        ys, xs = np.nonzero(image[lo: hi + 1, lo: hi + 1] > 0.5)
        candidates = np.stack([xs + lo, ys + lo], 1)  # (c, 2) ink pixels away from the border, (x, y)
        for _ in range(10_000):
            s = candidates[rng.integers(len(candidates))]
            angle, length = rng.uniform(0, 2 * math.pi), rng.uniform(3, 5)
            t = np.rint(s + length * np.array([math.cos(angle), math.sin(angle)])).astype(int)
            if (lo <= t).all() and (t <= hi).all() and 3 <= np.linalg.norm(t - s) <= 5:
                break
        else:
            raise RuntimeError("no valid drag found")  # cannot happen: every digit has ink near its centre
        sources.append(s)
        targets.append(t)
    return DragCases(images, labels, torch.as_tensor(np.array(sources)), torch.as_tensor(np.array(targets)))


def band_masks(cases: DragCases, radius: int) -> torch.Tensor:
    """bool (n, 1, 16, 16): pixels whose centre lies within ``radius`` of the segment from source to target."""
    yy, xx = torch.meshgrid(torch.arange(float(SIZE)), torch.arange(float(SIZE)), indexing="ij")
    p = torch.stack([xx, yy], -1)[None]  # (1, 16, 16, 2)
    s, t = cases.source.double()[:, None, None], cases.target.double()[:, None, None]  # (n, 1, 1, 2)
    d = t - s
    u = ((p - s) * d).sum(-1, keepdim=True) / (d * d).sum(-1, keepdim=True)
    closest = s + u.clamp(0, 1) * d
    return ((p - closest).norm(dim=-1) <= radius)[:, None]


def stroke_masks(n: int, fraction: float, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    """bool (n, 1, size, size) free-form stroke masks (True = to fill), each covering exactly round(fraction * size^2)
    pixels, drawn with ``numpy.random.default_rng(seed)``.

    A stroke starts at a uniform point and takes 3-6 segments of length 2-5 px in uniform directions; a brush of
    radius 1.2 px (a plus of 5 pixels) paints it every 0.5 px, clipped to the image. Strokes are painted one after
    another, pixel by pixel in drawing order, until the mask holds the target number of pixels.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    target = round(fraction * size * size)
    brush = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy * dy + dx * dx <= 1.2**2]
    masks = np.zeros((n, size, size), dtype=bool)
    for m in masks:
        count = 0
        while count < target:
            p = rng.uniform(0, size, 2)  # (y, x)
            for _ in range(rng.integers(3, 7)):
                angle, length = rng.uniform(0, 2 * math.pi), rng.uniform(2, 5)
                step = np.array([math.sin(angle), math.cos(angle)]) * 0.5
                for _ in range(int(length / 0.5) + 1):
                    cy, cx = np.clip(np.floor(p), 0, size - 1).astype(int)
                    for dy, dx in brush:
                        y, x = cy + dy, cx + dx
                        if 0 <= y < size and 0 <= x < size and not m[y, x] and count < target:
                            m[y, x], count = True, count + 1
                    p = np.clip(p + step, 0, size - 1e-6)
    return torch.from_numpy(masks)[:, None]
