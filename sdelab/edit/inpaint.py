"""Inpainting with an unconditional-style sampler (the paper's section 5.1): SDE (DDPM, eta = 1) against ODE (DDIM).

Sampling starts from pure noise at the top of the grid and runs Eq. 6 at the given eta; after every step the
known region (mask False, black) is replaced by the input noised to the new level, x'_s = alpha_s x0 + sigma_s n,
with ONE fixed noise draw n for all levels, and by x0 itself at the last (data) level. This is what diffusers'
StableDiffusionInpaintPipeline does with a 4-channel UNet; with strength 1 its fixed noise is the initial
latent, as here. Composed of ``time_grid``, ``add_noise`` and ``denoise(mask=..., chain=...)``.

Where ours and diffusers' pipeline differ (tests/test_inpaint.py checks the ODE case agrees to rounding):
- the grid: ``inpaint`` uses ``time_grid`` (999, 979, ..., 0 for 50 steps); diffusers' DDIMScheduler steps
  981, 961, ..., 1 and then to alphas_cumprod[0]: pass that grid to ``inpaint_latents`` to follow it;
- the mask: ours is resized to the latent size with PIL's bicubic filter and thresholded at 128
  (``load_mask``, docs/conventions.md); diffusers binarises at the image size, then takes the nearest pixel.
  They agree for masks that are constant on each latent pixel's 8 x 8 block, and on the digits (1 px).

``inpaint_dpm_solver`` runs the paper's own path on Stable Diffusion: that diffusers pipeline with
DPMSolverMultistepScheduler of order 1, ``dpmsolver++`` (ODE) against ``sde-dpmsolver++`` (SDE).
"""

from __future__ import annotations

import torch

from sdelab.models.base import DiffusionModel, PerStep
from sdelab.models.images import image_mask, model_image
from sdelab.samplers import SAMPLERS, Sampler
from sdelab.samplers import sampler as named
from sdelab.sampling import add_noise, check_eta, check_mask, denoise
from sdelab.schedules import time_grid


def known_region(model: DiffusionModel, x0: torch.Tensor, grid: torch.Tensor,
                 noise: torch.Tensor) -> list[torch.Tensor]:
    """The input at every level of the grid with one noise draw: add_noise(x0, grid[i], noise); x0 at the data level."""
    return [add_noise(x0, model.schedule, t, noise) for t in grid[:-1]] + [x0]


@torch.no_grad()
def inpaint_latents(model: DiffusionModel, x0: torch.Tensor, mask: torch.Tensor, *, eta: float,
                    grid: torch.Tensor, prompt=None, guidance: PerStep = 1.0, noise: torch.Tensor | None = None,
                    generator: torch.Generator | None = None, callback=None, progress: bool = False) -> torch.Tensor:
    """Inpaint latents x0 (n, C, h, w) where ``mask`` (bool, broadcastable to x0, True = to fill) is set.

    eta: 0 = ODE (DDIM), 1 = SDE (DDPM, fresh noise from ``generator``). grid: the times, from the top down to the
    data level. noise: the one draw (x0's shape) that starts the sampler at grid[0] and noises the known region at
    every level; drawn from ``generator`` when None. Returns the inpainted x0; the known region equals x0 exactly.
    """
    check_eta(eta)
    mask = check_mask(mask, x0)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    known = known_region(model, x0, grid, noise)
    return denoise(model.eps_model(prompt, guidance), model.schedule, noise, grid, eta=eta, generator=generator,
                   chain=known, mask=mask, callback=callback, progress=progress)


def _pixels(model: DiffusionModel, image) -> torch.Tensor:
    """One image in any form ``model_image`` takes, or a batch tensor (n, c, H, W) in [0, 1] image by image."""
    if isinstance(image, torch.Tensor) and image.ndim == 4:
        return torch.cat([model_image(im, model.image_channels) for im in image])
    return model_image(image, model.image_channels)


