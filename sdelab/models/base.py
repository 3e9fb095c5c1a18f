"""One interface for every image diffusion model: the sampling core drives it through ``eps_model``.

Conditioning that changes with the step rides in the eps closure, never in the samplers' arguments:
a guidance scale and a LoRA scale may each be a number or a function of t (``linear_ramp``,
``cosine_ramp`` give SDE-Drag's schedules).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from sdelab.sampling import EpsModel, denoise
from sdelab.schedules import VPSchedule, time_grid

PerStep = float | Callable[[torch.Tensor], float]  # a number, or a function of the step's time t
Guidance = PerStep


def _at(value: PerStep | None, t: torch.Tensor):
    """A per-step value at time t; at one time per sample ((n,) t) a (n,) tensor of values."""
    if not callable(value):
        return value
    t = torch.as_tensor(t)
    return value(t) if t.ndim == 0 else torch.tensor([value(ti) for ti in t], dtype=torch.float64)


def _one_scale(value: PerStep | None, t: torch.Tensor):
    """A LoRA scale at t: it acts on the whole network, so samples at several times must share it."""
    scale = _at(value, t)
    if isinstance(scale, torch.Tensor) and scale.ndim:
        if not torch.all(scale == scale[0]):
            raise ValueError("lora_scale varies over the batch's times: a LoRA scale acts on the whole network, so "
                             "samples at different steps cannot share one call (batch them step by step)")
        scale = float(scale[0])
    return scale


def _fraction(grid: torch.Tensor, t: torch.Tensor) -> float:
    """Where t sits on the grid: 0 at the data end (grid[-1]), 1 at the top (grid[0])."""
    top, bottom = float(grid[0]), float(grid[-1])
    return (float(t) - bottom) / (top - bottom)


def linear_ramp(grid: torch.Tensor, at_data: float, at_top: float) -> Callable[[torch.Tensor], float]:
    """A per-step value rising (or falling) linearly in t from ``at_data`` at grid[-1] to ``at_top`` at grid[0].

    SDE-Drag's guidance: ``linear_ramp(grid, 1.0, 3.0)`` (1 at the data end, 3 at t0).
    """
    return lambda t: at_data + (at_top - at_data) * _fraction(grid, t)


def cosine_ramp(grid: torch.Tensor, at_data: float, at_top: float) -> Callable[[torch.Tensor], float]:
    """A per-step value moving on a half cosine in t from ``at_data`` at grid[-1] to ``at_top`` at grid[0].

    SDE-Drag's LoRA scale: ``cosine_ramp(grid, 1.0, 0.5)``.
    """
    return lambda t: at_top + (at_data - at_top) * 0.5 * (1 + math.cos(math.pi * _fraction(grid, t)))


class DiffusionModel:
    """An eps-prediction image model with its VP schedule, classifier-free guidance written once.

    Images are float tensors (n, c, h, w) in [0, 1]; x0 is what the diffusion runs on (a scaled VAE
    latent for latent models, the image itself for pixel models). A subclass implements encode/decode,
    ``condition`` (the network's conditioning for a prompt, None for the null one) and ``network`` (one call
    of the denoising network); ``eps`` adds guidance and the LoRA scale, and device and dtype are the UNet's.
    """

    name: str
    schedule: VPSchedule
    unet: torch.nn.Module  # the denoising network (LoRA adapters attach here); its weights give device and dtype
    conditional: bool = False  # takes a text / class prompt and classifier-free guidance
    pixels_per_latent: int = 1  # image pixels per latent pixel along each axis (8 for Stable Diffusion)
    image_channels: int = 3  # channels of the images encode takes and decode returns

    def _weight(self) -> torch.Tensor:
        return next(p for p in self.unet.parameters() if p.is_floating_point())

    @property
    def device(self) -> torch.device:
        """Where the networks run: the UNet's device."""
        return self._weight().device

    @property
    def dtype(self) -> torch.dtype:
        """The networks' dtype: the UNet's."""
        return self._weight().dtype

    @property
    def latent_dtype(self) -> torch.dtype:
        """dtype of the x0 the samplers work on (the networks' dtype unless a subclass keeps latents wider)."""
        return self.dtype

    def to(self, device=None, dtype: torch.dtype | None = None) -> DiffusionModel:
        """Move / cast the UNet in place and return the model (models with more networks move them all)."""
        self.unet.to(device=device, dtype=dtype)
        return self

    def encode(self, images, generator: torch.Generator | None = None) -> torch.Tensor:
        """images (n, c, H, W) in [0, 1] -> x0 (n, C, h, w)."""
        raise NotImplementedError

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        """x0 (n, C, h, w) -> images (n, c, H, W) in [0, 1]."""
        raise NotImplementedError

    def condition(self, prompt, n: int):
        """The network's conditioning for n samples under ``prompt`` (None or "": the null conditioning), batch first
        so that two concatenate; None for an unconditional network."""
        return None

    def network(self, x: torch.Tensor, t: torch.Tensor, condition) -> torch.Tensor:
        """One call of the denoising network: x (n, C, h, w) in the networks' dtype and device, t (n,), condition
        from ``condition`` for n samples -> eps (n, C, h, w)."""
        raise NotImplementedError

    @torch.no_grad()
    def eps(self, x_t: torch.Tensor, t, prompt=None, guidance: float | torch.Tensor = 1.0,
            lora_scale: float | None = None) -> torch.Tensor:
        """Classifier-free guidance (Ho & Salimans 2022): eps = eps_u + guidance (eps_c - eps_u), shape of x_t.

        eps_u (the null conditioning) and eps_c (``prompt``) come from one network call on the doubled batch;
        guidance 1 runs the conditional branch alone. t: one time, or one per sample ((n,)); guidance likewise a
        number or (n,) values. lora_scale: None runs the networks as they are; a number scales the LoRA adapter
        (which must be there). x_t is cast to the networks' device and dtype; eps comes back in x_t's.
        """
        from sdelab.models.lora import lora_scaled  # sdelab.models.lora imports this module

        self.check_conditioning(prompt, guidance)
        x = x_t.to(self.device, self.dtype)  # (n, C, h, w)
        n = len(x)
        t = torch.as_tensor(t, device=self.device)
        t = t.expand(n) if t.ndim == 0 else t  # (n,)
        g = torch.as_tensor(guidance, dtype=x_t.dtype).to(x_t.device)  # () or (n,)
        with lora_scaled(self.unet, lora_scale):
            if bool((g == 1).all()):
                return self.network(x, t, self.condition(prompt, n)).to(x_t.device, x_t.dtype)
            both = torch.cat([self.condition(None, n), self.condition(prompt, n)])  # null first
            eps = self.network(torch.cat([x, x]), torch.cat([t, t]), both)  # (2n, C, h, w)
        eps_u, eps_c = eps.to(x_t.device, x_t.dtype).chunk(2)  # (n, C, h, w) each
        return eps_u + g.reshape(g.shape + (1,) * (x_t.ndim - g.ndim)) * (eps_c - eps_u)

    def network_eps(self, x_t: torch.Tensor, t: torch.Tensor, prompt=None) -> torch.Tensor:
        """The network's own eps for one conditioning (no guidance), with gradients: what training fits.

        x_t (n, C, h, w) in the networks' dtype and device, t (n,) integer timesteps; prompt one for all or, where
        the model takes that, one per sample.
        """
        self.check_conditioning(prompt, 1.0)
        return self.network(x_t, t, self.condition(prompt, len(x_t)))

    def latent_shape(self, n: int) -> tuple[int, ...]:
        """Shape of x0 for n samples at the model's native resolution."""
        raise NotImplementedError

    def save_pretrained(self, path) -> None:
        raise NotImplementedError

    def check_conditioning(self, prompt: str | None, guidance: PerStep) -> None:
        """ValueError for a prompt or a guidance other than 1 given to an unconditional model."""
        if self.conditional:
            return
        if prompt:
            raise ValueError(f"prompt must be None or '' for the unconditional model {self.name}, got {prompt!r}")
        if callable(guidance) or not bool((torch.as_tensor(guidance) == 1.0).all()):
            raise ValueError(f"guidance must be 1.0 for the unconditional model {self.name}, got {guidance}")

    def eps_model(self, prompt: str | None = None, guidance: PerStep = 1.0,
                  lora_scale: PerStep | None = None) -> EpsModel:
        """The callable ``eps_model(x, t)`` that sdelab.sampling drives; guidance and lora_scale may depend on t.

        t may also hold one time per sample ((n,) for x (n, ...)): then the guidance is one value per sample.
        """
        self.check_conditioning(prompt, guidance)

        def eps_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.eps(x, t, prompt=prompt, guidance=_at(guidance, t), lora_scale=_one_scale(lora_scale, t))

        return eps_model

    @torch.no_grad()
    def sample(self, n: int, steps: int = 50, eta: float = 0.0, generator: torch.Generator | None = None,
               prompt: str | None = None, guidance: PerStep = 1.0, progress: bool = True) -> torch.Tensor:
        """Draw n images in [0, 1] with Eq. 6 at the given eta (0 = DDIM/ODE, 1 = DDPM/SDE) from pure noise."""
        # the generator lives on the model's device (torch.Generator(device=model.device))
        x_T = torch.randn(self.latent_shape(n), generator=generator, device=self.device, dtype=self.latent_dtype)
        grid = time_grid(self.schedule, steps=steps)
        x0 = denoise(self.eps_model(prompt, guidance), self.schedule, x_T, grid, eta=eta, generator=generator,
                     progress=progress)
        return self.decode(x0)
