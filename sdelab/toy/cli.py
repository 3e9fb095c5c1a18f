"""KL(p~_t || p_t) from t0 to 0 for the 1-D toy (Theorems 3.1-3.3): ODE and SDE exact, Cycle-SDE by Monte Carlo.

    python -m sdelab toy-kl --sampler {ode,sde,cycle-sde} --prior {shifted,narrow,skewed} [--steps N] [--t0 T] [--json]

Setup (SPEC section 3): q_0 = 0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2) with its exact eps, Stable Diffusion's
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

import argparse
import json

import numpy as np
import torch
from scipy.special import ndtr, ndtri

from sdelab.schedules import VPSchedule, time_grid
from sdelab.toy.exact import exact_chain, x_grid
from sdelab.toy.gmm import GaussianMixture, bimodal_1d
from sdelab.toy.montecarlo import kl_curve
from sdelab.toy.priors import PRIORS_1D, mismatched_prior

SAMPLERS = ("ode", "sde", "cycle-sde")


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
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
    edited = mismatched_prior(prior)
    schedule, q0 = VPSchedule.stable_diffusion(), bimodal_1d()
    grid = time_grid(schedule, steps, t0)  # (steps + 1,)
    if sampler != "cycle-sde":
        chain = exact_chain(q0, edited, schedule, grid, eta=0.0 if sampler == "ode" else 1.0, x=x_grid(points))
        return {"t": grid.tolist(), "kl": chain.kl.tolist()}
    q_t0 = q0.marginal(schedule.alpha(grid[0]), schedule.sigma(grid[0]))
    curve = kl_curve(q0, schedule, quantile_edit(q_t0, edited), generator=torch.Generator().manual_seed(seed),
                     eta=1.0, cycle=True, steps=steps, t0=t0, n=samples, checkpoints=checkpoints)
    return {"t": curve.times.tolist(), "kl": curve.kl.tolist(), "low": curve.low.tolist(),
            "high": curve.high.tolist()}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _t0(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1], got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--sampler", required=True, choices=SAMPLERS,
                        help="ode and sde: exact density propagation; cycle-sde: Monte Carlo + kNN KL")
    parser.add_argument("--prior", required=True, choices=sorted(PRIORS_1D),
                        help="the edited start at t0: " + ", ".join(f"{k} = N({m}, {s}^2)"
                                                                    for k, (m, s) in PRIORS_1D.items()))
    parser.add_argument("--steps", type=_positive_int, default=120, help="sampling steps from t0 to 0 (120)")
    parser.add_argument("--t0", type=_t0, default=0.6, help="start level, fraction of the diffusion (0.6)")
    parser.add_argument("--json", action="store_true", help='print {"t": [...], "kl": [...]} (t0 first)')
    parser.add_argument("--points", type=_positive_int, default=2000, help="x-grid points, exact samplers (2000)")
    parser.add_argument("--samples", type=_positive_int, default=5000, help="Monte Carlo chains, cycle-sde (5000)")
    parser.add_argument("--checkpoints", type=_positive_int, default=13,
                        help="grid times with a KL estimate, cycle-sde (13; the exact samplers report every one)")
    parser.add_argument("--seed", type=int, default=0, help="random seed, cycle-sde (0)")


def run(args: argparse.Namespace) -> int:
    try:
        curve = toy_kl(args.sampler, args.prior, args.steps, args.t0, points=args.points, samples=args.samples,
                       checkpoints=args.checkpoints, seed=args.seed)
    except ValueError as err:  # a bad combination of arguments (e.g. more steps than timesteps below t0)
        raise SystemExit(f"toy-kl: error: {err}") from None
    if args.json:
        print(json.dumps(curve))
        return 0
    exact = args.sampler != "cycle-sde"
    how = f"exact, {args.points}-point x-grid" if exact else f"Monte Carlo, {args.samples} chains, kNN KL, 95% band"
    print(f"KL(p~_t || p_t), sampler {args.sampler} ({how}), prior {args.prior}, Stable Diffusion schedule, "
          f"{args.steps} steps from t0 = {args.t0}")
    print(f"{'t':>6}  {'KL':>12}" + ("" if exact else f"  {'band':>21}"))
    for i, (t, kl) in enumerate(zip(curve["t"], curve["kl"], strict=True)):
        band = "" if exact else f"  [{curve['low'][i]:9.5f}, {curve['high'][i]:9.5f}]"
        print(f"{t:>6}  {kl:12.8f}{band}")
    return 0
