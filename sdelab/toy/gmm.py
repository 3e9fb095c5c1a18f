"""Gaussian mixtures with exact marginals and scores: the toy 'model' of the paper's Section 3.

If q_0 = sum_k w_k N(mu_k, S_k), the VP-noised q_t is sum_k w_k N(alpha_t mu_k, alpha_t^2 S_k + sigma_t^2 I),
so eps(x, t) = -sigma_t grad log q_t(x) is available in closed form.
"""

from __future__ import annotations

import math

import torch

from sdelab.schedules import VPSchedule
from sdelab.toy.canonical import BIMODAL_1D


class GaussianMixture:
    """sum_k w_k N(mu_k, S_k): weights (K,), means (K, d), covs (K, d, d); float64 by default."""

    def __init__(self, weights, means, covs, dtype=torch.float64):
        w = torch.as_tensor(weights, dtype=dtype)
        mu = torch.as_tensor(means, dtype=dtype)
        cov = torch.as_tensor(covs, dtype=dtype)
        if w.ndim != 1 or len(w) == 0:
            raise ValueError(f"weights must have shape (K,), got {tuple(w.shape)}")
        if (w < 0).any() or abs(w.sum().item() - 1) > 1e-6:
            raise ValueError(f"weights must be non-negative and sum to 1, got {w.tolist()} (sum {w.sum().item()})")
        K = len(w)
        if mu.ndim != 2 or mu.shape[0] != K:
            raise ValueError(f"means must have shape (K, d) = ({K}, d), got {tuple(mu.shape)}")
        d = mu.shape[1]
        if cov.shape != (K, d, d):
            raise ValueError(f"covs must have shape (K, d, d) = ({K}, {d}, {d}), got {tuple(cov.shape)}")
        if not torch.allclose(cov, cov.transpose(-1, -2)):
            raise ValueError("covs must be symmetric")
        chol, info = torch.linalg.cholesky_ex(cov)
        if (info != 0).any():
            raise ValueError(f"covs must be positive definite; component(s) {torch.nonzero(info).flatten().tolist()}"
                             " are not")
        self.weights, self.means, self.covs, self._chol = w, mu, cov, chol

    @classmethod
    def isotropic(cls, weights, means, stds, dtype=torch.float64) -> GaussianMixture:
        """Mixture of N(mu_k, std_k^2 I); means (K, d) or (K,) for 1-D, stds (K,)."""
        mu = torch.as_tensor(means, dtype=dtype)
        mu = mu[:, None] if mu.ndim == 1 else mu
        std = torch.as_tensor(stds, dtype=dtype).reshape(-1, 1, 1)
        return cls(weights, mu, std**2 * torch.eye(mu.shape[1], dtype=dtype), dtype=dtype)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def _check_x(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        return x.to(self.means.dtype)

    def sample(self, n: int, generator=None) -> torch.Tensor:
        """n samples, shape (n, d)."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)  # (n,)
        z = torch.randn(n, self.dim, generator=generator, dtype=self.means.dtype)
        return self.means[k] + (self._chol[k] @ z[:, :, None])[:, :, 0]

    def _component_terms(self, x: torch.Tensor):
        """Per-component log w_k + log N(x; mu_k, S_k), shape (n, K), and S_k^{-1}(x - mu_k), shape (n, K, d)."""
        diff = x[:, None, :] - self.means[None]  # (n, K, d)
        # y = L^{-1} (x - mu) with the K small inverses formed once (batched solves over n are ~3x slower)
        eye = torch.eye(self.dim, dtype=x.dtype).expand_as(self._chol)
        chol_inv = torch.linalg.solve_triangular(self._chol, eye, upper=False)  # (K, d, d)
        y = torch.einsum("kij,nkj->nki", chol_inv, diff)  # (n, K, d)
        maha = (y**2).sum(-1)  # (n, K)
        logdet = 2 * torch.log(torch.diagonal(self._chol, dim1=-2, dim2=-1)).sum(-1)  # (K,)
        logn = -0.5 * (maha + logdet + self.dim * math.log(2 * math.pi))
        prec_diff = torch.einsum("kji,nkj->nki", chol_inv, y)  # L^{-T} y = S^{-1} (x - mu)
        return torch.log(self.weights) + logn, prec_diff

    def log_prob(self, x) -> torch.Tensor:
        """log q(x), shape (n,); stable far from the modes (logsumexp)."""
        terms, _ = self._component_terms(self._check_x(torch.as_tensor(x)))
        return torch.logsumexp(terms, dim=1)

    def score(self, x) -> torch.Tensor:
        """grad_x log q(x) = -sum_k r_k(x) S_k^{-1} (x - mu_k) with responsibilities r_k, shape (n, d)."""
        terms, prec_diff = self._component_terms(self._check_x(torch.as_tensor(x)))
        resp = torch.softmax(terms, dim=1)  # (n, K)
        return -(resp[..., None] * prec_diff).sum(1)

    def marginal(self, alpha, sigma) -> GaussianMixture:
        """The VP-noised mixture: N(alpha mu_k, alpha^2 S_k + sigma^2 I) for every k."""
        alpha = float(alpha)
        sigma = float(sigma)
        eye = torch.eye(self.dim, dtype=self.means.dtype)
        return GaussianMixture(self.weights, alpha * self.means, alpha**2 * self.covs + sigma**2 * eye,
                               dtype=self.means.dtype)

    def eps_model(self, schedule: VPSchedule):
        """The exact noise prediction eps(x, t) = -sigma_t grad log q_t(x), as an eps_model callable."""

        def eps(x: torch.Tensor, t) -> torch.Tensor:
            t = torch.as_tensor(t)
            q_t = self.marginal(schedule.alpha(t), schedule.sigma(t))
            return (-schedule.sigma(t).item() * q_t.score(x)).to(x.dtype)

        return eps

    def __repr__(self) -> str:
        return f"GaussianMixture(K={len(self.weights)}, d={self.dim})"


def bimodal_1d(dtype=torch.float64) -> GaussianMixture:
    """The toy's canonical 1-D mixture (``sdelab.toy.canonical``): 0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2)."""
    return GaussianMixture.isotropic(BIMODAL_1D["weights"], BIMODAL_1D["means"], BIMODAL_1D["stds"], dtype=dtype)


def ring_2d(modes: int = 8, radius: float = 2.0, std: float = 0.25, dtype=torch.float64) -> GaussianMixture:
    """Equal-weight ring of ``modes`` isotropic Gaussians in 2-D."""
    angle = torch.arange(modes, dtype=dtype) * 2 * math.pi / modes
    means = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return GaussianMixture.isotropic(torch.full((modes,), 1 / modes, dtype=dtype), means,
                                     torch.full((modes,), std, dtype=dtype), dtype=dtype)
