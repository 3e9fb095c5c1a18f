"""95% bootstrap intervals over images, bias-corrected for Frechet distances, and paired differences.

Every interval resamples the images with replacement ``reps`` times through ``scipy.stats.bootstrap`` (percentile
method) with a generator seeded by ``seed``: two statistics of the same n images under one seed see the same
resamples, so differences between them are paired. A resample repeats images, which shrinks the features' spread
and so inflates a Frechet distance (at n = 60 every resampled distance lies above the full sample's): its interval
is shifted down by the bootstrap's estimate of that bias, mean(resampled) - estimate (Efron and Tibshirani, An
Introduction to the Bootstrap, section 10.2). A difference between two sets of outputs of the same inputs resamples
the same inputs for both, and the bias cancels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import bootstrap as scipy_bootstrap

from sdelab.eval.frechet import FrechetReference


@dataclass(frozen=True)
class Estimate:
    """A statistic and its 95% bootstrap interval [low, high]."""

    value: float
    low: float
    high: float


def bootstrap(statistic: Callable[..., float], sizes: tuple[int, ...], reps: int, seed: int,
              bias_corrected: bool = False) -> Estimate:
    """statistic(*indices) on every set of indices (one index array (n_k,) per sample, all rows at first), and its
    95% percentile interval from ``reps`` resamples of each sample's rows (independent between samples).

    bias_corrected: shift the interval by mean(resampled) - estimate (module docstring).
    """
    if not isinstance(reps, int) or reps < 2:
        raise ValueError(f"reps must be an integer >= 2, got {reps!r}")
    if not sizes or any(n < 1 for n in sizes):
        raise ValueError(f"sizes must be positive sample sizes, got {sizes}")

    def batched(*idx, axis=-1):  # idx: one (batch, n_k) array per sample
        return np.array([statistic(*rows) for rows in zip(*idx, strict=True)])

    data = tuple(np.arange(n) for n in sizes)
    res = scipy_bootstrap(data, batched, n_resamples=reps, vectorized=True, method="percentile",
                          rng=np.random.default_rng(seed))
    value = float(statistic(*data))
    shift = float(res.bootstrap_distribution.mean()) - value if bias_corrected else 0.0
    return Estimate(value, float(res.confidence_interval.low) - shift, float(res.confidence_interval.high) - shift)


def mean_estimate(values: np.ndarray, reps: int, seed: int) -> Estimate:
    """The mean of per-image values (n,) with its interval."""
    values = np.asarray(values, dtype=np.float64)
    return bootstrap(lambda i: values[i].mean(), (len(values),), reps, seed)


def frechet_estimate(features: np.ndarray, reference: FrechetReference | np.ndarray, reps: int, seed: int) -> Estimate:
    """The Frechet distance of features (n, d) to a fixed reference, with its bias-corrected interval."""
    if not isinstance(reference, FrechetReference):
        reference = FrechetReference(reference)
    return bootstrap(lambda i: reference.distance(features[i]), (len(features),), reps, seed, bias_corrected=True)


def frechet_two_sample(features: np.ndarray, reference: np.ndarray, reps: int, seed: int) -> Estimate:
    """The Frechet distance of features (n, d) to reference features (m, d) that are themselves a random draw: both
    sets resampled, the interval bias-corrected."""
    return bootstrap(lambda i, j: FrechetReference(reference[j]).distance(features[i]),
                     (len(features), len(reference)), reps, seed, bias_corrected=True)


def paired_mean_difference(a: np.ndarray, b: np.ndarray, reps: int, seed: int) -> Estimate:
    """mean(a - b) for per-image values a, b (n,) of the same inputs, with its interval."""
    if np.shape(a) != np.shape(b):
        raise ValueError(f"a and b must be per-image values of the same inputs, got shapes {np.shape(a)}, "
                         f"{np.shape(b)}")
    return mean_estimate(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64), reps, seed)


def paired_frechet_difference(a: np.ndarray, b: np.ndarray, reference: FrechetReference, reps: int,
                              seed: int) -> Estimate:
    """FD(a) - FD(b) to one reference, where row i of a (n, d) and of b (n, d) come from the same input, with a
    paired interval (the same resampled inputs for both): below 0 = a nearer the reference."""
    if a.shape != b.shape:
        raise ValueError(f"a and b must be features of the same inputs, got shapes {a.shape}, {b.shape}")
    return bootstrap(lambda i: reference.distance(a[i]) - reference.distance(b[i]), (len(a),), reps, seed)


def summarise(per_image: dict[str, np.ndarray], features: dict[str, np.ndarray],
              references: dict[str, FrechetReference], reps: int, seed: int) -> dict[str, Estimate]:
    """One set of outputs' scores: the mean of every per-image measure (n,) and the Frechet distance of every feature
    set (n, d) to its reference (keyed alike: "fd_pca" features to the "fd_pca" reference), with intervals."""
    out = {name: mean_estimate(v, reps, seed) for name, v in per_image.items()}
    return out | {name: frechet_estimate(f, references[name], reps, seed) for name, f in features.items()}


def compare(a: tuple[dict, dict], b: tuple[dict, dict], references: dict[str, FrechetReference], reps: int,
            seed: int) -> dict[str, Estimate]:
    """a - b for two sets of outputs of the same inputs, each (per-image measures, features) as ``summarise`` takes
    them: paired differences of every mean and every Frechet distance."""
    out = {name: paired_mean_difference(a[0][name], b[0][name], reps, seed) for name in a[0]}
    return out | {name: paired_frechet_difference(a[1][name], b[1][name], references[name], reps, seed)
                  for name in a[1]}
