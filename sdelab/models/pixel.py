"""Pixel-space diffusion models: any diffusers ``UNet2DModel`` with its noise schedule, one folder per model.

A model folder is diffusers' layout plus one file: the UNet's ``config.json`` and
``diffusion_pytorch_model.safetensors``, the scheduler's ``scheduler_config.json`` (its betas are the VP
schedule), and ``sdelab_config.json``, the model's name and, for a class-conditional UNet (one with
``num_class_embeds``), the prompt of each class embedding in order. The embedding after the last prompt is the
null class (label dropout in training, Ho & Salimans 2022), asked for by the prompt None or "". Images are
(n, c, size, size) in [0, 1] with c and size from the UNet's config; the diffusion runs on x0 = 2 * image - 1
in [-1, 1] (the DDPM convention).

Shipped weights (``sdelab/weights/<name>``): "digits" and "digits_cond", scikit-learn's digits at 16 x 16 on
DDPM's 1000 linear betas 1e-4 .. 0.02, their data in ``sdelab.data.digits``; "shapes", the procedural scenes of
``sdelab.data.shapes`` at 32 x 32 RGB on Stable Diffusion's 1000 scaled-linear betas 0.00085 .. 0.012 (so t0 means
the noise level it means in the paper). ``python -m sdelab train`` trains them. A new pixel model is a new weights
folder and a data module, not new model code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DModel

from sdelab.models.base import DiffusionModel
from sdelab.schedules import VPSchedule

CONFIG_NAME = "sdelab_config.json"  # the model's name and class prompts, beside diffusers' configs


def weights_path(name: str) -> Path:
    """The folder of the weights called ``name`` shipped inside the package (``sdelab/weights/<name>``)."""
    return Path(str(files("sdelab") / "weights" / name))


def shipped() -> list[str]:
    """The names of the pixel models whose weights ship inside the package."""
    return sorted(p.parent.name for p in weights_path(".").glob(f"*/{CONFIG_NAME}"))


def build_unet(size: int, channels: int, widths: Sequence[int], layers_per_block: int = 1,
               classes: int = 0) -> UNet2DModel:
    """A UNet for (n, channels, size, size) images: one resolution level per entry of ``widths`` (size, size / 2,
    ...), attention at the lowest only. ``classes`` > 0 adds classes + 1 class embeddings (the last the null class)
    summed into the time embedding (diffusers' ``num_class_embeds``)."""
    widths = tuple(widths)
    if len(widths) < 2 or any(w % 8 for w in widths):
        raise ValueError(f"widths must hold >= 2 multiples of 8, got {widths}")
    if size % 2 ** (len(widths) - 1):
        raise ValueError(f"size must be divisible by 2^(levels - 1) = {2 ** (len(widths) - 1)}, got {size}")
    down = ("DownBlock2D",) * (len(widths) - 1) + ("AttnDownBlock2D",)
    up = ("AttnUpBlock2D",) + ("UpBlock2D",) * (len(widths) - 1)
    return UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels, block_out_channels=widths,
                       layers_per_block=layers_per_block, down_block_types=down, up_block_types=up,
                       norm_num_groups=8, attention_head_dim=widths[-1],
                       num_class_embeds=classes + 1 if classes else None)


def build_scheduler(beta_schedule: str, beta_start: float, beta_end: float) -> DDPMScheduler:
    """A 1000-step training schedule: "linear" betas (DDPM: 1e-4 .. 0.02) or "scaled_linear" (Stable Diffusion's:
    0.00085 .. 0.012, linear in sqrt(beta))."""
    if beta_schedule not in ("linear", "scaled_linear"):
        raise ValueError(f"beta_schedule must be 'linear' or 'scaled_linear', got {beta_schedule!r}")
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule=beta_schedule, beta_start=beta_start,
                         beta_end=beta_end)


