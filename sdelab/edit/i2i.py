"""Image-to-image editing (the paper's section 5.2): SDEdit and DiffEdit with an ODE, an SDE or Cycle-SDE.

Every edit is ``invert`` under the source condition to t0, then ``reconstruct`` under the target condition
(sdelab.edit.inversion; the equations live in sdelab.sampling):
- "ode": DDIM inversion (Eq. 6, eta = 0, upwards), then DDIM;
- "sde": the forward process (Eq. 7; its marginal at t0 is q(x_t0 | x0), SDEdit's noising), then DDPM with
  fresh noise;
- "cycle-sde": the stored forward chain, then Eq. 6 at eta = 1 with the Eq. 8 noises computed under the source
  condition while the backward step runs under the target (the paper's SDE image-to-image).
DiffEdit (Couairon et al. 2022) adds a mask from the difference of the eps predictions under the two conditions
(``diffedit_mask``) and replaces the latent outside it after every step by the stored trajectory.

Steps: ``steps`` counts the whole diffusion (the paper's 50), so an edit from t0 runs round(steps * t0) of them,
as diffusers' ``strength`` does. Guidance: the backward pass uses ``guidance`` (the paper: CFG 7.5 on Stable
Diffusion); the inversion's eps (DDIM) and the Eq. 8 noises (Cycle-SDE) use ``inversion_guidance``, 1 by default:
DiffEdit encodes without guidance, and DDIM inversion drifts further with guidance above 1 (notebook 05).
prompt, source, target: one condition for the batch, or one per image where the model takes that (digits).
"""

from __future__ import annotations

import torch

from sdelab.edit.inversion import METHODS, invert, reconstruct
from sdelab.models.base import DiffusionModel, PerStep
from sdelab.sampling import add_noise
from sdelab.schedules import check_t0, time_grid


def edit_steps(steps: int, t0: float) -> int:
    """Steps from t0 to the data level for ``steps`` over the whole diffusion: round(steps * t0), at least 1."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    return max(1, round(steps * check_t0(t0)))


@torch.no_grad()
def translate(model: DiffusionModel, x0: torch.Tensor, source, target, *, method: str, t0: float, steps: int = 50,
              guidance: PerStep = 1.0, inversion_guidance: PerStep = 1.0, mask: torch.Tensor | None = None,
              generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
    """Edit latents x0 (n, C, h, w) from the ``source`` to the ``target`` condition: invert under the source to
    t0 with ``method`` ("ode", "sde", "cycle-sde"), reconstruct under the target (module docstring).

    mask: bool broadcastable to x0, True = editable (None: everything); the result equals x0 outside it.
    Returns the edited x0. With target = source, equal guidances and no mask, "cycle-sde" returns x0 up to rounding.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    model.check_conditioning(target, guidance)
    inv = invert(model, x0, edit_steps(steps, t0), t0, method, prompt=source, guidance=inversion_guidance,
                 generator=generator, progress=progress)
    return reconstruct(model, inv, prompt=target, guidance=guidance, mask=mask, generator=generator,
                       progress=progress)


def sdedit(model: DiffusionModel, x0: torch.Tensor, target, *, method: str = "sde", t0: float = 0.5,
           steps: int = 50, source=None, guidance: PerStep = 1.0, inversion_guidance: PerStep = 1.0,
           generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
    """SDEdit (Meng et al. 2022): noise x0 to t0 and denoise it under ``target``. method "sde" is SDEdit itself
    (fresh noise); "ode" DDIM-inverts under ``source`` instead; "cycle-sde" replays the forward chain (Eq. 8)."""
    return translate(model, x0, source, target, method=method, t0=t0, steps=steps, guidance=guidance,
                     inversion_guidance=inversion_guidance, generator=generator, progress=progress)


@torch.no_grad()
def diffedit_mask(model: DiffusionModel, x0: torch.Tensor, source, target, *, strength: float = 0.5, maps: int = 10,
                  ratio: float = 3.0, guidance: PerStep = 1.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """DiffEdit's mask: where eps under ``target`` and under ``source`` differ. bool (n, 1, h, w), True = edit.

    x0 is noised to the level ``strength`` (a fraction of the diffusion) ``maps`` times with fresh noise;
    |eps_target - eps_source| is averaged over the draws and the channels, clipped at ``ratio`` times its mean
    over the image, divided by that bound and thresholded above 0.5, as diffusers' DiffEdit pipeline does
    (its defaults: strength 0.5, 10 maps, ratio 3; its mean runs over the whole batch, ours per image).
    Where source and target give the same eps everywhere, the mask is empty.
    """
    if not isinstance(maps, int) or maps < 1:
        raise ValueError(f"maps must be a positive integer, got {maps!r}")
    if not ratio > 0:
        raise ValueError(f"ratio must be > 0, got {ratio}")
    if not 0 < strength <= 1:
        raise ValueError(f"strength must lie in (0, 1], got {strength}")
    t = time_grid(model.schedule, 1, strength)[0]
    eps_source, eps_target = model.eps_model(source, guidance), model.eps_model(target, guidance)
    diff = torch.zeros_like(x0[:, :1])  # (n, 1, h, w)
    for _ in range(maps):
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x_t = add_noise(x0, model.schedule, t, noise)
        diff += (eps_target(x_t, t) - eps_source(x_t, t)).abs().mean(1, keepdim=True) / maps
    bound = ratio * diff.mean((1, 2, 3), keepdim=True)  # (n, 1, 1, 1); 0 where the conditions agree everywhere
    return (diff.clamp(max=bound) > 0.5 * bound) & (bound > 0)


def diffedit(model: DiffusionModel, x0: torch.Tensor, source, target, *, method: str = "cycle-sde", t0: float = 0.5,
             steps: int = 50, guidance: PerStep = 1.0, inversion_guidance: PerStep = 1.0,
             mask: torch.Tensor | None = None, generator: torch.Generator | None = None,
             progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """DiffEdit from ``source`` to ``target`` with "ode" (DDIM inversion, the paper's baseline) or "cycle-sde" (the
    paper's SDE); "sde" (fresh noise) also runs. mask: DiffEdit's, computed with ``diffedit_mask`` (guidance
    ``guidance``) when None. Returns (edited x0, mask)."""
    if mask is None:
        mask = diffedit_mask(model, x0, source, target, guidance=guidance, generator=generator)
    out = translate(model, x0, source, target, method=method, t0=t0, steps=steps, guidance=guidance,
                    inversion_guidance=inversion_guidance, mask=mask, generator=generator, progress=progress)
    return out, mask
