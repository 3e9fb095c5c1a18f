"""LoRA adapters on a model's denoising network, through peft (as diffusers' ``add_adapter`` attaches them).

SDE-Drag optionally fine-tunes a LoRA on the input image before dragging, so that the model reconstructs
that image well; during the edit the adapter's scale follows a per-step schedule, which reaches the network
through ``DiffusionModel.eps(..., lora_scale=...)`` and ``lora_scaled``. ``remove_lora`` puts back the
network's own modules, so the model is exactly as before.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from tqdm.auto import tqdm

from sdelab.models.base import DiffusionModel
from sdelab.models.training import eps_mse_loss

TARGETS = ("to_q", "to_k", "to_v", "to_out.0")  # the attention projections


def lora_layers(network: torch.nn.Module) -> list:
    """The peft LoRA layers inside a network (empty without an adapter)."""
    from peft.tuners.lora import LoraLayer

    return [m for m in network.modules() if isinstance(m, LoraLayer)]


@contextmanager
def lora_scaled(network: torch.nn.Module, scale: float | None):
    """Within the block every LoRA adapter of ``network`` acts at ``scale`` (1 = as trained); None: unchanged."""
    if scale is None:
        yield
        return
    layers = lora_layers(network)
    if not layers:
        raise ValueError(f"lora_scale={scale} needs a LoRA adapter on the network, and it has none")
    adapters = {a for layer in layers for a in layer.scaling}
    for layer in layers:
        for adapter in adapters:
            layer.set_scale(adapter, float(scale))
    try:
        yield
    finally:
        for layer in layers:
            for adapter in adapters:
                layer.set_scale(adapter, 1.0)


def add_lora(network: torch.nn.Module, rank: int) -> list[torch.nn.Parameter]:
    """Attach a rank-``rank`` LoRA adapter to the attention projections; returns its trainable parameters."""
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
    return params


def remove_lora(network: torch.nn.Module) -> None:
    """Replace every LoRA-wrapped module by the module it wraps: the network is exactly as before ``add_lora``."""
    from peft.tuners.lora import LoraLayer

    for name, module in list(network.named_modules()):
        if isinstance(module, LoraLayer):
            parent_name, _, child = name.rpartition(".")
            setattr(network.get_submodule(parent_name) if parent_name else network, child, module.get_base_layer())
    for attr in ("peft_config", "_hf_peft_config_loaded"):
        if attr in network.__dict__:
            delattr(network, attr)


def train_lora(model: DiffusionModel, x0: torch.Tensor, prompt: str | None = None, *, steps: int = 100,
               rank: int = 4, lr: float = 2e-4, weight_decay: float = 1e-2, generator: torch.Generator | None = None,
               progress: bool = True) -> list[float]:
    """Fit a LoRA on one image's latent x0 (1, C, h, w): AdamW, batch 1, eps-MSE at uniformly drawn t.

    SDE-Drag's recipe (the official code): rank 4, lr 2e-4, weight decay 1e-2, 100 steps. The adapter stays
    on ``model.unet`` (call ``remove_lora(model.unet)`` after the edit); returns the loss of every step.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"lora_steps must be a positive integer here, got {steps!r}")
    params = add_lora(model.unet, rank)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    T = len(model.schedule.alphas_cumprod)
    losses = []
    model.unet.train()
    try:
        for _ in tqdm(range(steps), disable=not progress, desc="LoRA"):
            t = torch.randint(T, (1,), generator=generator, device=generator.device if generator else "cpu")
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
            with torch.enable_grad():
                loss = eps_mse_loss(model, x0, t.cpu(), noise, prompt)
                opt.zero_grad(set_to_none=True)
                loss.backward()
            opt.step()
            losses.append(loss.item())
    finally:
        model.unet.eval()
        for p in params:
            p.requires_grad_(False)
    return losses
