"""SDE-Drag and ODE-Drag: drag points of an image by copy-pasting its noisy latent at t0 and denoising.

The paper's drag editor is one more ``invert`` -> edit x_t0 -> ``reconstruct`` (``sdelab.edit.inversion``):

1. Sub-steps (``drag_substeps``): a long drag is cut into m pieces of about ``step_size`` latent pixels.
2. Each sub-step noises the current latent to t0 (SDE-Drag: the Cycle-SDE forward chain, Eq. 7;
   ODE-Drag: DDIM inversion), copy-pastes the source windows onto the target windows of x_t0
   (``copy_paste``), and denoises back (SDE-Drag: Cycle-SDE with the chain's Eq. 8 noises; ODE-Drag:
   DDIM, eta = 0), with the mask restoring the outside after every step. The latent is carried from one
   sub-step to the next without decoding.
3. Guidance rises linearly from 1 at the data end to ``guidance`` at t0 and the LoRA scale falls on a
   cosine from 1 to 0.5 (``linear_ramp``, ``cosine_ramp``), for the backward step and its Eq. 8 noise alike.

An image of any size is dragged at a working size (``size``: the longer side, 512 for Stable Diffusion 1.5) and
comes back at its own size, its points and mask mapped along (docs/conventions.md, "Images, points and masks").

Every default is the official SDE-Drag code's (github.com/ML-GSAI/SDE-Drag), which has no ODE-Drag: this
module writes the paper's baseline with the same copy-paste on a DDIM-inverted latent.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

import torch
from PIL import Image
from tqdm.auto import tqdm

from sdelab.edit.inversion import invert, reconstruct
from sdelab.models.base import DiffusionModel, cosine_ramp, linear_ramp
from sdelab.models.images import (
    image_mask,
    latent_points,
    model_image,
    resize_image,
    scale_points,
    to_pil,
    working_size,
)
from sdelab.models.lora import lora_finetuned, lora_layers
from sdelab.schedules import time_grid

Substep = tuple[torch.Tensor, torch.Tensor]  # (sources, targets), int64 (k, 2) or (n, k, 2) latent (x, y)
INVERSION = {"sde": "cycle-sde", "ode": "ode"}  # the drag method -> how x0 is noised to t0 and denoised back


@dataclass
class DragResult:
    """What a drag returns: the edited image, its frames, the latent and everything needed to reproduce it."""

    image: Image.Image  # the input's size
    frames: list[Image.Image]  # the input, then the result of every sub-step, at the working size (or none)
    latent: torch.Tensor  # the final x0 (1, C, h, w)
    substeps: list[Substep]  # the (sources, targets) of every sub-step, latent (x, y)
    settings: dict  # every argument plus derived values, JSON-serialisable
    seconds: float = 0.0
    unet_calls: int = 0
    lora_losses: list[float] = field(default_factory=list)


# ---- the pieces, testable on a latent directly -------------------------------------------------------------
def drag_substeps(sources: torch.Tensor, targets: torch.Tensor, step_size: float = 2.0) -> list[Substep]:
    """Cut a drag into m sub-steps of about ``step_size`` latent pixels (the official code's rule).

    d = targets - sources, D = the largest |d| over the pairs; m = 1 if D <= step_size, else
    floor(D / step_size), plus one if that brings D / m closer to step_size. Sub-step i drags every pair
    from sources + trunc(i/m d) to sources + trunc((i+1)/m d). sources, targets: int64 (k, 2).
    """
    if step_size <= 0:
        raise ValueError(f"step_size must be > 0 latent pixels, got {step_size}")
    d = (targets - sources).double()
    D = float(d.norm(dim=-1).max())
    m = 1
    if D > step_size:
        m = int(D // step_size)
        if abs(D / m - step_size) > abs(D / (m + 1) - step_size):
            m += 1
    return [(sources + (i / m * d).trunc().long(), sources + ((i + 1) / m * d).trunc().long()) for i in range(m)]


def _window(r: int, s: int, t: int, size: int) -> tuple[int, int]:
    """Half-widths (below, above) of the copy window along one axis, clipped alike for source and target."""
    return min(r, s, t), min(r, size - 1 - s, size - 1 - t)


def copy_paste(x_t0: torch.Tensor, sources: torch.Tensor, targets: torch.Tensor, radius: int, alpha: float = 1.1,
               beta: float = 0.3, generator: torch.Generator | None = None) -> torch.Tensor:
    """SDE-Drag's edit of the noisy latent: every pair's source window is pasted, scaled by alpha, onto its target.

    x_t0 (n, c, h, w); sources, targets int64 (k, 2) latent (x, y) for every image, or (n, k, 2) per image.
    For each pair in order, per axis the window is [p - min(r, s, t), p + min(r, W-1-s, W-1-t)) around the
    source s and the target t alike; the source window is read, then becomes beta * source +
    sqrt(1 - beta^2) * N(0, I), then the target window becomes alpha * source (written last, so it wins
    where the windows overlap). Returns a new tensor; noise comes from ``generator`` on x_t0's device.
    """
    n, c, h, w = x_t0.shape
    if sources.ndim == 2:
        sources, targets = sources.expand(n, -1, -1), targets.expand(n, -1, -1)
    x = x_t0.clone()
    mix = math.sqrt(1 - beta**2)
    for b in range(n):
        for (sx, sy), (tx, ty) in zip(sources[b].tolist(), targets[b].tolist(), strict=True):
            (x_lo, x_hi), (y_lo, y_hi) = _window(radius, sx, tx, w), _window(radius, sy, ty, h)
            source = x[b, :, sy - y_lo: sy + y_hi, sx - x_lo: sx + x_hi].clone()  # (c, y_lo + y_hi, x_lo + x_hi)
            noise = torch.randn(source.shape, generator=generator, device=x.device, dtype=x.dtype)
            x[b, :, sy - y_lo: sy + y_hi, sx - x_lo: sx + x_hi] = beta * source + mix * noise
            x[b, :, ty - y_lo: ty + y_hi, tx - x_lo: tx + x_hi] = alpha * source
    return x


def paste_only(x0: torch.Tensor, substeps: list[Substep], radius: int, alpha: float = 1.1, beta: float = 0.3,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """The drag's copy-paste applied to the clean latent x0 (n, C, h, w), sub-step after sub-step, with no
    diffusion: the baseline that shows the damage an edit does before a sampler repairs it."""
    x = x0
    for sources, targets in substeps:
        x = copy_paste(x, sources, targets, radius, alpha, beta, generator)
    return x


def default_radius(latent_side: int) -> int:
    """The copy window's half-size for a latent whose longer side is ``latent_side``: the official 5 latent pixels
    on SD's 64-pixel latent (a 512-pixel longer side), scaled with the longer side, at least 2."""
    return max(2, round(5 * latent_side / 64))


def unet_calls_per_substep(method: str, steps: int) -> int:
    """UNet calls of one sub-step: DDIM inversion and DDIM take one each per step (ODE-Drag); the Cycle-SDE forward
    chain takes none and each backward step one, with the chain sample's eps in the same call (SDE-Drag)."""
    return steps * (2 if method == "ode" else 1)


@torch.no_grad()
def drag_latents(model: DiffusionModel, x0: torch.Tensor, substeps: list[Substep], *, method: str = "sde",
                 mask: torch.Tensor | None = None, prompt: str | None = None, t0: float = 0.6, steps: int = 120,
                 alpha: float = 1.1, beta: float = 0.3, radius: int = 5, guidance: float = 3.0,
                 lora_scale: Callable | None = None, generator: torch.Generator | None = None,
                 chain_batch: int | None = None, callback: Callable[[int, torch.Tensor], None] | None = None,
                 progress: bool = False) -> torch.Tensor:
    """Run the drag's sub-steps on a batch of latents x0 (n, C, h, w): noise to t0, copy-paste, denoise.

    method "sde" (SDE-Drag: Cycle-SDE) or "ode" (ODE-Drag: DDIM inversion and DDIM). mask: bool broadcastable
    to x0, True = editable. guidance is the maximum of the linear ramp (conditional models only); lora_scale
    a per-step schedule or None. chain_batch: how Cycle-SDE evaluates its stored chain (``reconstruct``; None, in
    each backward step's call, measured the faster by benchmarks/drag.py). callback(i, x) after sub-step i. The
    images of a batch share the sub-step count. progress: a bar over the UNet steps of all sub-steps (the unit
    that takes the time), with their rate and the time left.
    """
    grid = time_grid(model.schedule, steps, t0)
    cfg = linear_ramp(grid, 1.0, guidance) if model.conditional and guidance != 1 else 1.0
    total = None if chain_batch and method == "sde" else len(substeps) * unet_calls_per_substep(method, steps)
    bar = tqdm(total=total, disable=not progress, desc=f"{method.upper()}-Drag UNet steps", unit="step")

    def count(*_) -> None:  # a forward pre-hook must return None, else it replaces the UNet's inputs
        bar.update()

    hook = model.unet.register_forward_pre_hook(count)
    x = x0
    try:
        for i, (sources, targets) in enumerate(substeps):
            inv = invert(model, x, steps, t0, INVERSION[method], prompt=prompt, guidance=cfg, lora_scale=lora_scale,
                         generator=generator, progress=False)
            edited = copy_paste(inv.x_t0, sources, targets, radius, alpha, beta, generator)
            x = reconstruct(model, inv, edited, mask=mask, chain_batch=chain_batch if method == "sde" else None,
                            progress=False)
            if callback is not None:
                callback(i, x)
    finally:
        hook.remove()
        bar.close()
    return x


# ---- the editor ------------------------------------------------------------------------------------------
def _check(t0, steps, alpha, beta, radius, step_size, lora_steps, lora_rank, guidance, size) -> None:
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
        raise ValueError(f"size must be a positive integer (the working size's longer side in pixels) or None, "
                         f"got {size!r}")
    if not 0 < t0 <= 1:
        raise ValueError(f"t0 must lie in (0, 1], got {t0}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0 (the target window's scale), got {alpha}")
    if not 0 <= beta <= 1:
        raise ValueError(f"beta must lie in [0, 1] (the source window's kept fraction), got {beta}")
    if radius is not None and (not isinstance(radius, int) or radius < 1):
        raise ValueError(f"radius must be an integer >= 1 latent pixel (or None), got {radius!r}")
    if not step_size > 0:
        raise ValueError(f"step_size must be > 0 latent pixels, got {step_size}")
    if not isinstance(lora_steps, int) or lora_steps < 0:
        raise ValueError(f"lora_steps must be an integer >= 0, got {lora_steps!r}")
    if not isinstance(lora_rank, int) or lora_rank < 1:
        raise ValueError(f"lora_rank must be an integer >= 1, got {lora_rank!r}")
    if not guidance >= 1:
        raise ValueError(f"guidance must be >= 1 (the ramp's value at t0), got {guidance}")


def _points(points, name: str) -> list:
    """Points as plain lists (JSON-serialisable); latent_points checks their values."""
    try:
        return [[v.item() if hasattr(v, "item") else v for v in p] for p in points]
    except TypeError:
        raise ValueError(f"{name} must be a list of (x, y) pairs, got {points!r}") from None


def drag(model: DiffusionModel, image, source_points, target_points, mask=None, prompt: str = "", *,
         method: str = "sde", t0: float = 0.6, steps: int = 120, alpha: float = 1.1, beta: float = 0.3,
         radius: int | None = None, step_size: float = 2.0, guidance: float = 3.0, lora_steps: int = 0,
         lora_rank: int = 4, size: int | None = None, seed: int = 1234, frames: bool = True,
         progress: bool = True) -> DragResult:
    """Drag ``source_points`` to ``target_points`` (x, y image pixels) with SDE-Drag (method "sde") or ODE-Drag ("ode").

    See ``sde_drag`` for the arguments. Every bad argument raises ValueError before any UNet call.
    """
    if method not in INVERSION:
        raise ValueError(f"method must be one of {list(INVERSION)}, got {method!r}")
    _check(t0, steps, alpha, beta, radius, step_size, lora_steps, lora_rank, guidance, size)
    if prompt and not model.conditional:
        raise ValueError(f"prompt must be '' for the unconditional model {model.name}, got {prompt!r}")
    sources, targets = _points(source_points, "source_points"), _points(target_points, "target_points")
    if len(sources) != len(targets):
        raise ValueError(f"source_points and target_points must pair up, got {len(sources)} sources and "
                         f"{len(targets)} targets")
    pixels = model_image(image, model.image_channels)  # (1, c, H, W) in [0, 1]
    image_size = tuple(pixels.shape[-2:])
    latent_points(sources, image_size, 1, "source_points")  # inside the input: nothing is clamped
    latent_points(targets, image_size, 1, "target_points")
    work = image_size if size is None else working_size(image_size, size, model.pixels_per_latent)
    if any(side % model.pixels_per_latent for side in work):
        raise ValueError(f"image of (height, width) = {image_size} cannot be dragged at its own size: both sides must "
                         f"be multiples of {model.pixels_per_latent}; pass size (the working size's longer side, e.g. "
                         f"size=512 for SD 1.5; the command line's --size) to resize it and bring the result back")
    pixels = resize_image(pixels, work)
    src = latent_points(scale_points(sources, image_size, work), work, model.pixels_per_latent, "source_points")
    tgt = latent_points(scale_points(targets, image_size, work), work, model.pixels_per_latent, "target_points")
    grid = time_grid(model.schedule, steps, t0)  # checks steps against the schedule
    gen = torch.Generator(device=model.device).manual_seed(seed)
    x0 = model.encode(pixels, generator=gen)  # raises ValueError for an image the model cannot take
    latent_size = tuple(x0.shape[-2:])
    editable = None
    if mask is not None:
        editable = image_mask(mask, image_size, latent_size).to(x0.device)
    r = default_radius(max(latent_size)) if radius is None else radius
    substeps = drag_substeps(src, tgt, step_size)
    settings = dict(method=f"{method}-drag", model=model.name, source_points=sources, target_points=targets,
                    mask=mask is not None, prompt=prompt, t0=t0, steps=steps, alpha=alpha, beta=beta, radius=radius,
                    radius_used=r, step_size=step_size, guidance=guidance,
                    guidance_used=guidance if model.conditional else 1.0, lora_steps=lora_steps, lora_rank=lora_rank,
                    size=size, seed=seed, m=len(substeps), grid=[int(grid[0]), int(grid[-1])],
                    image_size=list(image_size), working_size=list(work), latent_size=list(latent_size),
                    device=str(model.device), dtype=str(model.dtype).removeprefix("torch."))

    start, calls, shots = time.perf_counter(), [0], [to_pil(pixels)[0]] if frames else []
    losses, lora_scale = [], None
    with ExitStack() as stack:
        if lora_steps:  # LoRA training is not part of the edit's UNet calls: count only after it
            losses = stack.enter_context(lora_finetuned(model, x0, prompt or None, steps=lora_steps, rank=lora_rank,
                                                        generator=gen, progress=progress))
        if lora_layers(model.unet):  # trained here, or by the caller (``lora_finetuned``) for several edits
            lora_scale = cosine_ramp(grid, 1.0, 0.5)
        hook = model.unet.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
        stack.callback(hook.remove)

        def keep_frame(i, x):
            if frames:
                shots.append(to_pil(model.decode(x))[0])

        out = drag_latents(model, x0, substeps, method=method, mask=editable, prompt=prompt or None, t0=t0,
                           steps=steps, alpha=alpha, beta=beta, radius=r, guidance=guidance, lora_scale=lora_scale,
                           generator=gen, callback=keep_frame, progress=progress)
    result = to_pil(resize_image(model.decode(out).cpu(), image_size))[0]  # back at the input's size
    return DragResult(result, shots, out, substeps, settings, time.perf_counter() - start, calls[0], losses)


def sde_drag(model: DiffusionModel, image, source_points, target_points, mask=None, prompt: str = "", *,
             t0: float = 0.6, steps: int = 120, alpha: float = 1.1, beta: float = 0.3, radius: int | None = None,
             step_size: float = 2.0, guidance: float = 3.0, lora_steps: int = 0, lora_rank: int = 4,
             size: int | None = None, seed: int = 1234, frames: bool = True, progress: bool = True) -> DragResult:
    """SDE-Drag: drag points of ``image`` with Cycle-SDE (the paper's drag editor, official defaults).

    model: any DiffusionModel (SD, the tiny SD, the digits model). image: a path, PIL image or array/tensor
    the model takes. source_points, target_points: lists of (x, y) pixels of the input, paired in order; they
    map to latent pixels by floor division with model.pixels_per_latent (at the working size). mask: white =
    editable, None = all, at the input's size, any form load_mask takes. size: the working size's longer side
    in pixels (512 for SD 1.5, a multiple of model.pixels_per_latent): the input is resized to it (bicubic, aspect
    kept, sides multiples of pixels_per_latent) and the result back to the input's size; None drags at the
    input's own size, whose sides must then be multiples of pixels_per_latent.
    prompt: the text (conditional models; '' for none).
    t0: start level; steps: steps from t0 to the data level (120 = the official 200-interval grid at 0.6).
    alpha, beta: the copy-paste's target scale and source mix. radius: the copy window's half-size in latent
    pixels (None: 5 on a latent whose longer side is 64, scaled with the longer side, at least 2).
    step_size: latent pixels per sub-step. guidance: the classifier-free guidance at t0 (a ramp from 1;
    unconditional models ignore it).
    lora_steps > 0 fine-tunes a rank-``lora_rank`` LoRA on the image first (removed afterwards); an adapter the
    caller trained (``sdelab.models.lora.lora_finetuned``, to share it between editors) is used as it is. Either
    way its scale follows the official cosine from 1 at the data end to 0.5 at t0.
    seed: one generator on the model's device for the forward chain and the copy-paste noise.
    """
    return drag(model, image, source_points, target_points, mask, prompt, method="sde", t0=t0, steps=steps,
                alpha=alpha, beta=beta, radius=radius, step_size=step_size, guidance=guidance, lora_steps=lora_steps,
                lora_rank=lora_rank, size=size, seed=seed, frames=frames, progress=progress)


def ode_drag(model: DiffusionModel, image, source_points, target_points, mask=None, prompt: str = "", *,
             t0: float = 0.6, steps: int = 120, alpha: float = 1.1, beta: float = 0.3, radius: int | None = None,
             step_size: float = 2.0, guidance: float = 3.0, lora_steps: int = 0, lora_rank: int = 4,
             size: int | None = None, seed: int = 1234, frames: bool = True, progress: bool = True) -> DragResult:
    """ODE-Drag, the paper's baseline: the same copy-paste on a DDIM-inverted latent, denoised with DDIM (eta = 0).

    The arguments are ``sde_drag``'s; the mask restores the outside from the inversion's trajectory. The official code
    has no ODE-Drag: its guidance ramp during the inversion and that mask rule are this project's choices
    (docs/conventions.md).
    """
    return drag(model, image, source_points, target_points, mask, prompt, method="ode", t0=t0, steps=steps,
                alpha=alpha, beta=beta, radius=radius, step_size=step_size, guidance=guidance, lora_steps=lora_steps,
                lora_rank=lora_rank, size=size, seed=seed, frames=frames, progress=progress)


def drag_cost(model: DiffusionModel, image_size: tuple[int, int], source_points, target_points, *,
              method: str = "sde", steps: int = 120, t0: float = 0.6, size: int | None = None,
              step_size: float = 2.0, prompt: str = "", guidance: float = 3.0) -> dict:
    """What a drag will cost before running it: its sub-steps and UNet calls, and the seconds of one UNet call
    measured on this machine (one warm-up call, then the mean of three) at the drag's batch, hence the expected time.

    image_size: the input's (height, width); the other arguments are ``drag``'s.
    """
    if method not in INVERSION:
        raise ValueError(f"method must be one of {list(INVERSION)}, got {method!r}")
    work = tuple(image_size) if size is None else working_size(image_size, size, model.pixels_per_latent)
    src = latent_points(scale_points(source_points, image_size, work), work, model.pixels_per_latent, "source_points")
    tgt = latent_points(scale_points(target_points, image_size, work), work, model.pixels_per_latent, "target_points")
    m = len(drag_substeps(src, tgt, step_size))
    grid = time_grid(model.schedule, steps, t0)
    batch = 2 if method == "sde" else 1  # Cycle-SDE's backward call also takes the stored chain sample
    shape = (batch, model.latent_shape(1)[1], *(side // model.pixels_per_latent for side in work))
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(model.device, model.latent_dtype)
    cfg = linear_ramp(grid, 1.0, guidance) if model.conditional and guidance != 1 else 1.0
    eps = model.eps_model(prompt or None, cfg)
    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)
    times = []
    for _ in range(4):
        sync()
        start = time.perf_counter()
        eps(x, grid[0])
        sync()
        times.append(time.perf_counter() - start)
    calls = m * unet_calls_per_substep(method, steps)
    per_call = sum(times[1:]) / 3
    return dict(substeps=m, unet_calls=calls, seconds_per_call=per_call, seconds=calls * per_call,
                working_size=list(work), device=str(model.device))
