"""One interface for every image diffusion model: the sampling core drives it through ``eps_model``."""

from __future__ import annotations

from collections.abc import Callable

import torch

from sdelab.sampling import EpsModel, denoise
from sdelab.schedules import VPSchedule, time_grid

Guidance = float | Callable[[torch.Tensor], float]


class DiffusionModel:
    """An eps-prediction image model with its VP schedule; subclasses implement encode/decode/eps.

    Images are float tensors (n, c, h, w) in [0, 1]; x0 is what the diffusion runs on (a scaled VAE
    latent for latent models, the image itself for pixel models).
    """

    schedule: VPSchedule
    device: torch.device
    dtype: torch.dtype

    def encode(self, images, generator: torch.Generator | None = None) -> torch.Tensor:
        """images (n, c, H, W) in [0, 1] -> x0 (n, C, h, w)."""
        raise NotImplementedError

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        """x0 (n, C, h, w) -> images (n, c, H, W) in [0, 1]."""
        raise NotImplementedError

    def eps(self, x_t: torch.Tensor, t, prompt: str | None = None, guidance: float = 1.0) -> torch.Tensor:
        """Noise prediction eps(x_t, t) under the given conditioning, shape of x_t."""
        raise NotImplementedError

    def latent_shape(self, n: int) -> tuple[int, ...]:
        """Shape of x0 for n samples at the model's native resolution."""
        raise NotImplementedError

    def save_pretrained(self, path) -> None:
        raise NotImplementedError

    def eps_model(self, prompt: str | None = None, guidance: Guidance = 1.0) -> EpsModel:
        """The callable ``eps_model(x, t)`` that sdelab.sampling drives; guidance may depend on t."""

        def eps_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            g = guidance(t) if callable(guidance) else guidance
            return self.eps(x, t, prompt=prompt, guidance=g)

        return eps_model

    @torch.no_grad()
    def sample(self, n: int, steps: int = 50, eta: float = 0.0, generator: torch.Generator | None = None,
               prompt: str | None = None, guidance: Guidance = 1.0, progress: bool = True) -> torch.Tensor:
        """Draw n images in [0, 1] with Eq. 6 at the given eta (0 = DDIM/ODE, 1 = DDPM/SDE) from pure noise."""
        # the generator lives on the model's device (torch.Generator(device=model.device))
        x_T = torch.randn(self.latent_shape(n), generator=generator, device=self.device, dtype=self.dtype)
        grid = time_grid(self.schedule, steps=steps)
        x0 = denoise(self.eps_model(prompt, guidance), self.schedule, x_T, grid, eta=eta, generator=generator,
                     progress=progress)
        return self.decode(x0)