class PixelDiffusion(DiffusionModel):
    """A pixel-space DDPM over a diffusers UNet2DModel; x0 = 2 * image - 1. Class-conditional when the UNet has
    class embeddings: ``prompts[k]`` asks for class k, None or "" for the null class (the last embedding)."""

    def __init__(self, unet: UNet2DModel, scheduler: DDPMScheduler, name: str, prompts: Sequence[str] = ()):
        self.unet = unet.eval()
        self.scheduler, self.name, self.prompts = scheduler, name, tuple(prompts)
        self.conditional = unet.config.num_class_embeds is not None
        wanted = len(self.prompts) + 1 if self.conditional else None
        if unet.config.num_class_embeds != wanted or (self.conditional and not self.prompts):
            raise ValueError(f"prompts must name every class embedding but the last (the null class): the UNet has "
                             f"{unet.config.num_class_embeds} class embeddings, got {len(self.prompts)} prompts")
        if len(set(self.prompts)) != len(self.prompts) or "" in self.prompts:
            raise ValueError(f"prompts must be distinct and non-empty, got {self.prompts}")
        self.null_class = len(self.prompts)
        config = scheduler.config
        self.schedule = VPSchedule.from_alphas_cumprod(
            scheduler.alphas_cumprod, name=f"{config.beta_schedule} {config.beta_start}..{config.beta_end}")

    @property
    def image_channels(self) -> int:
        return self.unet.config.in_channels

    @property
    def size(self) -> int:
        """Image side in pixels."""
        return self.unet.config.sample_size

    def encode(self, images, generator: torch.Generator | None = None) -> torch.Tensor:
        """images (n, c, size, size) in [0, 1] -> x0 = 2 * images - 1 (generator unused: the map is deterministic)."""
        images = torch.as_tensor(images, device=self.device, dtype=self.dtype)
        if images.shape[1:] != self.latent_shape(1)[1:]:
            raise ValueError(f"images must have shape (n, {self.image_channels}, {self.size}, {self.size}), "
                             f"got {tuple(images.shape)}")
        return 2 * images - 1

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        """x0 (n, c, size, size) -> images (x0 + 1) / 2 clipped to [0, 1]."""
        return ((x0 + 1) / 2).clamp(0, 1)

    def class_labels(self, prompt, n: int) -> torch.Tensor:
        """(n,) int64 class labels of a prompt: ``prompts[k]`` -> k, None or "" -> the null class.

        ``prompt`` is one prompt for all n samples or a sequence of m prompts, one per sample, where m divides n: a
        batch of stacked copies (Cycle-SDE's batched cat([x, chain]), of 2m samples) repeats the sequence.
        """
        prompts = list(prompt) if isinstance(prompt, list | tuple) else [prompt]
        if not prompts or n % len(prompts):
            raise ValueError(f"prompt must be one prompt or a sequence of prompts whose length divides the batch "
                             f"size {n}, got {len(prompts)} prompts")
        index = {p: k for k, p in enumerate(self.prompts)} | {None: self.null_class, "": self.null_class}
        bad = [p for p in prompts if not isinstance(p, str | None) or p not in index]
        if bad:
            raise ValueError(f"prompt must be one of the class prompts {list(self.prompts)} of {self.name}, None or "
                             f"'', got {bad[0]!r}")
        return torch.tensor([index[p] for p in prompts] * (n // len(prompts)), dtype=torch.int64)

    def condition(self, prompt, n: int) -> torch.Tensor | None:
        """(n,) class labels on the model's device for a conditional model; None for an unconditional one."""
        return self.class_labels(prompt, n).to(self.device) if self.conditional else None

    def network(self, x: torch.Tensor, t: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        """The UNet's eps for x (n, c, size, size) at integer t (n,) under class labels (n,) or none."""
        return self.unet(x, t.long(), class_labels=condition).sample

    def latent_shape(self, n: int) -> tuple[int, ...]:
        return (n, self.image_channels, self.size, self.size)

    def save_pretrained(self, path) -> None:
        """Write the UNet (config.json + diffusion_pytorch_model.safetensors), scheduler_config.json and
        sdelab_config.json to ``path``: a folder ``load_pixel_model`` reads."""
        self.unet.save_pretrained(path)
        self.scheduler.save_pretrained(path)
        config = {"name": self.name, "prompts": list(self.prompts)}
        (Path(path) / CONFIG_NAME).write_text(json.dumps(config, indent=1) + "\n")


def load_pixel_model(name_or_path, device=None, dtype: torch.dtype | None = None) -> PixelDiffusion:
    """A pixel model from a folder written by ``PixelDiffusion.save_pretrained``, or the shipped weights of that
    name (``shipped()``: "digits", "digits_cond", "shapes"), offline."""
    path = Path(name_or_path)
    if not path.is_dir() and str(name_or_path) in shipped():
        path = weights_path(str(name_or_path))
    if not (path / CONFIG_NAME).is_file() or not (path / "diffusion_pytorch_model.safetensors").is_file():
        raise ValueError(f"name_or_path must be a folder written by PixelDiffusion.save_pretrained or one of the "
                         f"shipped models {shipped()}, got {str(name_or_path)!r}")
    config = json.loads((path / CONFIG_NAME).read_text())
    unet = UNet2DModel.from_pretrained(path, torch_dtype=dtype)
    if device is not None:
        unet.to(device)
    return PixelDiffusion(unet, DDPMScheduler.from_pretrained(path), config["name"], config.get("prompts", ()))


def load_digits_model(path=None, device=None, dtype: torch.dtype | None = None,
                      conditional: bool = False) -> PixelDiffusion:
    """The shipped digits DDPM ("digits"; with ``conditional`` the class-conditional "digits_cond", prompts "0" ..
    "9"), or the pixel model in the folder ``path``."""
    return load_pixel_model(path if path is not None else "digits_cond" if conditional else "digits", device, dtype)


def load_shapes_model(path=None, device=None, dtype: torch.dtype | None = None) -> PixelDiffusion:
    """The shipped shapes model ("shapes": unconditional, 32 x 32 RGB scenes, Stable Diffusion's schedule), or the
    pixel model in the folder ``path``."""
    return load_pixel_model(path if path is not None else "shapes", device, dtype)
