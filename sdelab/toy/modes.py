"""Mode weights of toy samples and their KL: a data-processing lower bound on KL(P || Q) with little noise.

Assign every sample to its nearest centre (for a mixture at level t, the noised means alpha_t mu_k). The
assignment is a function of the sample, so by the data-processing inequality the KL between the two
categorical laws of the labels is a lower bound on the KL between the sample laws:

    KL(P || Q) >= KL(w(P) || w(Q)) = sum_k w_k(P) log(w_k(P) / w_k(Q)),   w_k = mass nearest to centre k.

It measures only how the mass is shared between the modes (the part of an edit that the SDE repairs
slowest, notebook 02), nothing inside a mode; where a kNN estimate (``sdelab.toy.knn``) comes out
below it, the kNN estimate is biased low. The plug-in estimate from counts has a small positive bias,
about (K - 1) (1/n + 1/m) / 2 for K modes and n, m samples when P = Q (3.5e-4 for K = 8, n = m = 20000),
and its band is the half-sampling band of ``knn_kl_bootstrap`` (sampling noise of the plug-in estimate).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import ndtri

from sdelab.toy.knn import _points


def nearest_mode(x, centers) -> np.ndarray:
    """Index of the nearest centre for every sample: x (n, d), centers (K, d) -> (n,) int."""
    x, c = _points("x", x), _points("centers", centers)
    if x.shape[1] != c.shape[1]:
        raise ValueError(f"centers must have the dimension of x (d = {x.shape[1]}), got d = {c.shape[1]}")
    return ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)


def mode_weights(x, centers) -> np.ndarray:
    """Fraction of the samples nearest to each centre, shape (K,)."""
    k = len(_points("centers", centers))
    return np.bincount(nearest_mode(x, centers), minlength=k) / len(_points("x", x))


def categorical_kl(p, q) -> float:
    """KL(p || q) = sum_k p_k log(p_k / q_k) of two probability vectors (0 log 0 = 0; inf where q_k = 0 < p_k)."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError(f"p and q must be probability vectors of one length, got shapes {p.shape} and {q.shape}")
    for name, v in (("p", p), ("q", q)):
        if (v < 0).any() or abs(v.sum() - 1) > 1e-9:
            raise ValueError(f"{name} must be non-negative and sum to 1, got {v.tolist()}")
    if ((q == 0) & (p > 0)).any():
        return float("inf")
    mass = p > 0
    return float(np.sum(p[mass] * np.log(p[mass] / q[mass])))


def mode_kl(x, y, centers, n_boot: int = 50, level: float = 0.95,
            seed: int | np.random.Generator = 0) -> tuple[float, float, float]:
    """Plug-in KL between the mode weights of x ~ P (n, d) and y ~ Q (m, d): (estimate, low, high).

    A lower bound on KL(P || Q) up to sampling noise (module docstring). The band: estimate -/+ z_level s,
    s the standard deviation over ``n_boot`` half-samples (n // 2 of the x's, m // 2 of the y's, without
    replacement), as in ``sdelab.toy.knn.knn_kl_bootstrap``.
    """
    labels_x, labels_y = nearest_mode(x, centers), nearest_mode(y, centers)
    k = len(_points("centers", centers))
    if not isinstance(n_boot, int | np.integer) or n_boot < 2:
        raise ValueError(f"n_boot must be an integer >= 2, got {n_boot!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if len(labels_x) < 4 or len(labels_y) < 4:
        raise ValueError(f"x and y must hold at least 4 samples each, got {len(labels_x)} and {len(labels_y)}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def estimate(a: np.ndarray, b: np.ndarray) -> float:
        return categorical_kl(np.bincount(a, minlength=k) / len(a), np.bincount(b, minlength=k) / len(b))

    full = estimate(labels_x, labels_y)
    n, m = len(labels_x), len(labels_y)
    halves = [estimate(labels_x[rng.choice(n, n // 2, replace=False)], labels_y[rng.choice(m, m // 2, replace=False)])
              for _ in range(n_boot)]
    half_width = float(ndtri(0.5 + level / 2) * np.std(halves, ddof=1))
    return full, full - half_width, full + half_width


def noised_centers(q0, schedule, t) -> torch.Tensor:
    """The means of q_t, alpha_t mu_k, shape (K, d): the centres of the modes at level t."""
    return schedule.alpha(torch.as_tensor(t)).item() * q0.means
