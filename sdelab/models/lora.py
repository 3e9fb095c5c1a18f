"""LoRA adapters on a model's denoising network, through peft (as diffusers' ``add_adapter`` attaches them).

SDE-Drag optionally fine-tunes a LoRA on the input image before dragging, so that the model reconstructs
that image well; during the edit the adapter's scale follows a per-step schedule, which reaches the network
through ``DiffusionModel.eps(..., lora_scale=...)`` and ``lora_scaled``. ``lora_finetuned`` trains an adapter
for the length of a ``with`` block and removes it after, so the model is exactly as before.

Precision: the adapter's parameters are always float32, whatever the network's dtype (diffusers' training
scripts do the same with ``cast_training_params``). AdamW on float16 parameters gives NaN at once: its eps 1e-8
rounds to 0 in float16 and lora_B starts at 0, so the first update is 0 / 0. A half-precision network is trained
under autocast with a gradient scaler, as the official SDE-Drag code does through accelerate's mixed precision.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from tqdm.auto import tqdm

from sdelab.models.base import DiffusionModel
from sdelab.models.training import eps_mse_loss

TARGETS = ("to_q", "to_k", "to_v", "to_out.0")  # the attention projections
HALF = (torch.float16, torch.bfloat16)


def lora_layers(network: torch.nn.Module) -> list:
    """The peft LoRA layers inside a network (empty without an adapter)."""
    from peft.tuners.lora import LoraLayer

    return [m for m in network.modules() if isinstance(m, LoraLayer)]


@contextmanager
def lora_scaled(network: torch.nn.Module, scale: float | None):
    """Within the block every LoRA adapter of ``network`` acts at ``scale`` times its trained scale (1 = as trained),
    and afterwards at what it was before (peft's ``rescale_adapter_scale``); None: unchanged."""
    if scale is None:
        yield
        return
    if not lora_layers(network):
        raise ValueError(f"lora_scale={scale} needs a LoRA adapter on the network, and it has none")
    from peft.helpers import rescale_adapter_scale

    with rescale_adapter_scale(network, float(scale)):
        yield


def add_lora(network: torch.nn.Module, rank: int) -> list[torch.nn.Parameter]:
    """Attach a rank-``rank`` LoRA adapter to the attention projections; returns its trainable float32 parameters."""
    from diffusers.training_utils import cast_training_params
    from peft import LoraConfig, inject_adapter_in_model

    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f"lora_rank must be a positive integer, got {rank!r}")
    if lora_layers(network):
        raise ValueError("the network already has a LoRA adapter: remove_lora it first")
    config = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=list(TARGETS))
    if hasattr(network, "add_adapter"):  # diffusers' PeftAdapterMixin (UNet2DConditionModel)
        network.add_adapter(config)
    else:  # e.g. UNet2DModel: the same peft injection without the mixin
        inject_adapter_in_model(config, network)
    params = [p for n, p in network.named_parameters() if "lora_" in n]
    if not params:
        raise ValueError(f"the network has none of the attention projections {TARGETS} for LoRA")
    for p in params:
        p.requires_grad_(True)
    cast_training_params(network, torch.float32)  # the adapter in float32 even on a half-precision network
    return [p for n, p in network.named_parameters() if "lora_" in n]


def remove_lora(network: torch.nn.Module) -> None:
    """Replace every LoRA-wrapped module by the module it wraps (diffusers' ``unload_lora`` where the network has
    it, else ``recurse_remove_peft_layers``): the network is exactly as before ``add_lora``."""
    from diffusers.utils import recurse_remove_peft_layers

    if hasattr(network, "unload_lora"):
        network.unload_lora()
    else:
        recurse_remove_peft_layers(network)


def _check_finite(network: torch.nn.Module, step: int, loss: float) -> None:
    """FloatingPointError when the loss or an adapter weight is not finite: the edit would come out black."""
    bad = [n for n, p in network.named_parameters() if "lora_" in n and not torch.isfinite(p).all()]
    if math.isfinite(loss) and not bad:
        return
    what = f"loss {loss}" if not math.isfinite(loss) else f"non-finite adapter weights ({bad[0]}, ...)"
    raise FloatingPointError(f"LoRA training diverged at step {step + 1}: {what}. The edit would turn to NaN (a black "
                             "image); check the input latent, lower the learning rate, or run without LoRA "
                             "(lora_steps=0)")


def train_lora(model: DiffusionModel, x0: torch.Tensor, prompt: str | None = None, *, steps: int = 100,
               rank: int = 4, lr: float = 2e-4, weight_decay: float = 1e-2, generator: torch.Generator | None = None,
               progress: bool = True) -> list[float]:
    """Fit a LoRA on one image's latent x0 (1, C, h, w): AdamW, batch 1, eps-MSE at uniformly drawn t.

    SDE-Drag's recipe (the official code): rank 4, lr 2e-4, weight decay 1e-2, 100 steps. The adapter is float32;
    a half-precision network runs under autocast with a gradient scaler. A non-finite loss or adapter weight raises
    FloatingPointError. The adapter stays on ``model.unet`` (``remove_lora(model.unet)`` takes it off, or use
    ``lora_finetuned``); returns the loss of every step.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"lora_steps must be a positive integer here, got {steps!r}")
    params = add_lora(model.unet, rank)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    device = torch.device(model.device).type
    half = model.dtype in HALF
    scaler = torch.amp.GradScaler(device, enabled=model.dtype == torch.float16)  # bfloat16 needs no scaling
    T = len(model.schedule.alphas_cumprod)
    losses = []
    model.unet.train()
    try:
        for step in tqdm(range(steps), disable=not progress, desc="LoRA steps"):
            t = torch.randint(T, (1,), generator=generator, device=generator.device if generator else "cpu")
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
            with torch.enable_grad(), torch.autocast(device, dtype=model.dtype, enabled=half):
                loss = eps_mse_loss(model, x0, t.cpu(), noise, prompt)
            opt.zero_grad(set_to_none=True)
            with torch.enable_grad():
                scaler.scale(loss).backward()
            scaler.step(opt)  # skipped (and the scale lowered) when the scaled gradients overflowed
            scaler.update()
            losses.append(loss.item())
            _check_finite(model.unet, step, losses[-1])
    except BaseException:
        remove_lora(model.unet)
        raise
    finally:
        model.unet.eval()
        for p in params:
            p.requires_grad_(False)
    return losses


@contextmanager
def lora_finetuned(model: DiffusionModel, x0: torch.Tensor, prompt: str | None = None, **train) -> Iterator[list]:
    """``with lora_finetuned(model, x0, prompt, steps=100) as losses:`` the model carries a LoRA fitted to x0
    (``train_lora``'s arguments) inside the block, and is exactly as before after it, also on an error."""
    losses = train_lora(model, x0, prompt, **train)
    try:
        yield losses
    finally:
        remove_lora(model.unet)
