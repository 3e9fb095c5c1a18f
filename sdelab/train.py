"""Train a pixel model from scratch with one recipe: ``python -m sdelab train digits|digits-cond [--out DIR] ...``.

eps-MSE at uniformly random integer t (Ho et al. 2020), AdamW with a one-cycle learning rate, EMA weights (the
EMA copy is what is saved), on batches from the recipe's data module (``sdelab.recipes``). A conditional model
learns the data's labels as prompts, each dropped to the null class "" with probability ``p_uncond``, so that the
one network also gives the unconditional eps for classifier-free guidance (Ho & Salimans 2022). Seeded: the
initial weights and every batch, time and noise come from the seed, through generators of their own (the global
RNG is left as it was).

The digits recipe (UNet widths (16, 32, 32) at 16/8/4 px, one ResNet layer per block, attention at 4x4 only,
280k parameters; 4000 steps of batch 128) measured per step on 2 CPU cores, torch's 2 threads: 0.36 s on an
idle 2-core AMD EPYC (torch 2.13), ~24 minutes in all; 0.153 s on 2 cores of an Intel Xeon (torch 2.11,
``taskset -c 0,1``), ~10 minutes. The shipped weights took 3021 s (50 min) with ``--threads 1`` on that EPYC
while other jobs shared its 2 cores: there torch's two threads fight the other jobs and run several times
slower, so pass ``--threads 1`` on a busy machine. ``--device cuda`` (H200): 168 s. Shipped weights:
``python -m sdelab train digits --out sdelab/weights/digits --threads 1`` (and ``digits-cond`` into
``sdelab/weights/digits_cond``). The shapes recipe (widths (32, 64, 64) at 32/16/8 px, attention at 8x8, 1.1 M
parameters, 7000 steps of batch 32 on Stable Diffusion's schedule): the shipped weights took 2540 s (42 min) with
``--threads 1`` on that shared EPYC, 0.33-0.65 s a step as the other jobs came and went
(``python -m sdelab train shapes --out sdelab/weights/shapes --threads 1``).
"""

from __future__ import annotations

import importlib
import json
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from sdelab.models.pixel import PixelDiffusion, build_scheduler, build_unet
from sdelab.models.training import eps_mse_loss
from sdelab.plotting import machine
from sdelab.recipes import Recipe


def _check(recipe: Recipe) -> None:
    for name in ("steps", "batch_size", "layers_per_block"):
        value = getattr(recipe, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not recipe.lr > 0:
        raise ValueError(f"lr must be > 0, got {recipe.lr}")
    if not 0 <= recipe.ema_decay < 1:
        raise ValueError(f"ema_decay must lie in [0, 1), got {recipe.ema_decay}")
    if not 0 <= recipe.p_uncond < 1:
        raise ValueError(f"p_uncond must lie in [0, 1), got {recipe.p_uncond}")


def warmup_fraction(steps: int) -> float:
    """OneCycleLR's ``pct_start``: 5% of the steps, at least two from 4 steps on (it divides by pct_start * steps
    - 1, so a warm-up of exactly one step, as 5% of 20 steps would be, raises ZeroDivisionError)."""
    return max(2, round(0.05 * steps)) / steps if steps >= 4 else 0.05


def initial_model(recipe: Recipe, seed: int = 0) -> PixelDiffusion:
    """The recipe's model with fresh weights drawn from ``seed`` (the global RNG is left as it was)."""
    data = importlib.import_module(f"sdelab.data.{recipe.data}")
    prompts = data.PROMPTS if recipe.conditional else ()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = build_unet(data.SIZE, data.CHANNELS, recipe.widths, recipe.layers_per_block, len(prompts))
    scheduler = build_scheduler(recipe.beta_schedule, recipe.beta_start, recipe.beta_end)
    return PixelDiffusion(unet, scheduler, recipe.name, prompts)


def train(recipe: Recipe, out, *, seed: int = 0, device: str = "cpu", progress: bool = True) -> PixelDiffusion:
    """Train the recipe's model for ``recipe.steps`` AdamW steps; save its EMA weights to ``out`` and return them."""
    _check(recipe)
    gen = torch.Generator().manual_seed(seed)  # batches, times, noise, label dropout: on the CPU, for every device
    model = initial_model(recipe, seed).to(device)
    draw = importlib.import_module(f"sdelab.data.{recipe.data}").train_batches()
    unet = model.unet.train()
    ema = AveragedModel(unet, multi_avg_fn=get_ema_multi_avg_fn(recipe.ema_decay), use_buffers=True)
    opt = torch.optim.AdamW(unet.parameters(), lr=recipe.lr, weight_decay=1e-4)
    lr_schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=recipe.steps,
                                                      pct_start=warmup_fraction(recipe.steps))
    start, losses = time.perf_counter(), []
    bar = tqdm(range(recipe.steps), disable=not progress, desc=f"train {recipe.name}")
    for _ in bar:
        images, labels = draw(recipe.batch_size, gen)  # (b, c, size, size), (b,)
        x0 = model.encode(images)  # in [-1, 1], on the device
        t = torch.randint(model.scheduler.config.num_train_timesteps, (recipe.batch_size,), generator=gen)  # (b,)
        noise = torch.randn(x0.shape, generator=gen).to(device)
        prompt = None
        if recipe.conditional:  # the labels as prompts, each dropped to "" (the null class) with probability p_uncond
            keep = torch.rand(recipe.batch_size, generator=gen) >= recipe.p_uncond  # (b,)
            prompt = [model.prompts[k] if kept else "" for k, kept in zip(labels.tolist(), keep, strict=True)]
        loss = eps_mse_loss(model, x0, t, noise, prompt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lr_schedule.step()
        ema.update_parameters(unet)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{sum(losses[-100:]) / len(losses[-100:]):.4f}")
    seconds = time.perf_counter() - start
    trained = PixelDiffusion(ema.module.eval(), model.scheduler, model.name, model.prompts)
    trained.save_pretrained(out)
    log = {"recipe": asdict(recipe), "seed": seed, "device": str(device), "threads": torch.get_num_threads(),
           "seconds": round(seconds, 1), "final_loss_mean_last_100": sum(losses[-100:]) / len(losses[-100:]),
           "finished": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
           "torch": torch.__version__}
    (Path(out) / "training_log.json").write_text(json.dumps(log, indent=1) + "\n")
    return trained

