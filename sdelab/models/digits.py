"""The shipped digits model: a small pixel-space DDPM (diffusers' UNet2DModel) on scikit-learn's 8x8 digits at 16x16.

Images are (n, 1, 16, 16) in [0, 1], ink = 1, background = 0, as in the data set. The diffusion runs on
x0 = 2 * image - 1 in [-1, 1] (the usual DDPM convention), so encode/decode are that affine map and its
inverse. The schedule is DDPM's discrete one: 1000 linear betas from 1e-4 to 0.02 (diffusers'
DDPMScheduler defaults), so ``time_grid`` and every sampler of ``sdelab.sampling`` work unchanged.
The weights ship inside the package (``sdelab/weights/digits``): the UNet's ``save_pretrained`` output and
the scheduler's ``scheduler_config.json``; ``python -m sdelab.train_digits`` retrains them.

A class-conditional model ships beside it (``sdelab/weights/digits_cond``, ``load_digits_model(conditional=True)``):
the same UNet with a class embedding for the labels 0-9 plus a null class 10 (label dropout in training), so one
network gives both the conditional and the unconditional eps and classifier-free guidance. Its condition is a
``prompt`` like Stable Diffusion's: "3" asks for a three, None or "" for the null class.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DModel

from sdelab.data.digits import SIZE
from sdelab.models.base import DiffusionModel
from sdelab.schedules import VPSchedule

CLASSES = 10  # the digits 0-9
NULL_CLASS = CLASSES  # the conditional model's "no label" class (label dropout; prompt None or "")
DIGIT_PROMPTS = tuple(str(k) for k in range(CLASSES))  # "0".."9"


def weights_path(conditional: bool = False) -> Path:
    """The folder of the weights shipped inside the package (the class-conditional model's with ``conditional``)."""
    return Path(str(files("sdelab") / "weights" / ("digits_cond" if conditional else "digits")))


def build_unet(channels: tuple[int, ...] = (16, 32, 32), layers_per_block: int = 1,
               conditional: bool = False) -> UNet2DModel:
    """The digits UNet: one resolution level per entry of ``channels`` (16, 8, 4 px), attention at the lowest only.

    ``conditional`` adds a class embedding (CLASSES + 1 entries, the last the null class) summed into the time
    embedding (diffusers' ``num_class_embeds``).
    """
    if len(channels) < 2 or any(c % 8 for c in channels):
        raise ValueError(f"channels must hold >= 2 multiples of 8, got {channels}")
    down = ("DownBlock2D",) * (len(channels) - 1) + ("AttnDownBlock2D",)
    up = ("AttnUpBlock2D",) + ("UpBlock2D",) * (len(channels) - 1)
    return UNet2DModel(sample_size=SIZE, in_channels=1, out_channels=1, block_out_channels=tuple(channels),
                       layers_per_block=layers_per_block, down_block_types=down, up_block_types=up,
                       norm_num_groups=8, attention_head_dim=channels[-1],
                       num_class_embeds=CLASSES + 1 if conditional else None)


def build_scheduler() -> DDPMScheduler:
    """DDPM's training schedule: 1000 linear betas 1e-4 .. 0.02."""
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)


def class_labels(prompt, n: int) -> torch.Tensor:
    """(n,) int64 class labels of a digits prompt: "0".."9" -> that digit, None or "" -> NULL_CLASS.

    ``prompt`` is one prompt for all n samples or a sequence of m prompts, one per sample, where m divides n: a
    batch of stacked copies (Cycle-SDE's batched cat([x, chain]), of 2m samples) repeats the sequence.
    """
    prompts = [prompt] if prompt is None or isinstance(prompt, str) else list(prompt)
    if not prompts or n % len(prompts):
        raise ValueError(f"prompt must be one prompt or a sequence of prompts whose length divides the batch "
                         f"size {n}, got {len(prompts)} prompts")
    prompts = prompts * (n // len(prompts))
    labels = []
    for p in prompts:
        if p is None or p == "":
            labels.append(NULL_CLASS)
        elif isinstance(p, str) and p in DIGIT_PROMPTS:
            labels.append(int(p))
        else:
            raise ValueError(f"prompt must be a digit '0'..'9', None or '' for the class-conditional digits "
                             f"model, got {p!r}")
    return torch.tensor(labels, dtype=torch.int64)


class DigitsDiffusion(DiffusionModel):
    """Pixel-space DDPM on 16x16 digits; x0 = 2 * image - 1. Class-conditional when its UNet has class embeddings."""

    image_channels = 1

    def __init__(self, unet: UNet2DModel, scheduler: DDPMScheduler, name: str | None = None):
        self.unet = unet.eval()
        self.scheduler = scheduler
        self.conditional = unet.config.num_class_embeds is not None
        if self.conditional and unet.config.num_class_embeds != CLASSES + 1:
            raise ValueError(f"unet must have {CLASSES + 1} class embeddings (digits + null class), "
                             f"got {unet.config.num_class_embeds}")
        self.name = name or ("digits-ddpm-cond" if self.conditional else "digits-ddpm")
        self.schedule = VPSchedule.from_alphas_cumprod(scheduler.alphas_cumprod, name="digits_linear")

    def encode(self, images, generator: torch.Generator | None = None) -> torch.Tensor:
        """images (n, 1, 16, 16) in [0, 1] -> x0 = 2 * images - 1 (generator unused: the map is deterministic)."""
        images = torch.as_tensor(images, device=self.device, dtype=self.dtype)
        if images.shape[1:] != (1, SIZE, SIZE):
            raise ValueError(f"images must have shape (n, 1, {SIZE}, {SIZE}), got {tuple(images.shape)}")
        return 2 * images - 1

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        """x0 (n, 1, 16, 16) -> images (x0 + 1) / 2 clipped to [0, 1]."""
        return ((x0 + 1) / 2).clamp(0, 1)

    def condition(self, prompt, n: int) -> torch.Tensor | None:
        """(n,) class labels on the model's device for the conditional model (``class_labels``); None otherwise."""
        return class_labels(prompt, n).to(self.device) if self.conditional else None

    def network(self, x: torch.Tensor, t: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        """The UNet's eps for x (n, 1, 16, 16) at integer t (n,) under class labels (n,) or none."""
        return self.unet(x, t.long(), class_labels=condition).sample

    def latent_shape(self, n: int) -> tuple[int, ...]:
        return (n, 1, SIZE, SIZE)

    def save_pretrained(self, path) -> None:
        """Write config.json + diffusion_pytorch_model.safetensors (UNet) and scheduler_config.json to ``path``."""
        self.unet.save_pretrained(path)
        self.scheduler.save_pretrained(path)


def load_digits_model(path=None, device=None, dtype=None, conditional: bool = False) -> DigitsDiffusion:
    """The digits DDPM from ``path`` (default: the weights shipped in the package; with ``conditional`` the
    class-conditional model's), offline. A folder's UNet decides whether the model is conditional."""
    path = weights_path(conditional) if path is None else Path(path)
    if not (path / "diffusion_pytorch_model.safetensors").is_file():
        raise ValueError(f"path must be a folder written by DigitsDiffusion.save_pretrained, got {str(path)!r}")
    unet = UNet2DModel.from_pretrained(path, torch_dtype=dtype)
    if device is not None:
        unet.to(device)
    return DigitsDiffusion(unet, DDPMScheduler.from_pretrained(path))
