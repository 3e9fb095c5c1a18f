"""Quality of shapes images: the strict judge's verdicts, the world's laws and a Frechet distance to real scenes.

``python -m sdelab.models.shapes_quality`` samples the shipped shapes model with DDIM (eta = 0) and DDPM (eta = 1)
at 50 and 100 steps and prints a markdown table beside the same figures for real scenes (the reference row) and
blurred real scenes; ``--figure`` also saves ``figures/shapes_samples.png``.

Every image set is scored by (docs/shapes.md):
- validity: the fraction that ``parse`` (the world's judge) accepts as a clean rendered scene;
- the world's laws: the object count (1-3; "other" is 0 or more than 3), kind and colour of what ``parse`` reads
  from every image, as the total variation distance (0 = the same law, 1 = disjoint) to the generator's laws,
  which are taken from the true scenes of ``random_scenes`` (LAW_SCENES of them, no judge involved);
- FD-PCA: the Frechet distance to REFERENCE_SCENES real scenes in a fixed feature space, the PCA (32 components)
  of the pixels of FIT_SCENES other real scenes. Like every Frechet distance it is biased upwards at small n, so
  the real-scenes row, at the same n, is its floor. The PCA's leading components are smooth: FD-PCA sees where
  objects are and what colours they have, barely the sharpness of their edges (a slight blur hardly moves it); the
  judge sees that.
The three sets of real scenes come from ``random_scenes`` with seeds derived from ``seed`` and distinct from each
other and from the real-scenes row.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA

from sdelab.data.shapes import KINDS, MAX_OBJECTS, PALETTE, Scene, parse_batch, random_scenes, render_batch
from sdelab.models.digits_quality import frechet_distance

FIT_SCENES, REFERENCE_SCENES, LAW_SCENES = 2000, 1000, 5000
COMPONENTS = 32  # PCA components of the feature space
BLUR = 0.7  # px: the blurred baseline (the judge passes ~4% of such scenes, docs/shapes.md)


def laws(scenes: list[Scene]) -> dict[str, np.ndarray]:
    """The empirical laws of a set of scenes: "count" over 0 .. len(PALETTE) objects, "kind" over KINDS and
    "colour" over PALETTE (the last two over all objects of all scenes; uniform if there is none)."""
    count = np.bincount([len(s.shapes) for s in scenes], minlength=len(PALETTE) + 1).astype(float)
    kind = np.bincount([KINDS.index(o.kind) for s in scenes for o in s.shapes], minlength=len(KINDS)).astype(float)
    colours = list(PALETTE)
    colour = np.bincount([colours.index(o.colour) for s in scenes for o in s.shapes],
                         minlength=len(colours)).astype(float)

    def normed(h: np.ndarray) -> np.ndarray:
        return h / h.sum() if h.sum() else np.full(len(h), 1 / len(h))

    return {"count": normed(count), "kind": normed(kind), "colour": normed(colour)}


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation distance 0.5 * sum |p - q| between two laws on the same bins."""
    return float(0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum())


def _flat(images) -> np.ndarray:
    """(n, 3, 32, 32) images in [0, 1] (tensor or array) -> (n, 3072) float64."""
    images = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
        raise ValueError(f"images must have shape (n, 3, S, S), got {images.shape}")
    return images.reshape(len(images), -1).astype(np.float64)


@dataclass
class ShapesReference:
    """What samples are compared with: the fixed PCA feature map, the real scenes' features and the generator's
    laws (module docstring)."""

    pca: PCA
    reference: np.ndarray  # (REFERENCE_SCENES, COMPONENTS) the reference scenes' features
    laws: dict[str, np.ndarray]
    seed: int

    @classmethod
    def fit(cls, seed: int = 0, fit_scenes: int = FIT_SCENES, reference_scenes: int = REFERENCE_SCENES,
            law_scenes: int = LAW_SCENES) -> ShapesReference:
        """Fit the PCA on ``fit_scenes`` scenes (seed 4 seed + 1), embed ``reference_scenes`` others (4 seed + 2) and
        count the laws of ``law_scenes`` more (4 seed + 3); ``real_scenes`` draws from seed 4 seed + 4."""
        for name, value in (("fit_scenes", fit_scenes), ("reference_scenes", reference_scenes),
                            ("law_scenes", law_scenes)):
            if value < 2:
                raise ValueError(f"{name} must be >= 2, got {value}")
        pca = PCA(n_components=min(COMPONENTS, fit_scenes), random_state=seed)
        pca.fit(_flat(render_batch(random_scenes(fit_scenes, seed=4 * seed + 1))))
        reference = pca.transform(_flat(render_batch(random_scenes(reference_scenes, seed=4 * seed + 2))))
        return cls(pca, reference, laws(random_scenes(law_scenes, seed=4 * seed + 3)), seed)

    def real_scenes(self, n: int) -> torch.Tensor:
        """(n, 3, 32, 32): n real scenes, none of them among the fitted, reference or law scenes."""
        return render_batch(random_scenes(n, seed=4 * self.seed + 4))

    def score(self, images) -> dict:
        """The judge's verdicts and the distances to the reference for images (n, 3, 32, 32) in [0, 1]."""
        x = _flat(images)
        if len(x) < 2:
            raise ValueError(f"images must hold at least 2 images, got {len(x)}")
        parses = parse_batch(images)
        read = laws([p.scene for p in parses])
        inside = read["count"][1:MAX_OBJECTS + 1]  # (MAX_OBJECTS,) the shares of 1, 2, 3 objects
        return {
            "n": len(x),
            "valid": float(np.mean([p.valid for p in parses])),
            "objects": [*map(float, inside), float(1 - inside.sum())],
            **{f"tv_{name}": total_variation(read[name], self.laws[name]) for name in read},
            "fd_pca": frechet_distance(self.pca.transform(x), self.reference),
        }


