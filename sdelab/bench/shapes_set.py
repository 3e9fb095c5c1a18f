"""A DragBench-S set with ground truth, made from the shapes world (``sdelab.data.shapes``; docs/shapes.md).

``write_shapes_bench(out, n, seed)`` writes ``n`` samples of ``drag_cases(n, seed)``, one folder per sample
(``000``, ``001``, ...), in DragBench-S's layout plus one file:

- ``origin_image.png``: the scene, 32 x 32 RGB;
- ``mask.png``: the band around the drag (grayscale, 255 = editable): pixels whose centre lies within the dragged
  object's circumscribed radius + BAND_MARGIN px of the segment from source to target, so it holds the object at
  both ends;
- ``prompt.json``: {"source": [[x, y]], "target": [[x, y]], "prompt": ""}, the object's centre and its centre in
  the ground truth (integer pixels; the shapes model is unconditional);
- ``gt_image.png``: the ground truth, the same scene with the object moved (``moved``), rendered exactly.

``OUT/shapes_bench.json`` records the generator's arguments. Every file is written atomically; the same seed gives
byte-identical files, so a set interrupted half-way is completed by running the same command again.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sdelab.bench.files import atomic_write, json_bytes, png_bytes
from sdelab.data.shapes import SIZE, band_masks, drag_cases

BAND_MARGIN = 2.0  # pixels of band beyond the dragged object's circumscribed circle
MANIFEST = "shapes_bench.json"


def _png(image: torch.Tensor) -> bytes:
    """(3, S, S) in [0, 1] -> an RGB PNG, or (S, S) bool -> a grayscale one (255 where True)."""
    if image.dtype == torch.bool:
        return png_bytes(Image.fromarray(image.numpy().astype(np.uint8) * 255, mode="L"))
    pixels = (image.permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)  # (S, S, 3)
    return png_bytes(Image.fromarray(pixels, mode="RGB"))


def write_shapes_bench(out, n: int = 100, seed: int = 0) -> Path:
    """Write the shapes DragBench-S set of ``n`` samples drawn with ``seed`` into the folder ``out``; returns it.

    ``out`` must be new, empty, or hold this same set (its ``shapes_bench.json``); ValueError naming ``n``,
    ``seed`` or ``out`` otherwise.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be an integer >= 1 (the number of samples), got {n!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    out = Path(out)
    manifest = dict(set="shapes", layout="dragbench-s", n=n, seed=seed, size=SIZE, band_margin=BAND_MARGIN)
    if out.exists():
        if not out.is_dir():
            raise ValueError(f"out must be a folder, got {str(out)!r} (a file)")
        previous = out / MANIFEST
        if any(out.iterdir()) and not (previous.is_file() and json.loads(previous.read_text()) == manifest):
            raise ValueError(f"out {str(out)!r} holds something other than this set (n={n}, seed={seed}): choose a "
                             "new or empty folder")
    atomic_write(out / MANIFEST, json_bytes(manifest))
    cases = drag_cases(n, seed)
    radii = torch.tensor([s.shapes[int(i)].radius + BAND_MARGIN for s, i in zip(cases.scenes, cases.index,
                                                                                  strict=True)])
    bands = band_masks(cases, radii)[:, 0]  # (n, S, S) bool
    width = max(3, len(str(n - 1)))
    for k in range(n):
        folder = out / f"{k:0{width}d}"
        meta = {"source": [cases.source[k].tolist()], "target": [cases.target[k].tolist()], "prompt": ""}
        atomic_write(folder / "origin_image.png", _png(cases.images[k]))
        atomic_write(folder / "mask.png", _png(bands[k]))
        atomic_write(folder / "gt_image.png", _png(cases.truth[k]))
        atomic_write(folder / "prompt.json", json_bytes(meta))
    return out
