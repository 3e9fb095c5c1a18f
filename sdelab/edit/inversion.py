"""Noise a clean latent to t0 and denoise it back: DDIM inversion (ODE), the forward process (SDE) or
Cycle-SDE (Eqs. 7-8), optionally masked.

Every editor is ``inv = invert(model, x0)``, an edit of ``inv.x_t0``, then ``reconstruct(model, inv, edited)``.
Works over any DiffusionModel, without gradients (inference only); the equations live in sdelab.sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sdelab.models.base import DiffusionModel, PerStep
from sdelab.samplers import SAMPLERS, sampler
from sdelab.sampling import CycleNoise, StoredNoise, cycle_sde_noises, ddim_invert, denoise, forward_chain
from sdelab.schedules import time_grid

METHODS = tuple(SAMPLERS)  # "ode", "sde", "cycle-sde"


@dataclass
class Inversion:
    """A clean latent x0 noised to t0: ``trajectory[i]`` is the latent at ``grid[i]`` (trajectory[0] = x_t0).

    method "ode": the DDIM-inverted trajectory (Eq. 6, eta = 0, run upwards); denoised with eta = 0.
    method "sde": the stored forward chain (Eq. 7); denoised with eta = 1 and fresh noise.
    method "cycle-sde": the stored forward chain (Eq. 7); denoised with eta = 1 and the Eq. 8 noises.
    prompt, guidance, lora_scale: the conditioning of the inversion's eps (ODE) or of the Eq. 8 noises (Cycle-SDE).
    """

    method: str
    grid: torch.Tensor  # (steps + 1,) from t0 down to the data level
    trajectory: list[torch.Tensor]  # steps + 1 latents (n, c, h, w)
    prompt: str | None = None
    guidance: PerStep = 1.0
    lora_scale: PerStep | None = None

    @property
    def x_t0(self) -> torch.Tensor:
        return self.trajectory[0]

    @property
    def x0(self) -> torch.Tensor:
        return self.trajectory[-1]


@torch.no_grad()
def invert(model: DiffusionModel, x0: torch.Tensor, steps: int = 120, t0: float = 0.6, method: str = "cycle-sde", *,
           prompt: str | None = None, guidance: PerStep = 1.0, lora_scale: PerStep | None = None,
           generator: torch.Generator | None = None, progress: bool = True) -> Inversion:
    """Noise x0 (n, c, h, w) to t0 on ``time_grid(model.schedule, steps, t0)`` by DDIM inversion or the forward chain.

    The defaults are SDE-Drag's grid (the official code's N = 200 intervals over [0, T], t0 = 0.6: 120 steps).
    The forward chain ("sde", "cycle-sde") draws its noise from ``generator`` (on x0's device); DDIM
    inversion ("ode") is deterministic and evaluates eps under (prompt, guidance, lora_scale). Work in x0's
    dtype (float64 shows Cycle-SDE's exactness).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    model.check_conditioning(prompt, guidance)
    grid = time_grid(model.schedule, steps=steps, t0=t0)
    if method == "ode":
        eps_model = model.eps_model(prompt, guidance, lora_scale)
        trajectory = ddim_invert(eps_model, model.schedule, x0, grid, progress=progress)
    else:
        trajectory = forward_chain(model.schedule, x0, grid, generator=generator, progress=progress)
    return Inversion(method, grid, trajectory, prompt, guidance, lora_scale)


@torch.no_grad()
def cycle_noises(model: DiffusionModel, inversion: Inversion, *, chain_batch: int = 1,
                 progress: bool = False) -> list[torch.Tensor]:
    """Eq. 8 for a Cycle-SDE inversion: the noises that map its stored chain onto itself, eps under the inversion's
    conditioning. They depend on neither the backward condition nor the mask, so one list serves every
    ``reconstruct`` of the inversion. chain_batch: chain samples of that many steps per eps call."""
    if not sampler(inversion.method).replay:
        raise ValueError(f"inversion must be a Cycle-SDE inversion (method 'cycle-sde'), got {inversion.method!r}")
    eps_chain = model.eps_model(inversion.prompt, inversion.guidance, inversion.lora_scale)
    return cycle_sde_noises(eps_chain, model.schedule, inversion.trajectory, inversion.grid,
                            eta=sampler(inversion.method).eta, batch_steps=chain_batch, progress=progress)


@torch.no_grad()
def reconstruct(model: DiffusionModel, inversion: Inversion, x_t0: torch.Tensor | None = None, *,
                prompt: str | None = None, guidance: PerStep | None = None, mask: torch.Tensor | None = None,
                generator: torch.Generator | None = None, chain_batch: int | None = None,
                noises: list[torch.Tensor] | None = None, progress: bool = True) -> torch.Tensor:
    """Denoise the (edited) x_t0 from t0 to the data level with the inversion's sampler.

    prompt / guidance: the backward pass's conditioning; None keeps the inversion's (pass prompt="" for
    the unconditional model). guidance may be a function of t; the LoRA scale is always the inversion's.
    Cycle-SDE's Eq. 8 noise takes eps of the stored chain sample under the inversion's conditioning: the
    same as the backward step unless changed here (image-to-image: the source prompt for the noises, the
    target prompt backwards). "sde" draws fresh noise from ``generator``.
    chain_batch (Cycle-SDE): None evaluates the stored chain sample's eps in the backward step's own call (under
    another backward condition, in a call of its own); k evaluates the chain samples of k steps per call
    (``CycleNoise``); same result.
    noises (Cycle-SDE): the Eq. 8 noises from ``cycle_noises(model, inversion)``, computed once for several
    reconstructions of one inversion (other targets or masks); the same result as computing them here.
    mask: bool, broadcastable to x_t0, True = editable; after every step the latent outside it is replaced
    by the stored trajectory at the same level, so the result equals x0 there (as SDE-Drag does).
    Without an edit, Cycle-SDE returns x0 up to rounding; DDIM only up to its discretisation error.
    """
    x = inversion.x_t0 if x_t0 is None else x_t0
    if x.shape != inversion.x_t0.shape:
        raise ValueError(f"x_t0 must have the inversion's shape {tuple(inversion.x_t0.shape)}, got {tuple(x.shape)}")
    chosen = sampler(inversion.method)
    if noises is not None and (not chosen.replay or chain_batch is not None):
        raise ValueError(f"noises are Cycle-SDE's Eq. 8 noises, given instead of chain_batch; got them for method "
                         f"{inversion.method!r} with chain_batch={chain_batch!r}")
    prompt = inversion.prompt if prompt is None else prompt
    guidance = inversion.guidance if guidance is None else guidance
    eps_model = model.eps_model(prompt, guidance, inversion.lora_scale)
    noise = None  # "sde": fresh noise from the generator; "ode": none
    if noises is not None:
        noise = StoredNoise(noises)
    elif chosen.replay:  # Eq. 8 from the stored chain; its eps in each backward call when the conditioning is one
        same = chain_batch is None and (prompt, guidance) == (inversion.prompt, inversion.guidance)
        eps_chain = None if same else model.eps_model(inversion.prompt, inversion.guidance, inversion.lora_scale)
        noise = CycleNoise(model.schedule, inversion.trajectory, inversion.grid, eta=chosen.eta, eps_model=eps_chain,
                           batch_steps=chain_batch or 1)
    return denoise(eps_model, model.schedule, x, inversion.grid, eta=chosen.eta, generator=generator, noise=noise,
                   mask=mask, chain=inversion.trajectory, progress=progress)


def roundtrip(model: DiffusionModel, x0: torch.Tensor, steps: int = 120, t0: float = 0.6, method: str = "cycle-sde",
              *, prompt: str | None = None, guidance: PerStep = 1.0, generator: torch.Generator | None = None,
              progress: bool = True) -> torch.Tensor:
    """Invert x0 to t0 and denoise it back without an edit: the reconstruction x0_hat (x0's shape and dtype)."""
    inversion = invert(model, x0, steps, t0, method, prompt=prompt, guidance=guidance, generator=generator,
                       progress=progress)
    return reconstruct(model, inversion, generator=generator, progress=progress)
