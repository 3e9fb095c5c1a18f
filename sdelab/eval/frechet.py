"""The Frechet distance between Gaussians fit to two sets of features (the statistic behind FID)."""

from __future__ import annotations

import numpy as np


def _root(cov: np.ndarray) -> np.ndarray:
    """The symmetric square root of a covariance (d, d); round-off's tiny negative eigenvalues read as 0."""
    w, v = np.linalg.eigh(cov)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


class FrechetReference:
    """The Gaussian fit to reference features (m, d), kept so that many sets can be measured against it."""

    def __init__(self, features: np.ndarray):
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or len(features) < 2:
            raise ValueError(f"features must be an (m, d) array with m >= 2, got shape {features.shape}")
        self.mean = features.mean(0)  # (d,)
        self.cov = np.cov(features, rowvar=False)  # (d, d)
        self.root = _root(self.cov)  # (d, d)

    def distance(self, a: np.ndarray) -> float:
        """||mu_a - mu_ref||^2 + tr(S_a + S_ref - 2 (S_a S_ref)^1/2) for the rows of a (n, d).

        tr (S_a S_ref)^1/2 = tr (S_ref^1/2 S_a S_ref^1/2)^1/2: the square roots of a symmetric matrix's eigenvalues,
        summed (exact also for the singular covariances of dead ReLU units).
        """
        a = np.asarray(a, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != len(self.mean) or len(a) < 2:
            raise ValueError(f"a must be an (n, {len(self.mean)}) array with n >= 2, got shape {a.shape}")
        cov = np.cov(a, rowvar=False)
        cross = np.sqrt(np.clip(np.linalg.eigvalsh(self.root @ cov @ self.root), 0, None)).sum()
        return float(((a.mean(0) - self.mean) ** 2).sum() + np.trace(cov) + np.trace(self.cov) - 2 * cross)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The Frechet distance between Gaussians fit to the rows of a (n, d) and b (m, d)."""
    return FrechetReference(b).distance(a)
