"""Sample quality of the shapes model against real scenes: python -m sdelab.reproduce.shapes_quality.

    python -m sdelab.reproduce.shapes_quality [--weights DIR] [--n 300] [--steps 50 100] [--seed 0] [--bootstrap 200]
                                              [--json] [--figures [DIR]]

Samples of the shipped shapes model (DDIM, eta = 0, and DDPM, eta = 1, at every step count) beside real scenes (the
reference row: what sampling noise alone gives at this n) and real scenes blurred by 0.7 px, scored by the shapes
judge (``sdelab.eval.shapes``): the share of images ``parse`` accepts as clean scenes, the object count read from
them, the total variation of the count, kind and colour laws to the generator's, and FD-PCA, the Frechet distance to
1000 other real scenes in a fixed PCA of real scenes. Validity and FD-PCA carry 95% bootstrap intervals over the
images (FD-PCA's bias-corrected, ``sdelab.eval.bootstrap``); like every Frechet distance FD-PCA is biased upwards
at small n, so compare rows at the same n. Figure: shapes_samples.png, the first 64 images of the real scenes and
of the first step count's samples, each framed white if the judge accepts it, black if not.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sdelab.eval.bootstrap import Estimate, frechet_estimate, mean_estimate
from sdelab.eval.shapes import ShapesReference, blurred
from sdelab.eval.tables import cell, markdown_table

BLUR = 0.7  # px: the blurred baseline (the judge passes ~4% of such scenes, docs/shapes.md)


@dataclass(frozen=True)
class ShapesQualityRow:
    """The judge's verdicts on one image set and its Frechet distance to the reference scenes."""

    images: str
    n: int
    valid: Estimate
    objects: list[float]  # the shares of 1, 2, 3 and any other number of objects read
    tv_count: float
    tv_kind: float
    tv_colour: float
    fd_pca: Estimate


@dataclass
class ShapesQualityResult:
    rows: list[ShapesQualityRow]
    settings: dict
    examples: dict | None = None  # the first 64 images of each set shown in the figure, and the judge's verdicts


def score(reference: ShapesReference, name: str, images, reps: int, seed: int) -> ShapesQualityRow:
    """The row of one image set (n, 3, 32, 32) in [0, 1]."""
    v = reference.verdicts(images)
    fd = frechet_estimate(reference.features(images), reference.reference, reps, seed)
    return ShapesQualityRow(name, len(v["valid"]), mean_estimate(v["valid"].astype(float), reps, seed), v["objects"],
                            v["tv_count"], v["tv_kind"], v["tv_colour"], fd)


def reproduce_shapes_quality(model, n: int = 300, steps=(50, 100), seed: int = 0, reps: int = 200,
                             keep: bool = False) -> ShapesQualityResult:
    """Rows for real scenes, blurred real scenes and the model's samples (DDIM and DDPM at every step count), each of
    n images. keep: also return the first 64 images (and their verdicts) of the real scenes and of the first step
    count's samples, for the figure."""
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    start = time.perf_counter()
    reference = ShapesReference.fit(seed)
    real = reference.real_scenes(n)
    images = {"real scenes": real, f"blurred real scenes (sigma {BLUR:g} px)": blurred(real, BLUR)}
    shown = ["real scenes"]
    for k in steps:
        for eta, name in ((0.0, "DDIM"), (1.0, "DDPM")):
            gen = torch.Generator(device=model.device).manual_seed(seed)
            label = f"{name} eta={eta:g}, {k} steps"
            images[label] = model.sample(n, steps=k, eta=eta, generator=gen, progress=False).cpu()
            if k == steps[0]:
                shown.append(label)
    rows = [score(reference, name, x, reps, seed) for name, x in images.items()]
    settings = dict(model=model.name, n=n, steps=list(steps), seed=seed, bootstrap=reps,
                    seconds=round(time.perf_counter() - start), threads=torch.get_num_threads())
    examples = None
    if keep:
        examples = {name: (images[name][:64], reference.verdicts(images[name][:64])["valid"]) for name in shown}
    return ShapesQualityResult(rows, settings, examples)