@torch.no_grad()
def inpaint(model: DiffusionModel, image, mask, *, eta: float, steps: int = 50, prompt=None, guidance: PerStep = 1.0,
            seed: int = 0, progress: bool = True) -> torch.Tensor:
    """Fill the white part of ``mask`` in ``image`` with the model, sampling with Eq. 6 at ``eta`` (module docstring).

    model: any DiffusionModel. image: a path, PIL image or array / tensor the model takes, or a batch (n, c, H, W)
    in [0, 1]. mask: white (True) = to fill, at the image's size, in any form ``load_mask`` takes (shared by the
    batch). eta: 0 = ODE (DDIM), 1 = SDE (DDPM). steps: on ``time_grid(model.schedule, steps)``. prompt, guidance:
    conditional models only. seed: one generator on the model's device for the encoder, the fixed noise and the
    SDE's noise. Returns images (n, c, H, W) in [0, 1].
    """
    check_eta(eta)
    pixels = _pixels(model, image)
    grid = time_grid(model.schedule, steps)  # checks steps
    model.check_conditioning(prompt, guidance)
    gen = torch.Generator(device=model.device).manual_seed(seed)
    x0 = model.encode(pixels, generator=gen).to(model.latent_dtype)
    editable = image_mask(mask, tuple(pixels.shape[-2:]), tuple(x0.shape[-2:])).to(x0.device)
    out = inpaint_latents(model, x0, editable, eta=eta, grid=grid, prompt=prompt, guidance=guidance, generator=gen,
                          progress=progress)
    return model.decode(out)


# ---- the paper's path on Stable Diffusion ------------------------------------------------------------------
DPM_SOLVER = {SAMPLERS["ode"]: "dpmsolver++", SAMPLERS["sde"]: "sde-dpmsolver++"}  # Sampler -> algorithm_type


def dpm_solver(name: str | Sampler) -> Sampler:
    """The sampler (a name of ``sdelab.samplers`` or a Sampler) DPM-Solver++ has: ODE or SDE; ValueError otherwise."""
    chosen = named(name)
    if chosen not in DPM_SOLVER:
        raise ValueError(f"sampler must be one of {[s.name for s in DPM_SOLVER]} for DPM-Solver++, got {chosen.name!r}")
    return chosen


def dpm_solver_pipeline(model, name: str | Sampler):
    """diffusers' StableDiffusionInpaintPipeline over the model's networks with DPMSolverMultistepScheduler of
    order 1: ``dpmsolver++`` for the ODE sampler ("ode"), ``sde-dpmsolver++`` for the SDE ("sde"), the paper's
    inpainting."""
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionInpaintPipeline

    algorithm = DPM_SOLVER[dpm_solver(name)]
    scheduler = DPMSolverMultistepScheduler.from_config(model.scheduler.config, algorithm_type=algorithm,
                                                        solver_order=1)
    return StableDiffusionInpaintPipeline(vae=model.vae, text_encoder=model.text_encoder, tokenizer=model.tokenizer,
                                          unet=model.unet, scheduler=scheduler, safety_checker=None,
                                          feature_extractor=None, requires_safety_checker=False)


@torch.no_grad()
def inpaint_dpm_solver(model, image, mask, prompt: str = "", *, sampler: str | Sampler = "sde", steps: int = 50,
                       guidance: float = 7.5, seed: int = 0, progress: bool = True) -> torch.Tensor:
    """The paper's inpainting on Stable Diffusion: diffusers' pipeline with first-order DPM-Solver++ (ODE) or
    SDE-DPM-Solver++ (SDE). image: a path, PIL image or tensor (1, 3, H, W) in [0, 1], H and W multiples of 8;
    mask: white = to fill, at the image's size. Returns images (1, 3, H, W) in [0, 1] on the model's device."""
    if getattr(model, "vae", None) is None:
        raise ValueError(f"model must be a StableDiffusion (diffusers networks), got {type(model).__name__}")
    chosen = dpm_solver(sampler)
    pixels = model_image(image, 3)
    size = tuple(pixels.shape[-2:])
    editable = image_mask(mask, size, size)  # checks the size; the pipeline resizes to the latent itself
    pipe = dpm_solver_pipeline(model, chosen)
    pipe.set_progress_bar_config(disable=not progress)
    gen = torch.Generator(device=model.device).manual_seed(seed)
    out = pipe(prompt=prompt, image=pixels, mask_image=editable[None, None].float(), height=size[0], width=size[1],
               num_inference_steps=steps, guidance_scale=guidance, generator=gen, output_type="pt")
    return out.images
