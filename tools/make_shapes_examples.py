"""Draw figures/shapes_examples.png: drags of the shapes world (sdelab.data.shapes) and the judge's verdicts.

    python tools/make_shapes_examples.py

Rows: the first five of ``drag_cases(seed=0)``. Columns: the input with its drag (arrow from source to target),
the ground truth, and three images the judge must reject: the bare copy-paste of the drag (``paste_only`` on
x0 = 2 image - 1, the default radius for a 32-pixel image, alpha 1.1, beta 0.3), the ground truth with a ghost
(the object at half opacity at its old place), and the input blurred (Gaussian, sigma 1 px). Each title is
``parse``'s verdict and its largest per-pixel error (docs/shapes.md).
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy import ndimage

from sdelab.data.shapes import PALETTE, coverage, drag_cases, parse
from sdelab.edit.drag import default_radius, drag_substeps, paste_only

NAME = "shapes_examples"
OUT = Path(__file__).resolve().parents[1] / "figures" / f"{NAME}.png"
ROWS = 5


def columns(cases, k: int, gen: torch.Generator) -> dict[str, np.ndarray]:
    """The five images (3, 32, 32) of drag case k, by column title."""
    shape = cases.scenes[k].shapes[int(cases.index[k])]
    truth = cases.truth[k].numpy().astype(np.float64)
    ghost = truth + 0.5 * coverage(shape, 32) * (np.array(PALETTE[shape.colour])[:, None, None] - truth)
    substeps = drag_substeps(cases.source[k][None], cases.target[k][None], 2.0)
    pasted = paste_only(2 * cases.images[k: k + 1] - 1, substeps, default_radius(32), 1.1, 0.3, gen)
    return {"input": cases.images[k].numpy(), "ground truth": truth,
            "copy-paste": ((pasted[0] + 1) / 2).clamp(0, 1).numpy(), "ghost": ghost,
            "blur": ndimage.gaussian_filter(cases.images[k].numpy(), (0, 1, 1), mode="nearest")}


def main():
    cases, gen = drag_cases(ROWS, seed=0), torch.Generator().manual_seed(0)
    fig, axes = plt.subplots(ROWS, 5, figsize=(9, 1.95 * ROWS))
    for k in range(ROWS):
        for ax, (title, image) in zip(axes[k], columns(cases, k, gen).items(), strict=True):
            verdict = parse(image)
            ax.imshow(np.clip(image.transpose(1, 2, 0), 0, 1), interpolation="nearest")
            ax.set_title(f"{title}\n{'valid' if verdict.valid else 'invalid'} ({verdict.residual:.2f})", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        (sx, sy), (tx, ty) = cases.source[k].tolist(), cases.target[k].tolist()
        axes[k, 0].annotate("", xy=(tx, ty), xytext=(sx, sy), arrowprops={"arrowstyle": "->", "color": "black"})
    fig.tight_layout()
    fig.savefig(OUT, dpi=100)
    print(OUT)


if __name__ == "__main__":
    main()
