"""The eps-prediction training loss (Ho et al. 2020), shared by the digits trainer and LoRA fine-tuning."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sdelab.models.base import DiffusionModel
from sdelab.sampling import add_noise


def eps_mse_loss(model: DiffusionModel, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                 prompt: str | Sequence[str | None] | None = None) -> torch.Tensor:
    """E |eps_theta(x_t, t) - noise|^2 with x_t = alpha_t x0 + sigma_t noise ~ q(x_t | x0), t one timestep per sample.

    x0, noise (n, C, h, w) on the model's device; t (n,) integer timesteps; gradients flow to the network.
    prompt: one conditioning for all, or one per sample where the model takes that (the class-conditional digits).
    """
    x_t = add_noise(x0, model.schedule, t, noise)
    eps = model.network_eps(x_t.to(model.dtype), t.to(model.device), prompt)
    return torch.nn.functional.mse_loss(eps.float(), noise.float())
