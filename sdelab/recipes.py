"""How each pixel model is trained, as plain data (no torch): ``python -m sdelab train NAME`` runs one.

A recipe names a data module ``sdelab.data.<data>`` (which gives ``SIZE``, ``CHANNELS``, ``PROMPTS`` and
``train_batches()``), a network, a noise schedule and an optimiser; ``sdelab.train`` is the one training loop.
A new pixel model is a data module and a recipe here: the shapes scenes are trained on Stable Diffusion's schedule
(``beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012``), so that t0 means the noise level it
means in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    """One model's training: its data, network, schedule (1000 steps) and optimiser (module docstring)."""

    name: str  # the model's name, saved in its sdelab_config.json
    data: str  # the data module sdelab.data.<data>
    conditional: bool = False  # class-conditional on the data's PROMPTS, labels dropped with probability p_uncond
    beta_schedule: str = "linear"  # "linear" (DDPM) or "scaled_linear" (Stable Diffusion)
    beta_start: float = 1e-4
    beta_end: float = 0.02
    widths: tuple[int, ...] = (16, 32, 32)  # UNet width per resolution level, attention at the lowest
    layers_per_block: int = 1
    steps: int = 4000  # AdamW steps
    batch_size: int = 128
    lr: float = 2e-3  # peak of the one-cycle learning rate
    ema_decay: float = 0.999  # the EMA weights are the ones saved
    p_uncond: float = 0.1  # label dropout of a conditional model (classifier-free guidance)


RECIPES = {
    "digits": Recipe("digits-ddpm", data="digits"),  # shipped in sdelab/weights/digits
    "digits-cond": Recipe("digits-ddpm-cond", data="digits", conditional=True),  # sdelab/weights/digits_cond
    # procedural scenes (sdelab.data.shapes) on Stable Diffusion's schedule; 1.1 M parameters, attention at 8 x 8;
    # shipped in sdelab/weights/shapes
    "shapes": Recipe("shapes-ddpm", data="shapes", beta_schedule="scaled_linear", beta_start=0.00085,
                     beta_end=0.012, widths=(32, 64, 64), steps=7000, batch_size=32, lr=1e-3),
}
