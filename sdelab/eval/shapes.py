"""The shapes judge's scores of an image set: validity, the world's laws, and the fixed feature map of its Frechet
distance (docs/shapes.md).

- validity: whether ``sdelab.data.shapes.parse`` (the world's strict judge) accepts an image as a clean scene;
- the world's laws (``laws``): the object count (0 .. len(PALETTE)), kind and colour of what ``parse`` reads from
  every image, compared with the generator's laws by total variation (``total_variation``: 0 = the same law,
  1 = disjoint); the generator's laws are counted on the true scenes of ``random_scenes`` (no judge involved);
- ``fd_pca``: features are the 32-component PCA of the pixels of real scenes, fitted once, seeded. Its leading
  components are smooth: it sees where objects are and what colours they have, barely the sharpness of their edges
  (a slight blur hardly moves it), which the judge sees.

The scenes behind a ``ShapesReference`` are drawn with ``random_scenes`` from seeds 4 seed + 1 (the PCA's fit),
4 seed + 2 (the Frechet reference), 4 seed + 3 (the laws) and 4 seed + 4 (``real_scenes``): disjoint sets, and
disjoint between seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA

from sdelab.data.shapes import KINDS, MAX_OBJECTS, PALETTE, Scene, parse_batch, random_scenes, render_batch
from sdelab.eval.frechet import FrechetReference

FIT_SCENES, REFERENCE_SCENES, LAW_SCENES = 2000, 1000, 5000
COMPONENTS = 32  # PCA components of the feature space


def laws(scenes: list[Scene]) -> dict[str, np.ndarray]:
    """The empirical laws of a set of scenes: "count" over 0 .. len(PALETTE) objects, "kind" over KINDS and
    "colour" over PALETTE (the last two over all objects of all scenes; uniform if there is none)."""
    colours = list(PALETTE)
    hist = {"count": np.bincount([len(s.shapes) for s in scenes], minlength=len(PALETTE) + 1),
            "kind": np.bincount([KINDS.index(o.kind) for s in scenes for o in s.shapes], minlength=len(KINDS)),
            "colour": np.bincount([colours.index(o.colour) for s in scenes for o in s.shapes],
                                  minlength=len(colours))}
    return {name: h / h.sum() if h.sum() else np.full(len(h), 1 / len(h)) for name, h in hist.items()}


def total_variation(p, q) -> float:
    """Total variation distance 0.5 * sum |p - q| between two laws on the same bins."""
    return float(0.5 * np.abs(np.asarray(p, dtype=np.float64) - np.asarray(q, dtype=np.float64)).sum())


def flat(images) -> np.ndarray:
    """(n, 3, S, S) images in [0, 1] (tensor or array) -> (n, 3 S^2) float64."""
    images = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
        raise ValueError(f"images must have shape (n, 3, S, S), got {images.shape}")
    return images.reshape(len(images), -1).astype(np.float64)


def blurred(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """images (n, c, S, S) blurred by a Gaussian of ``sigma`` px (edges replicated): a baseline the judge rejects
    from sigma ~0.6 px on (docs/shapes.md)."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 pixels, got {sigma}")
    radius = int(np.ceil(3 * sigma))
    k = torch.exp(-torch.arange(-radius, radius + 1, dtype=images.dtype) ** 2 / (2 * sigma**2))
    k = k / k.sum()  # (2 radius + 1,)
    c = images.shape[1]
    x = F.pad(images, (radius,) * 4, mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


@dataclass
class ShapesReference:
    """What shapes images are compared with: the fixed PCA feature map, the Frechet reference of real scenes in it,
    and the generator's laws (module docstring)."""

    pca: PCA
    reference: FrechetReference  # of REFERENCE_SCENES real scenes' features
    laws: dict[str, np.ndarray]
    seed: int

    @classmethod
    def fit(cls, seed: int = 0, fit_scenes: int = FIT_SCENES, reference_scenes: int = REFERENCE_SCENES,
            law_scenes: int = LAW_SCENES) -> ShapesReference:
        """Fit the PCA on ``fit_scenes`` real scenes, embed ``reference_scenes`` others, count the laws of
        ``law_scenes`` more (seeds in the module docstring)."""
        for name, value in (("fit_scenes", fit_scenes), ("reference_scenes", reference_scenes),
                            ("law_scenes", law_scenes)):
            if value < 2:
                raise ValueError(f"{name} must be >= 2, got {value}")
        pca = PCA(n_components=min(COMPONENTS, fit_scenes), random_state=seed)
        pca.fit(flat(render_batch(random_scenes(fit_scenes, seed=4 * seed + 1))))
        reference = pca.transform(flat(render_batch(random_scenes(reference_scenes, seed=4 * seed + 2))))
        return cls(pca, FrechetReference(reference), laws(random_scenes(law_scenes, seed=4 * seed + 3)), seed)

    def real_scenes(self, n: int) -> torch.Tensor:
        """(n, 3, 32, 32): n real scenes, none of them among the fitted, reference or law scenes."""
        return render_batch(random_scenes(n, seed=4 * self.seed + 4))

    def features(self, images) -> np.ndarray:
        """The PCA features (n, COMPONENTS) of images (n, 3, 32, 32) in [0, 1]."""
        return self.pca.transform(flat(images))

    def verdicts(self, images) -> dict:
        """The judge on images (n, 3, 32, 32) in [0, 1]: "valid" (n,) bool per image, "objects" the shares of 1, 2,
        3 and any other number of objects read, and "tv_count", "tv_kind", "tv_colour" to the generator's laws."""
        parses = parse_batch(images)
        read = laws([p.scene for p in parses])
        inside = read["count"][1:MAX_OBJECTS + 1]  # (MAX_OBJECTS,) the shares of 1, 2, 3 objects
        return {"valid": np.array([p.valid for p in parses]), "objects": [*map(float, inside), float(1 - inside.sum())],
                **{f"tv_{name}": total_variation(read[name], self.laws[name]) for name in read}}
