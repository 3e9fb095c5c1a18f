"""Mismatched priors at t0 and 'edit' operators on samples: the toy's stand-in for an image edit.

The edited distribution p~_t0 is one of the named priors of ``sdelab.toy.canonical`` (or any
GaussianMixture) while the unedited one is the true marginal q_t0 of q_0 = 0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2).
"""

from __future__ import annotations

import torch

from sdelab.toy.canonical import PRIORS_1D
from sdelab.toy.gmm import GaussianMixture

__all__ = ["PRIORS_1D", "mismatched_prior", "shift", "rescale", "move_mass"]


def mismatched_prior(name: str, dtype=torch.float64) -> GaussianMixture:
    """One of the canonical mismatched 1-D priors by name: 'shifted', 'narrow' or 'skewed'."""
    if name not in PRIORS_1D:
        raise ValueError(f"prior must be one of {sorted(PRIORS_1D)}, got {name!r}")
    mean, std = PRIORS_1D[name]
    return GaussianMixture.isotropic([1.0], [mean], [std], dtype=dtype)


def shift(x: torch.Tensor, delta) -> torch.Tensor:
    """Edit: translate every sample by delta (a float or a (d,) vector)."""
    return x + torch.as_tensor(delta, dtype=x.dtype)


def rescale(x: torch.Tensor, factor: float, center=0.0) -> torch.Tensor:
    """Edit: scale the samples about ``center`` by ``factor`` > 0."""
    if factor <= 0:
        raise ValueError(f"factor must be > 0, got {factor}")
    c = torch.as_tensor(center, dtype=x.dtype)
    return c + factor * (x - c)


def move_mass(x: torch.Tensor, fraction: float, delta, region=None, generator=None) -> torch.Tensor:
    """Edit: move a random ``fraction`` in [0, 1] of the samples (those in ``region(x) -> bool (n,)``
    when given) by ``delta``, like a drag that moves part of an image."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    pick = torch.rand(x.shape[0], generator=generator, dtype=x.dtype) < fraction
    if region is not None:
        pick &= region(x)
    return torch.where(pick[:, None], x + torch.as_tensor(delta, dtype=x.dtype), x)