def blurred(images: torch.Tensor, sigma: float = BLUR) -> torch.Tensor:
    """images (n, c, S, S) blurred by a Gaussian of ``sigma`` px (edges replicated)."""
    radius = int(np.ceil(3 * sigma))
    k = torch.exp(-torch.arange(-radius, radius + 1, dtype=images.dtype) ** 2 / (2 * sigma**2))
    k = k / k.sum()  # (2 r + 1,)
    c = images.shape[1]
    x = F.pad(images, (radius,) * 4, mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def table(rows: dict[str, dict]) -> str:
    """A markdown table of ``ShapesReference.score`` results, one row per image set."""
    head = ("| images | n | valid | objects 1 / 2 / 3 / other | TV count | TV kind | TV colour | FD-PCA |\n"
            + "|---" * 8 + "|")
    lines = [f"| {name} | {r['n']} | {r['valid']:.3f} | {' / '.join(f'{p:.2f}' for p in r['objects'])} | "
             f"{r['tv_count']:.3f} | {r['tv_kind']:.3f} | {r['tv_colour']:.3f} | {round(r['fd_pca'], 2) + 0.0:.2f} |"
             for name, r in rows.items()]
    return "\n".join([head, *lines])


def samples_figure(grids: dict[str, torch.Tensor], valid: dict[str, list[bool]], cols: int = 8):
    """One panel per image set (n, 3, 32, 32), a grid of ``cols`` columns, each image framed white if the judge
    accepts it and black if not."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(grids), figsize=(2.6 * len(grids), 2.9))
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.07, top=0.88, wspace=0.06)
    for ax, (name, images) in zip(np.atleast_1d(axes), grids.items(), strict=True):
        rows = len(images) // cols
        images = images[: rows * cols].cpu()
        side = images.shape[-1] + 2
        frame = torch.tensor(valid[name][: rows * cols], dtype=images.dtype)[:, None, None, None]  # 1 white, 0 black
        tiles = F.pad(images - frame, (1, 1, 1, 1)) + frame  # (rows * cols, 3, side, side)
        tiles = tiles.reshape(rows, cols, 3, side, side).permute(0, 3, 1, 4, 2).reshape(rows * side, cols * side, 3)
        ax.imshow(tiles.clamp(0, 1).numpy())
        share = float(np.mean(valid[name]))
        ax.set_title(f"{name}\n{share:.0%} valid (white frame)", fontsize=8)
        ax.axis("off")
    return fig


def main(argv: list[str] | None = None) -> int:
    from sdelab.models.pixel import load_shapes_model
    from sdelab.plotting import machine, save_figure

    parser = argparse.ArgumentParser(prog="python -m sdelab.models.shapes_quality", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="model folder (default: the shipped weights)")
    parser.add_argument("--n", type=int, default=300, help="images per row (300)")
    parser.add_argument("--steps", type=int, nargs="+", default=[50, 100])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", action="store_true", help="save figures/shapes_samples.png")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    model = load_shapes_model(args.weights)
    ref = ShapesReference.fit(args.seed)
    real = ref.real_scenes(args.n)
    images = {"real scenes": real, f"blurred real (sigma {BLUR:g} px)": blurred(real)}
    for steps in args.steps:
        for eta, name in ((0.0, "DDIM"), (1.0, "DDPM")):
            gen = torch.Generator(device=model.device).manual_seed(args.seed)
            images[f"{name} eta={eta:g}, {steps} steps"] = model.sample(args.n, steps=steps, eta=eta, generator=gen,
                                                                       progress=False)
    rows = {name: ref.score(x) for name, x in images.items()}
    seconds = time.perf_counter() - start
    print(table(rows))
    print(f"\n{model.name} ({args.weights or 'shipped weights'}), n {args.n}, seed {args.seed}, {machine()}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {seconds:.0f} s")
    if args.figure:
        shown = ["real scenes", *(f"{name} eta={eta:g}, {args.steps[0]} steps" for eta, name in ((0.0, "DDIM"),
                                                                                              (1.0, "DDPM")))]
        grids = {name: images[name][:64] for name in shown}
        valid = {name: [p.valid for p in parse_batch(grids[name])] for name in shown}
        path = save_figure(samples_figure(grids, valid), "shapes_samples",
                           setup=f"{model.name} ({args.weights or 'shipped weights'}), {args.steps[0]} steps, "
                                 f"seed {args.seed}")
        print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
