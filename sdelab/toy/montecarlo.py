"""Theorems 3.1-3.3 by sampling: kNN estimates of KL(p~_t || p_t) along ODE, SDE and Cycle-SDE runs.

One run (``kl_curve``), on a Gaussian mixture q_0 with its exact eps and the grid ``time_grid(schedule,
steps, t0)``:

1. Noise: x'_t0 ~ q_t0. For Cycle-SDE the whole forward chain (Eq. 7) from x'_0 ~ q_0 is stored and
   x'_t0 is its top.
2. Edit: x~_t0 = edit(x'_t0, generator). An edit is any callable (n, d) -> (n, d), e.g. an operator of
   ``sdelab.toy.priors`` (``shift``, ``move_mass``: a drag moves part of the noisy image) or the
   replacement by samples of a mismatched prior (``lambda x, g: prior.sample(len(x), g)``), which
   forgets x'_t0. For ODE and SDE only the law p~_t0 of x~_t0 matters. For Cycle-SDE the edit also
   fixes the coupling: the backward pass starts from x~_t0 and replays the Eq. 8 noises of the
   UNEDITED chain of x'_t0 (``denoise(..., noise=CycleNoise(schedule, chain, grid))``), as SDE-Drag does.
3. Denoise from x~_t0 with Eq. 6 at eta (ODE: eta = 0, SDE: eta = 1, Cycle-SDE: eta = 1 and replayed
   noises), keeping the samples at ``checkpoints`` grid times: these are samples of p~_t.
4. Reference p_t: with ``reference="sampler"`` (the theorems' p_t), the same sampler run from an
   independent unedited start with independent noise; for Cycle-SDE that run reproduces its own
   forward chain exactly (Thm 3.3 without an edit), so the chain itself is used. With
   ``reference="exact"``, fresh samples of the true marginal q_t: this adds the sampler's
   discretisation error to the KL.
5. KL(p~_t || p_t) by ``knn_kl_bootstrap`` at every checkpoint. Edited and reference samples are
   independent draws, as the estimator needs.

Theorems: the SDE's and Cycle-SDE's KL falls from t0 to 0 (3.1, 3.3; each Eq. 6 step with eta > 0 is
a Markov kernel, so KL cannot grow); the ODE's is constant (3.2; each step is a bijection), up to the
estimator's bias, which changes with the shape of the distributions (``sdelab.toy.knn``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sdelab.samplers import sampler, sampler_at
from sdelab.sampling import CycleNoise, check_eta, denoise, forward_chain
from sdelab.schedules import VPSchedule, time_grid
from sdelab.toy.gmm import GaussianMixture
from sdelab.toy.knn import knn_kl_bootstrap

Edit = Callable[[torch.Tensor, torch.Generator], torch.Tensor]



def sampler_kwargs(name: str) -> dict:
    """kl_curve's keyword arguments for one of the paper's samplers ('ode', 'sde', 'cycle-sde')."""
    chosen = sampler(name)
    return dict(eta=chosen.eta, cycle=chosen.replay)


@dataclass
class KLCurve:
    """KL(p~_t || p_t) with its band at the checkpoint times of one run, and the samples there."""

    sampler: str  # the name of ``sdelab.samplers.sampler_at(eta, cycle)``
    label: str  # its label, for figures and tables
    eta: float
    steps: int
    t0: float
    times: torch.Tensor  # (c,) grid times, t0 first and the data level last
    kl: np.ndarray  # (c,)
    low: np.ndarray  # (c,) band of level ``level``
    high: np.ndarray  # (c,)
    edited: list[torch.Tensor]  # c samples of p~_t, each (n, d)
    reference: list[torch.Tensor]  # c samples of p_t, each (n, d)


def _check(eta: float, cycle: bool, n: int, checkpoints: int, steps: int, reference: str) -> None:
    check_eta(eta)
    if cycle and eta == 0:
        raise ValueError("eta must be > 0 for Cycle-SDE (Eq. 8 divides by rho_s), got 0")
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    if not isinstance(checkpoints, int) or not 2 <= checkpoints <= steps + 1:
        raise ValueError(f"checkpoints must be an integer in [2, steps + 1 = {steps + 1}], got {checkpoints!r}")
    if reference not in ("sampler", "exact"):
        raise ValueError(f"reference must be 'sampler' or 'exact', got {reference!r}")


def _run(eps_model, schedule, x, grid, eta, keep, generator, chain=None) -> list[torch.Tensor]:
    """Denoise x over grid and return the samples at the grid indices ``keep`` (index 0 is x itself)."""
    kept = {0: x}

    def callback(step: dict):
        if step["i"] + 1 in keep:
            kept[step["i"] + 1] = step["x"]

    noise = None if chain is None else CycleNoise(schedule, chain, grid, eta=eta)
    denoise(eps_model, schedule, x, grid, eta=eta, generator=generator, noise=noise, callback=callback)
    return [kept[i] for i in keep]


def kl_curve(q0: GaussianMixture, schedule: VPSchedule, edit: Edit, *, generator: torch.Generator,
             eta: float = 1.0, cycle: bool = False, steps: int = 120, t0: float = 0.6, n: int = 5000,
             checkpoints: int = 7, k: int = 5, n_boot: int = 30, level: float = 0.95,
             reference: str = "sampler") -> KLCurve:
    """KL(p~_t || p_t) along one sampler started at t0 from edited vs unedited samples (module docstring).

    eta in [0, 1] sets Eq. 6's noise (0 = ODE, 1 = SDE); cycle=True replays the unedited chain's Eq. 8
    noises (Cycle-SDE). checkpoints: how many evenly spaced grid times, t0 and the data level included.
    """
    grid = time_grid(schedule, steps, t0)  # (steps + 1,); checks steps and t0
    _check(eta, cycle, n, checkpoints, steps, reference)
    keep = sorted({int(i) for i in np.linspace(0, steps, checkpoints).round()})
    alpha, sigma = schedule.alpha(grid), schedule.sigma(grid)
    eps_model = q0.eps_model(schedule)

    # independent streams, so that runs differing only in eta share their starts, edits and bootstrap draws
    seeds = torch.randint(2**62, (5,), generator=generator).tolist()
    g_edited, g_edited_noise, g_ref, g_ref_noise = (torch.Generator().manual_seed(s) for s in seeds[:4])
    rng = np.random.default_rng(seeds[4])

    def start(g):  # x'_t0 ~ q_t0 and, for Cycle-SDE, the stored forward chain it tops
        if cycle:
            chain = forward_chain(schedule, q0.sample(n, g), grid, generator=g)
            return chain[0], chain
        return q0.marginal(alpha[0], sigma[0]).sample(n, g), None

    x_t0, chain = start(g_edited)  # (n, d)
    x_edited = edit(x_t0, g_edited)
    if x_edited.shape != x_t0.shape:
        raise ValueError(f"edit must return the shape of its input {tuple(x_t0.shape)}, got {tuple(x_edited.shape)}")
    edited = _run(eps_model, schedule, x_edited, grid, eta, keep, g_edited_noise, chain)

    if reference == "exact":
        ref = [q0.marginal(alpha[i], sigma[i]).sample(n, g_ref) for i in keep]
    else:
        x_ref, chain_ref = start(g_ref)
        ref = [chain_ref[i] for i in keep] if cycle else _run(eps_model, schedule, x_ref, grid, eta, keep, g_ref_noise)

    bands = np.array([knn_kl_bootstrap(a, b, k=k, n_boot=n_boot, level=level, seed=rng)
                      for a, b in zip(edited, ref, strict=True)])
    chosen = sampler_at(eta, cycle)
    return KLCurve(chosen.name, chosen.label, float(eta), steps, t0, grid[keep], *bands.T, edited, ref)


def sweep(q0: GaussianMixture, schedule: VPSchedule, edit: Edit, name: str, values: Sequence, *, seed: int = 0,
          **kwargs) -> list[KLCurve]:
    """``kl_curve`` once per value of one argument: name is 'eta', 'steps' or 't0'; other kwargs pass on.

    Every run gets a fresh ``torch.Generator`` seeded with ``seed`` (common random numbers: the same
    data, edit and noise draws), so the differences between values are not noise of the starts.
    ``checkpoints`` defaults to 2 (t0 and the data level only).
    """
    if name not in ("eta", "steps", "t0"):
        raise ValueError(f"name must be 'eta', 'steps' or 't0', got {name!r}")
    kwargs.setdefault("checkpoints", 2)
    return [kl_curve(q0, schedule, edit, generator=torch.Generator().manual_seed(seed), **(kwargs | {name: v}))
            for v in values]
