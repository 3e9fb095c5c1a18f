"""Train the digits DDPM from scratch: ``python -m sdelab.train_digits [--out DIR] [--steps N] [--seed S] ...``.

eps-MSE at uniformly random integer t (Ho et al. 2020), AdamW with a one-cycle learning rate, EMA weights
(the EMA copy is what is saved), on the "train" split of ``digits_dataset`` (1347 images, no augmentation).

The default recipe (UNet widths (16, 32, 32) at 16/8/4 px, one ResNet layer per block, attention at 4x4 only,
280k parameters; 4000 steps of batch 128) measured per step on 2 CPU cores, torch's 2 threads: 0.36 s on an
idle 2-core AMD EPYC (torch 2.13), ~24 minutes in all; 0.153 s on 2 cores of an Intel Xeon (torch 2.11,
``taskset -c 0,1``), ~10 minutes. The shipped weights took 3021 s (50 min) with ``--threads 1`` on that
EPYC while other jobs shared its 2 cores: there torch's two threads fight the other jobs and run several
times slower, so pass ``--threads 1`` on a busy machine. ``--device cuda`` (H200): 168 s.
Shipped weights: ``python -m sdelab.train_digits --out sdelab/weights/digits --threads 1``.

``--conditional`` trains the class-conditional model instead (the same recipe, a class embedding, the labels
as prompts "0".."9", each dropped to the null class "" with probability ``--p-uncond`` 0.1 so the one network
also learns the unconditional eps for classifier-free guidance, Ho & Salimans 2022). Shipped:
``python -m sdelab.train_digits --conditional --out sdelab/weights/digits_cond --threads 1``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from sdelab.data.digits import PROMPTS, SIZE, digits_dataset
from sdelab.models.pixel import PixelDiffusion, build_scheduler, build_unet
from sdelab.models.training import eps_mse_loss
from sdelab.plotting import machine


def train(out, steps: int = 4000, batch_size: int = 128, lr: float = 2e-3, seed: int = 0,
          channels: tuple[int, ...] = (16, 32, 32), layers_per_block: int = 1, ema_decay: float = 0.999,
          device: str = "cpu", progress: bool = True, conditional: bool = False,
          p_uncond: float = 0.1) -> PixelDiffusion:
    """Train a fresh digits DDPM for ``steps`` AdamW steps; save its EMA weights to ``out`` and return it.

    ``conditional``: class-conditional, each label dropped to the null class with probability ``p_uncond``.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not 0 <= ema_decay < 1:
        raise ValueError(f"ema_decay must lie in [0, 1), got {ema_decay}")
    if not 0 <= p_uncond < 1:
        raise ValueError(f"p_uncond must lie in [0, 1), got {p_uncond}")
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # the UNet's initial weights, without touching the global RNG
        torch.manual_seed(seed)
        unet = build_unet(SIZE, 1, channels, layers_per_block, len(PROMPTS) if conditional else 0).to(device)
    scheduler = build_scheduler("linear", 1e-4, 0.02)
    name, prompts = ("digits-ddpm-cond", PROMPTS) if conditional else ("digits-ddpm", ())
    model = PixelDiffusion(unet, scheduler, name, prompts)
    unet.train()
    ema = AveragedModel(unet, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
    images, labels_all = digits_dataset(split="train", return_labels=True)  # (1347, 1, 16, 16), (1347,)
    x0_all = model.encode(images)  # in [-1, 1]
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=1e-4)
    lr_schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    start, losses = time.perf_counter(), []
    bar = tqdm(range(steps), disable=not progress, desc="train digits")
    for _ in bar:
        # the batch is drawn on the CPU generator, so a seed gives the same data on every device
        index = torch.randint(len(x0_all), (batch_size,), generator=gen)  # (b,)
        x0 = x0_all[index.to(device)]  # (b, 1, 16, 16)
        t = torch.randint(scheduler.config.num_train_timesteps, (batch_size,), generator=gen)  # (b,)
        noise = torch.randn(x0.shape, generator=gen).to(device)
        prompt = None
        if conditional:  # the labels as prompts, each dropped to "" (the null class) with probability p_uncond
            keep = torch.rand(batch_size, generator=gen) >= p_uncond  # (b,)
            prompt = [str(int(k)) if kept else "" for k, kept in zip(labels_all[index], keep, strict=True)]
        loss = eps_mse_loss(model, x0, t, noise, prompt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lr_schedule.step()
        ema.update_parameters(unet)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{sum(losses[-100:]) / len(losses[-100:]):.4f}")
    seconds = time.perf_counter() - start
    trained = PixelDiffusion(ema.module, scheduler, name, prompts)
    trained.save_pretrained(out)
    log = {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "channels": list(channels),
           "layers_per_block": layers_per_block, "ema_decay": ema_decay, "device": str(device),
           **({"conditional": True, "p_uncond": p_uncond} if conditional else {}),
           "threads": torch.get_num_threads(),
           "seconds": round(seconds, 1), "final_loss_mean_last_100": sum(losses[-100:]) / len(losses[-100:]),
           "machine": machine(), "torch": torch.__version__}
    (Path(out) / "training_log.json").write_text(json.dumps(log, indent=1) + "\n")
    return trained


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sdelab.train_digits", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="digits-model", help="output folder (the shipped one: sdelab/weights/digits)")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of the one-cycle schedule")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 32, 32], help="UNet width per level")
    parser.add_argument("--layers-per-block", type=int, default=1)
    parser.add_argument("--ema-decay", type=float, default=0.999)
    parser.add_argument("--conditional", action="store_true", help="train the class-conditional model")
    parser.add_argument("--p-uncond", type=float, default=0.1,
                        help="label dropout probability of the conditional model (classifier-free guidance)")
    parser.add_argument("--device", default="cpu", help="torch device to train on, e.g. cuda")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's); 1 is faster on a machine shared with other jobs")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    train(args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
          channels=tuple(args.channels), layers_per_block=args.layers_per_block, ema_decay=args.ema_decay,
          device=args.device, conditional=args.conditional, p_uncond=args.p_uncond)
    print(f"saved to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
