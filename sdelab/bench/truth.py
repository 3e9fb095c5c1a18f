"""Ground-truth measures of a drag whose true edited image is known (a set's ``gt_image.png``), and how well
DragBench's Mean Distance agrees with them.

Every measure but the PSNR reads images with the shapes world's judge (``sdelab.data.shapes.parse``;
docs/shapes.md): the ground truth must parse as a valid scene with an object centred within ``AT_TARGET`` px of
each target, the dragged object, known by its colour. Then, for the output:

- drag error: the distance in pixels from the target to the centre of the object of that colour in the output
  (None where the output has no such object: the object was lost), averaged over the sample's points;
- success: every point's error <= SUCCESS_PX, the object's kind and colour kept, and the output a valid scene;
- valid: the judge's verdict on the output (a clean scene explains it: no ghost, smear or half object);
- PSNR to the truth (dB, peak 255) over the whole image (``psnr_outside`` with nothing editable), for any set
  with a ``gt_image.png``.

``agreement`` is the Spearman rank correlation of per-sample Mean Distance with the drag error (scipy's
``spearmanr``, with its two-sided p-value) over the samples that have both.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from sdelab.bench.metrics import psnr_outside
from sdelab.data.shapes import Shape, parse

SUCCESS_PX = 1.0  # a drag succeeds when the object's centre lands within this of the target (and more, above)
AT_TARGET = 1.0  # the ground truth's dragged object is centred within this of the target
TRUTH_KEYS = ("drag_error", "success", "valid", "psnr_truth")


def _pixels(image: Image.Image) -> np.ndarray:
    """(3, H, W) float64 in [0, 1] of a PIL image."""
    return np.asarray(image.convert("RGB"), dtype=np.float64).transpose(2, 0, 1) / 255


def dragged_objects(truth: Image.Image, targets) -> list[Shape] | None:
    """The object the ground truth shows at each target (x, y), or None if ``truth`` is no valid square scene with an
    object centred within AT_TARGET px of every target."""
    if truth.size[0] != truth.size[1] or min(truth.size) < 8:
        return None
    read = parse(_pixels(truth))
    if not read.valid:
        return None
    found = []
    for tx, ty in targets:
        nearest = min(read.scene.shapes, key=lambda s: math.hypot(s.x - tx, s.y - ty))
        if math.hypot(nearest.x - tx, nearest.y - ty) > AT_TARGET:
            return None
        found.append(nearest)
    return found


def truth_metrics(output: Image.Image, truth: Image.Image, targets) -> dict:
    """The ground-truth measures of one output against its truth (both PIL images of one size) for the drag's
    targets (x, y): {"drag_error", "success", "valid", "psnr_truth"}; the first three None where the truth is no
    shapes scene with the dragged objects at the targets (``dragged_objects``)."""
    everywhere = np.zeros(truth.size[::-1], dtype=bool)  # nothing editable: the PSNR over every pixel
    out = dict.fromkeys(TRUTH_KEYS) | dict(psnr_truth=psnr_outside(truth, output, everywhere))
    objects = dragged_objects(truth, targets)
    if objects is None:
        return out
    read = parse(_pixels(output))
    shown = {s.colour: s for s in read.scene.shapes}
    errors, kept = [], True
    for obj, (tx, ty) in zip(objects, targets, strict=True):
        found = shown.get(obj.colour)
        if found is None:
            return out | dict(success=False, valid=bool(read.valid))
        errors.append(math.hypot(found.x - tx, found.y - ty))
        kept &= found.kind == obj.kind
    return out | dict(drag_error=sum(errors) / len(errors),
                      success=bool(read.valid and kept and max(errors) <= SUCCESS_PX), valid=bool(read.valid))


def agreement(mean_distances, drag_errors) -> dict:
    """Spearman's rank correlation of Mean Distance with the true drag error over the pairs where both are numbers:
    {"spearman": rho, "p_value": two-sided p, "n": pairs}; rho and p None for fewer than 3 pairs or a constant
    side (no ranking to compare)."""
    from scipy.stats import spearmanr

    pairs = [(m, e) for m, e in zip(mean_distances, drag_errors, strict=True) if m is not None and e is not None]
    result = dict(spearman=None, p_value=None, n=len(pairs))
    if len(pairs) < 3 or len({m for m, _ in pairs}) < 2 or len({e for _, e in pairs}) < 2:
        return result
    rho, p = spearmanr(*zip(*pairs, strict=True))
    return result | dict(spearman=float(rho), p_value=float(p))
