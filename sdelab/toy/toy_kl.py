"""KL(p~_t || p_t) from t0 to 0 for the 1-D toy (Theorems 3.1-3.3): ODE and SDE exact, Cycle-SDE by Monte Carlo.

The computation behind ``python -m sdelab toy-kl`` (``sdelab.cli.toy_kl``).

Setup (``sdelab.toy.canonical``): q_0 = 0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2) with its exact eps, Stable Diffusion's
1000-step schedule, the grid ``time_grid(schedule, steps, t0)``. The unedited start is q_t0, the edited
one the named mismatched prior (``sdelab.toy.priors``).

- ode, sde: EXACT. The densities are propagated through Eq. 6 (eta = 0 or 1) on an x-grid, no sampling
  (``sdelab.toy.exact``); KL at every grid time.
- cycle-sde: MONTE CARLO. Its noises depend on the forward path, so its marginals have no closed form:
  ``--samples`` forward chains from q_0; the edit maps the chain's top x'_t0 ~ q_t0 onto the prior by
  the monotone quantile map F_prior^-1(F_{q_t0}(x'_t0)) (so x~_t0 has exactly the prior's law and stays
  as close to x'_t0 as a map can); the backward pass replays the unedited chain's Eq. 8 noises
  (``sdelab.toy.montecarlo.kl_curve``). KL by the kNN estimator (``sdelab.toy.knn``) against an
  independent unedited chain, at ``--checkpoints`` grid times, with a bootstrap band.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import ndtr, ndtri

from sdelab.schedules import VPSchedule, time_grid
from sdelab.toy.exact import exact_chain, x_grid
from sdelab.toy.gmm import GaussianMixture, bimodal_1d
from sdelab.toy.montecarlo import kl_curve, sampler_kwargs
from sdelab.toy.priors import mismatched_prior


def quantile_edit(q_t0: GaussianMixture, prior: GaussianMixture):
    """Edit x -> F_prior^-1(F_{q_t0}(x)) for 1-D samples (n, 1): maps q_t0 exactly onto a Gaussian prior."""
    if prior.dim != 1 or len(prior.weights) != 1:
        raise ValueError(f"prior must be a 1-D Gaussian, got {prior}")
    w, mu, sd = (v.numpy() for v in (q_t0.weights, q_t0.means[:, 0], q_t0.covs[:, 0, 0].sqrt()))
    m, s = prior.means[0, 0].item(), prior.covs[0, 0, 0].sqrt().item()
    tiny = np.finfo(np.float64).tiny

    def edit(x: torch.Tensor, generator=None) -> torch.Tensor:
        u = (w * ndtr((x.numpy() - mu) / sd)).sum(1, keepdims=True)  # (n, 1) F_{q_t0}(x)
        return torch.as_tensor(m + s * ndtri(np.clip(u, tiny, 1 - 1e-16)), dtype=x.dtype)

    return edit


def toy_kl(sampler: str, prior: str, steps: int = 120, t0: float = 0.6, *, points: int = 2000, samples: int = 5000,
           checkpoints: int = 13, seed: int = 0) -> dict:
    """The curve as {"t": [...], "kl": [...]} from t0 to 0 (cycle-sde adds the band "low", "high")."""
    kwargs = sampler_kwargs(sampler)  # checks the name
    edited = mismatched_prior(prior)
    schedule, q0 = VPSchedule.stable_diffusion(), bimodal_1d()
    grid = time_grid(schedule, steps, t0)  # (steps + 1,)
    if sampler != "cycle-sde":
        chain = exact_chain(q0, edited, schedule, grid, eta=kwargs["eta"], x=x_grid(points))
        return {"t": grid.tolist(), "kl": chain.kl.tolist()}
    q_t0 = q0.marginal(schedule.alpha(grid[0]), schedule.sigma(grid[0]))
    curve = kl_curve(q0, schedule, quantile_edit(q_t0, edited), generator=torch.Generator().manual_seed(seed),
                     **kwargs, steps=steps, t0=t0, n=samples, checkpoints=checkpoints)
    return {"t": curve.times.tolist(), "kl": curve.kl.tolist(), "low": curve.low.tolist(),
            "high": curve.high.tolist()}
