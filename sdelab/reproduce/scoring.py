"""Scores shared by the digits reproductions: per-image means and Frechet distances, with 95% bootstrap intervals.

Frechet distances are taken to the 1347 training digits in the judge's two fixed feature spaces
(``sdelab.models.digits_quality``): its 32-component PCA ("fd", FD-PCA) and its 64 hidden units ("fd_mlp").
Bootstrap: resample the images with replacement; per-image means with ``reps`` resamples, Frechet distances
(a matrix square root each) with ``reps // 4``; the interval is the 2.5-97.5 percentile range. A resample repeats
images, which shrinks the spread of the features and inflates a Frechet distance (at n = 60 the resampled
distances all lie above the full sample's), so a Frechet interval is shifted down by the bootstrap's estimate of
that bias, mean(resampled) - full sample (a bias-corrected percentile interval). Differences between two image
sets of the same inputs (``paired_difference``) resample the same images for both, and their bias cancels.
"""

from __future__ import annotations

import numpy as np
import torch

from sdelab.data.digits import digits_dataset
from sdelab.models.digits_quality import DigitsJudge, frechet_distance


def flat(images) -> np.ndarray:
    """(n, 1, 16, 16) images in [0, 1] (tensor or array) -> (n, 256) float64."""
    x = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    return x.reshape(len(x), -1).astype(np.float64)


def features(judge: DigitsJudge, x: np.ndarray) -> dict[str, np.ndarray]:
    """The two feature maps of flat images x (n, 256): {"fd": PCA (n, 32), "fd_mlp": hidden units (n, 64)}."""
    return {"fd": judge.pca.transform(x), "fd_mlp": judge.hidden(x)}


def training_features(judge: DigitsJudge) -> dict[str, np.ndarray]:
    """The features of the training digits, the reference of every Frechet distance here."""
    return features(judge, flat(digits_dataset(split="train")))


def bootstrap_mean(values: np.ndarray, rng: np.random.Generator, reps: int = 200) -> list[float]:
    """95% bootstrap interval of the mean of per-image values (n,)."""
    idx = rng.integers(len(values), size=(reps, len(values)))
    return np.percentile(values[idx].mean(1), [2.5, 97.5]).tolist()


def frechet_rows(feats: dict[str, np.ndarray], reference: dict[str, np.ndarray], rng: np.random.Generator,
                 reps: int = 200) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Frechet distance of each feature set to its reference, and its bias-corrected bootstrap interval
    (reps // 4 resamples)."""
    values, ci = {}, {}
    for name, f in feats.items():
        values[name] = frechet_distance(f, reference[name])
        boot = np.array([frechet_distance(f[rng.integers(len(f), size=len(f))], reference[name])
                         for _ in range(max(1, reps // 4))])
        ci[name] = (np.percentile(boot, [2.5, 97.5]) - (boot.mean() - values[name])).tolist()
    return values, ci


def paired_difference(feats_a: dict[str, np.ndarray], feats_b: dict[str, np.ndarray],
                      reference: dict[str, np.ndarray], seed: int = 0, reps: int = 200) -> dict:
    """FD(a) - FD(b) for every feature space, where row i of a and of b come from the same input, with a paired
    bootstrap interval (the same resampled inputs for both, reps // 4 resamples): below 0 = a more realistic."""
    rng = np.random.default_rng(seed)
    out, ci = {}, {}
    for name in feats_a:
        out[name] = (frechet_distance(feats_a[name], reference[name])
                     - frechet_distance(feats_b[name], reference[name]))
        boot = []
        for _ in range(max(1, reps // 4)):
            idx = rng.integers(len(feats_a[name]), size=len(feats_a[name]))
            boot.append(frechet_distance(feats_a[name][idx], reference[name])
                        - frechet_distance(feats_b[name][idx], reference[name]))
        ci[name] = np.percentile(boot, [2.5, 97.5]).tolist()
    return out | {"ci": ci}


def cell(row: dict, key: str, digits: int = 2) -> str:
    """A table cell: the row's value of ``key`` with its 95% interval, e.g. "0.14 [0.09, 0.21]"."""
    lo, hi = row["ci"][key]
    return f"{row[key]:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def summarise(per_image: dict[str, np.ndarray], feats: dict[str, np.ndarray], reference: dict[str, np.ndarray],
              seed: int = 0, reps: int = 200) -> dict:
    """One table row: the mean of every per-image measure and every Frechet distance, with "ci" intervals."""
    rng = np.random.default_rng(seed)
    row = {name: float(v.mean()) for name, v in per_image.items()}
    ci = {name: bootstrap_mean(v, rng, reps) for name, v in per_image.items()}
    values, fd_ci = frechet_rows(feats, reference, rng, reps)
    return row | values | {"ci": ci | fd_ci}
