"""One content edit at any t0: drag a whole mode of the toy onto another, and measure what survives it.

A user selects an object in the clean image and drags it; SDE-Drag applies the drag to the latent at t0.
Here the object is the set of samples of q_0 nearest to the ``source`` mode, and the drag moves their
content by mu_target - mu_source. At level t0 the noisy sample is x_t0 = alpha_t0 x_0 + sigma_t0 z, so the
same content edit is the shift x_t0 + alpha_t0 (mu_target - mu_source). The edited law at t0 is then the
noised version of one edited data law, whatever t0: differences between t0s are the sampler's. (A fixed
window and shift at t0, as in notebook 04's section 1, selects different samples at each t0 and moves their
content by shift / alpha_t0, a different edit at each t0.)

Each sampler runs its editing pipeline per sample, so that what became of every sample can be checked:
- ode: DDIM inversion of x_0 to t0 (ODE-Drag), the edit, DDIM back (Eq. 6, eta = 0).
- sde: the forward chain (Eq. 7), the edit, DDPM back with fresh noise (eta = 1).
- cycle-sde: the forward chain, the edit, Eq. 6 back with the chain's Eq. 8 noises (SDE-Drag).
Measures of fidelity (fractions of samples, so their noise is binomial, sqrt(f (1 - f) / n)): ``edit_kept``,
the dragged samples that end nearest to the target mode; ``edit_undone``, those that end back in the source
mode; ``content_kept``, the others that end nearest to their own mode. The realism side of the trade-off is
measured exactly in 1-D (notebook 04).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sdelab.samplers import sampler
from sdelab.sampling import CycleNoise, ddim_invert, denoise, forward_chain
from sdelab.schedules import VPSchedule, time_grid
from sdelab.toy.gmm import GaussianMixture
from sdelab.toy.modes import nearest_mode


@dataclass
class ModeDrag:
    """One run of ``mode_drag``: the samples and the two fractions of the module docstring."""

    sampler: str
    t0: float
    x0: torch.Tensor  # (n, d) the clean samples before the edit
    moved: torch.Tensor  # (n,) bool, the samples of the source mode (the dragged object)
    x_t0: torch.Tensor  # (n, d) the edited noisy samples at t0
    output: torch.Tensor  # (n, d) the edited run at the data level
    edit_kept: float
    edit_undone: float
    content_kept: float


def _pipeline(name: str, eps_model, schedule: VPSchedule, x0, grid, shift, moved, generator):
    """Noise x0 to t0 with the sampler's inversion, add ``shift`` to the ``moved`` rows, denoise: (x_t0, output)."""
    chosen = sampler(name)
    if chosen.name == "ode":
        trajectory = ddim_invert(eps_model, schedule, x0, grid)
    else:
        trajectory = forward_chain(schedule, x0, grid, generator=generator)
    x_t0 = torch.where(moved[:, None], trajectory[0] + shift, trajectory[0])
    noise = CycleNoise(schedule, trajectory, grid, eta=chosen.eta) if chosen.replay else None
    return x_t0, denoise(eps_model, schedule, x_t0, grid, eta=chosen.eta, generator=generator, noise=noise)


def mode_drag(q0: GaussianMixture, schedule: VPSchedule, sampler_name: str, source: int, target: int, *,
              t0: float = 0.6, steps: int = 50, n: int = 10_000, generator: torch.Generator) -> ModeDrag:
    """Drag the ``source`` mode of q0 onto the ``target`` mode at t0 and denoise with one sampler (module docstring)."""
    k = len(q0.weights)
    for name, mode in (("source", source), ("target", target)):
        if not isinstance(mode, int) or not 0 <= mode < k:
            raise ValueError(f"{name} must be a mode index in [0, {k - 1}], got {mode!r}")
    if source == target:
        raise ValueError(f"source and target must differ, got {source} for both")
    if not isinstance(n, int) or n < 4:
        raise ValueError(f"n must be an integer >= 4, got {n!r}")
    grid = time_grid(schedule, steps, t0)  # (steps + 1,); checks steps and t0
    sampler(sampler_name)  # checks the name
    eps_model = q0.eps_model(schedule)
    alpha_t0 = schedule.alpha(grid[0]).item()
    shift = alpha_t0 * (q0.means[target] - q0.means[source])  # (d,) the content's displacement seen at t0
    x0 = q0.sample(n, generator)  # (n, d)
    own = nearest_mode(x0, q0.means)  # (n,)
    moved = own == source
    if not moved.any() or moved.all():
        raise ValueError(f"the source mode must hold some but not all of the n = {n} samples; increase n")
    x_t0, output = _pipeline(sampler_name, eps_model, schedule, x0, grid, shift, torch.as_tensor(moved), generator)
    landed = nearest_mode(output, q0.means)
    return ModeDrag(sampler_name, t0, x0, torch.as_tensor(moved), x_t0, output,
                    edit_kept=float(np.mean(landed[moved] == target)),
                    edit_undone=float(np.mean(landed[moved] == source)),
                    content_kept=float(np.mean(landed[~moved] == own[~moved])))