def markdown(result: ShapesQualityResult) -> str:
    """One row per image set."""
    header = ["images", "n", "valid", "objects 1 / 2 / 3 / other", "TV count", "TV kind", "TV colour", "FD-PCA"]
    rows = [[r.images, str(r.n), cell(r.valid, 3), " / ".join(f"{p:.2f}" for p in r.objects), cell(r.tv_count, 3),
             cell(r.tv_kind, 3), cell(r.tv_colour, 3), cell(r.fd_pca)] for r in result.rows]
    caption = ("*valid: the share of images the shapes judge (`parse`) accepts as a clean scene; objects: the shares "
               "of the object counts it reads; TV: total variation distance of the count, kind and colour laws read "
               "to the generator's; FD-PCA: Frechet distance to 1000 other real scenes in a 32-component PCA of real "
               "scenes. [95% bootstrap intervals], FD-PCA's bias-corrected.*")
    return markdown_table(header, rows, caption)


def samples_figure(examples: dict, cols: int = 8):
    """One panel per image set ((m, 3, 32, 32) images, (m,) verdicts), a grid of ``cols`` columns (fewer if m is
    smaller), each image framed white if the judge accepts it and black if not."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(examples), figsize=(2.6 * len(examples), 2.9))
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.07, top=0.86, wspace=0.06)
    for ax, (name, (images, valid)) in zip(np.atleast_1d(axes), examples.items(), strict=True):
        width = min(cols, len(images))
        rows = len(images) // width
        images, valid = images[: rows * width].cpu().float(), valid[: rows * width]
        side = images.shape[-1] + 2
        frame = torch.as_tensor(valid, dtype=images.dtype)[:, None, None, None]  # 1 white, 0 black
        tiles = F.pad(images - frame, (1, 1, 1, 1)) + frame  # (rows * cols, 3, side, side): the image in its frame
        tiles = tiles.reshape(rows, width, 3, side, side).permute(0, 3, 1, 4, 2).reshape(rows * side, width * side, 3)
        ax.imshow(tiles.clamp(0, 1).numpy())
        ax.set_title(f"{name}\n{np.mean(valid):.0%} valid (white frame)", fontsize=8)
        ax.axis("off")
    return fig


def main(argv: list[str] | None = None) -> int:
    from sdelab.cli.args import positive_int
    from sdelab.models.pixel import load_shapes_model
    from sdelab.plotting import machine, save_figure
    from sdelab.reproduce.results import to_json

    parser = argparse.ArgumentParser(prog="python -m sdelab.reproduce.shapes_quality",
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="model folder (default: the shipped shapes weights)")
    parser.add_argument("--n", type=positive_int, default=300, help="images per row (%(default)s)")
    parser.add_argument("--steps", type=positive_int, nargs="+", default=[50, 100], help="step counts (50 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (%(default)s)")
    parser.add_argument("--bootstrap", type=positive_int, default=200, help="bootstrap resamples (%(default)s)")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads (%(default)s)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of the markdown table")
    parser.add_argument("--figures", nargs="?", const="figures", metavar="DIR",
                        help="save DIR/shapes_samples.png (DIR: figures)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_shapes_model(args.weights)
    try:
        result = reproduce_shapes_quality(model, args.n, tuple(args.steps), args.seed, args.bootstrap,
                                          keep=bool(args.figures))
    except ValueError as err:
        parser.error(str(err))
    setup = f"{model.name} ({args.weights or 'shipped weights'}), n {args.n}, seed {args.seed}"
    if args.json:
        print(json.dumps(to_json(result)))
    else:
        s = result.settings
        print(markdown(result) + f"\n\n{setup}, steps {s['steps']}, {machine()}, torch {torch.__version__}, "
              f"{s['threads']} thread(s), {s['seconds']} s")
    if args.figures:
        path = save_figure(samples_figure(result.examples), "shapes_samples", f"{setup}, {args.steps[0]} steps",
                           args.figures)
        print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
