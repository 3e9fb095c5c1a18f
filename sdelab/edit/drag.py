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
from dataclasses import asdict, dataclass, field

import torch
from PIL import Image
from tqdm.auto import tqdm

from sdelab.edit.inversion import invert, reconstruct
from sdelab.inputs import check_points
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
from sdelab.samplers import Sampler, sampler
from sdelab.schedules import check_t0, time_grid

Substep = tuple[torch.Tensor, torch.Tensor]  # (sources, targets), int64 (k, 2) or (n, k, 2) latent (x, y)
EDITORS = {"cycle-sde": "SDE-Drag", "ode": "ODE-Drag"}  # the samplers a drag runs with -> the paper's editor names


def drag_sampler(name: str | Sampler) -> Sampler:
    """The sampler of a drag: "cycle-sde" (SDE-Drag) or "ode" (ODE-Drag); ValueError naming ``sampler`` else."""
    chosen = sampler(name)
    if chosen.name not in EDITORS:
        raise ValueError(f"sampler must be one of {list(EDITORS)} for a drag (SDE-Drag, ODE-Drag), got {chosen.name!r}")
    return chosen


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


def paste_each(x0: torch.Tensor, per_image: list[list[Substep]], radius, alpha: float = 1.1, beta: float = 0.3,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """``paste_only`` image by image for a batch x0 (n, C, h, w) whose images have their own sub-steps; radius one
    int or one per image; one generator drawn from in image order."""
    radii = [radius] * len(per_image) if isinstance(radius, int) else [int(r) for r in radius]
    return torch.cat([paste_only(x0[i: i + 1], substeps, radii[i], alpha, beta, generator)
                      for i, substeps in enumerate(per_image)])


def stack_substeps(per_image: list[list[Substep]], idx: list[int]) -> list[Substep]:
    """The sub-steps of the images ``idx`` (all with the same count) stacked for one batched ``drag_latents``:
    per sub-step (sources, targets), each (b, k, 2)."""
    m = len(per_image[idx[0]])
    return [(torch.stack([per_image[i][k][0] for i in idx]), torch.stack([per_image[i][k][1] for i in idx]))
            for k in range(m)]


def default_radius(latent_side: int) -> int:
    """The copy window's half-size for a latent whose longer side is ``latent_side``: the official 5 latent pixels
    on SD's 64-pixel latent (a 512-pixel longer side), scaled with the longer side, at least 2."""
    return max(2, round(5 * latent_side / 64))


def unet_calls_per_substep(chosen: Sampler, steps: int) -> int:
    """UNet calls of one sub-step: DDIM inversion and DDIM take one each per step (ODE-Drag); the Cycle-SDE forward
    chain takes none and each backward step one, with the chain sample's eps in the same call (SDE-Drag)."""
    return steps * (1 if chosen.replay else 2)


@torch.no_grad()
def drag_latents(model: DiffusionModel, x0: torch.Tensor, substeps: list[Substep], *,
                 sampler: str | Sampler = "cycle-sde",
                 mask: torch.Tensor | None = None, prompt: str | None = None, t0: float = 0.6, steps: int = 120,
                 alpha: float = 1.1, beta: float = 0.3, radius: int = 5, guidance: float = 3.0,
                 lora_scale: Callable | None = None, generator: torch.Generator | None = None,
                 chain_batch: int | None = None, callback: Callable[[dict], None] | None = None,
                 progress: bool = False) -> torch.Tensor:
    """Run the drag's sub-steps on a batch of latents x0 (n, C, h, w): noise to t0, copy-paste, denoise.

    sampler "cycle-sde" (SDE-Drag) or "ode" (ODE-Drag: DDIM inversion and DDIM). mask: bool broadcastable
    to x0, True = editable. guidance is the maximum of the linear ramp (conditional models only); lora_scale
    a per-step schedule or None. chain_batch: how Cycle-SDE evaluates its stored chain (``reconstruct``; None, in
    each backward step's call, measured the faster by benchmarks/drag.py). callback({"i": i, "x": x}) after
    sub-step i, x the latents it produced (the samplers' callback convention, docs/conventions.md). The
    images of a batch share the sub-step count. progress: a bar over the UNet steps of all sub-steps (the unit
    that takes the time), with their rate and the time left.
    """
    chosen = drag_sampler(sampler)
    grid = time_grid(model.schedule, steps, t0)
    cfg = linear_ramp(grid, 1.0, guidance) if model.conditional and guidance != 1 else 1.0
    total = None if chain_batch and chosen.replay else len(substeps) * unet_calls_per_substep(chosen, steps)
    bar = tqdm(total=total, disable=not progress, desc=f"{EDITORS[chosen.name]} UNet steps", unit="step")

    def count(*_) -> None:  # a forward pre-hook must return None, else it replaces the UNet's inputs
        bar.update()

    hook = model.unet.register_forward_pre_hook(count)
    x = x0
    try:
        for i, (sources, targets) in enumerate(substeps):
            inv = invert(model, x, steps, t0, chosen.name, prompt=prompt, guidance=cfg, lora_scale=lora_scale,
                         generator=generator, progress=False)
            edited = copy_paste(inv.x_t0, sources, targets, radius, alpha, beta, generator)
            x = reconstruct(model, inv, edited, mask=mask, chain_batch=chain_batch if chosen.replay else None,
                            progress=False)
            if callback is not None:
                callback({"i": i, "x": x})
    finally:
        hook.remove()
        bar.close()
    return x


# ---- the editor ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DragSettings:
    """A drag's settings, checked when made; ``asdict`` is what its result records. The defaults are the official
    SDE-Drag code's (Section 4 of the paper; github.com/ML-GSAI/SDE-Drag).

    sampler: "cycle-sde" (SDE-Drag) or "ode" (ODE-Drag). t0: start level in (0, 1]; steps: steps from t0 to the
    data level (120 = the official 200-interval grid at 0.6). alpha, beta: the copy-paste's target scale and
    source mix. radius: the copy window's half-size in latent pixels (None: 5 on a latent whose longer side is 64,
    scaled with the longer side, at least 2). step_size: latent pixels per sub-step. guidance: the classifier-free
    guidance at t0 (a ramp from 1; conditional models only). lora_steps > 0 fine-tunes a rank-``lora_rank`` LoRA
    on the image first (removed afterwards); an adapter the caller trained (``lora_finetuned``, to share it between
    editors) is used as it is; either way its scale follows the official cosine from 1 at the data end to 0.5 at
    t0. size: the working size's longer side in pixels (512 for SD 1.5, a multiple of the model's pixels per
    latent pixel): the input is resized to it and the result back; None drags the input at its own size. seed:
    one generator on the model's device for the forward chain and the copy-paste noise.
    """

    sampler: str = "cycle-sde"
    t0: float = 0.6
    steps: int = 120
    alpha: float = 1.1
    beta: float = 0.3
    radius: int | None = None
    step_size: float = 2.0
    guidance: float = 3.0
    lora_steps: int = 0
    lora_rank: int = 4
    size: int | None = None
    seed: int = 1234

    def __post_init__(self):
        object.__setattr__(self, "sampler", drag_sampler(self.sampler).name)
        check_t0(self.t0)
        whole = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
        if not whole(self.steps) or self.steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {self.steps!r}")
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0 (the target window's scale), got {self.alpha}")
        if not 0 <= self.beta <= 1:
            raise ValueError(f"beta must lie in [0, 1] (the source window's kept fraction), got {self.beta}")
        if self.radius is not None and (not whole(self.radius) or self.radius < 1):
            raise ValueError(f"radius must be an integer >= 1 latent pixel (or None), got {self.radius!r}")
        if not self.step_size > 0:
            raise ValueError(f"step_size must be > 0 latent pixels, got {self.step_size}")
        if not self.guidance >= 1:
            raise ValueError(f"guidance must be >= 1 (the ramp's value at t0), got {self.guidance}")
        if not whole(self.lora_steps) or self.lora_steps < 0:
            raise ValueError(f"lora_steps must be an integer >= 0, got {self.lora_steps!r}")
        if not whole(self.lora_rank) or self.lora_rank < 1:
            raise ValueError(f"lora_rank must be an integer >= 1, got {self.lora_rank!r}")
        if self.size is not None and (not whole(self.size) or self.size < 1):
            raise ValueError(f"size must be a positive integer (the working size's longer side in pixels) or None, "
                             f"got {self.size!r}")


def _working_points(model: DiffusionModel, image_size, source_points, target_points, size) -> tuple:
    """The drag's points checked on the input, its working size, and the points as latent (x, y) there."""
    sources = check_points(source_points, "source_points", image_size)
    targets = check_points(target_points, "target_points", image_size)
    if len(sources) != len(targets):
        raise ValueError(f"source_points and target_points must pair up, got {len(sources)} sources and "
                         f"{len(targets)} targets")
    ppl = model.pixels_per_latent
    work = tuple(image_size) if size is None else working_size(image_size, size, ppl)
    if any(side % ppl for side in work):
        raise ValueError(f"image of (height, width) = {tuple(image_size)} cannot be dragged at its own size: both "
                         f"sides must be multiples of {ppl}; pass size (the working size's longer side, e.g. "
                         f"size=512 for SD 1.5; the command line's --size) to resize it and bring the result back")
    src = latent_points(scale_points(sources, image_size, work), work, ppl, "source_points")
    tgt = latent_points(scale_points(targets, image_size, work), work, ppl, "target_points")
    return sources, targets, work, src, tgt


def drag(model: DiffusionModel, image, source_points, target_points, mask=None, prompt: str = "",
         settings: DragSettings = DragSettings(), *, frames: bool = True, progress: bool = True) -> DragResult:
    """Drag ``source_points`` to ``target_points`` (x, y pixels of the input) with SDE-Drag or ODE-Drag.

    model: any DiffusionModel (SD, the tiny SD, a pixel model). image: a path, PIL image or array/tensor the model
    takes. source_points, target_points: lists of (x, y) pixels of the input, paired in order; they map to latent
    pixels by floor division with model.pixels_per_latent (at the working size). mask: white = editable, None =
    all, at the input's size, any form load_mask takes. prompt: the text (conditional models; '' for none).
    settings: ``DragSettings``. frames: keep the picture after every sub-step (at the working size). progress: a
    bar over the UNet steps. Every bad argument raises ValueError before any UNet call.
    """
    if prompt and not model.conditional:
        raise ValueError(f"prompt must be '' for the unconditional model {model.name}, got {prompt!r}")
    s = settings
    pixels = model_image(image, model.image_channels)  # (1, c, H, W) in [0, 1]
    image_size = tuple(pixels.shape[-2:])
    sources, targets, work, src, tgt = _working_points(model, image_size, source_points, target_points, s.size)
    pixels = resize_image(pixels, work)
    grid = time_grid(model.schedule, s.steps, s.t0)  # checks steps against the schedule
    gen = torch.Generator(device=model.device).manual_seed(s.seed)
    x0 = model.encode(pixels, generator=gen)  # raises ValueError for an image the model cannot take
    latent_size = tuple(x0.shape[-2:])
    editable = None if mask is None else image_mask(mask, image_size, latent_size).to(x0.device)
    radius = default_radius(max(latent_size)) if s.radius is None else s.radius
    substeps = drag_substeps(src, tgt, s.step_size)
    record = asdict(s) | dict(editor=EDITORS[s.sampler], model=model.name, source_points=sources,
                              target_points=targets, mask=mask is not None, prompt=prompt, radius_used=radius,
                              guidance_used=s.guidance if model.conditional else 1.0, m=len(substeps),
                              grid=[int(grid[0]), int(grid[-1])], image_size=list(image_size), working_size=list(work),
                              latent_size=list(latent_size), device=str(model.device),
                              dtype=str(model.dtype).removeprefix("torch."))

    start, calls, shots = time.perf_counter(), [0], [to_pil(pixels)[0]] if frames else []
    losses, lora_scale = [], None
    with ExitStack() as stack:
        if s.lora_steps:  # LoRA training is not part of the edit's UNet calls: count only after it
            losses = stack.enter_context(lora_finetuned(model, x0, prompt or None, steps=s.lora_steps,
                                                        rank=s.lora_rank, generator=gen, progress=progress))
        if lora_layers(model.unet):  # trained here, or by the caller (``lora_finetuned``) for several edits
            lora_scale = cosine_ramp(grid, 1.0, 0.5)
        hook = model.unet.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
        stack.callback(hook.remove)

        def keep_frame(state: dict) -> None:
            if frames:
                shots.append(to_pil(model.decode(state["x"]))[0])

        out = drag_latents(model, x0, substeps, sampler=s.sampler, mask=editable, prompt=prompt or None, t0=s.t0,
                           steps=s.steps, alpha=s.alpha, beta=s.beta, radius=radius, guidance=s.guidance,
                           lora_scale=lora_scale, generator=gen, callback=keep_frame, progress=progress)
    result = to_pil(resize_image(model.decode(out).cpu(), image_size))[0]  # back at the input's size
    return DragResult(result, shots, out, substeps, record, time.perf_counter() - start, calls[0], losses)


def sde_drag(model: DiffusionModel, image, source_points, target_points, mask=None, prompt: str = "", *,
             frames: bool = True, progress: bool = True, **settings) -> DragResult:
    """SDE-Drag, the paper's drag editor: ``drag`` with Cycle-SDE; ``settings`` are ``DragSettings``' fields."""
    return drag(model, image, source_points, target_points, mask, prompt,
                DragSettings(sampler="cycle-sde", **settings), frames=frames, progress=progress)


def ode_drag(model: DiffusionModel, image, source_points, target_points, mask=None, prompt: str = "", *,
             frames: bool = True, progress: bool = True, **settings) -> DragResult:
    """ODE-Drag, the paper's baseline: the same copy-paste on a DDIM-inverted latent, denoised with DDIM (eta = 0).

    ``settings`` are ``DragSettings``' fields. The mask restores the outside from the inversion's trajectory. The
    official code has no ODE-Drag: its guidance ramp during the inversion and that mask rule are this project's
    choices (docs/conventions.md).
    """
    return drag(model, image, source_points, target_points, mask, prompt,
                DragSettings(sampler="ode", **settings), frames=frames, progress=progress)


def drag_cost(model: DiffusionModel, image_size: tuple[int, int], source_points, target_points, prompt: str = "",
              settings: DragSettings = DragSettings()) -> dict:
    """What a drag will cost before running it: its sub-steps and UNet calls, and the seconds of one UNet call
    measured on this machine (one warm-up call, then the mean of three) at the drag's batch, hence the expected time.

    image_size: the input's (height, width); the other arguments are ``drag``'s.
    """
    s, chosen = settings, sampler(settings.sampler)
    *_, work, src, tgt = _working_points(model, image_size, source_points, target_points, s.size)
    m = len(drag_substeps(src, tgt, s.step_size))
    grid = time_grid(model.schedule, s.steps, s.t0)
    batch = 2 if chosen.replay else 1  # Cycle-SDE's backward call also takes the stored chain sample
    shape = (batch, model.latent_shape(1)[1], *(side // model.pixels_per_latent for side in work))
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(model.device, model.latent_dtype)
    cfg = linear_ramp(grid, 1.0, s.guidance) if model.conditional and s.guidance != 1 else 1.0
    eps = model.eps_model(prompt or None, cfg)
    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)
    times = []
    for _ in range(4):
        sync()
        start = time.perf_counter()
        eps(x, grid[0])
        sync()
        times.append(time.perf_counter() - start)
    calls = m * unet_calls_per_substep(chosen, s.steps)
    per_call = sum(times[1:]) / 3
    return dict(substeps=m, unet_calls=calls, seconds_per_call=per_call, seconds=calls * per_call,
                working_size=list(work), device=str(model.device))
