"""Drag benchmark: UNet calls, wall time per edit and peak memory of SDE-Drag and ODE-Drag.

    python benchmarks/drag.py            # CPU: the tiny SD and the digits model; with CUDA also SD-1.5-sized models
    python benchmarks/drag.py --quick    # fewer configurations (a smoke run)

Every configuration runs in a fresh process (clean peak memory): a 5-sub-step drag (one pair dragged
10 latent pixels, step_size 2), the official grid (t0 = 0.6, 120 steps), with and without LoRA (100 steps).
On a GPU, "sd15-shaped" is Stable Diffusion 1.5's UNet, VAE and CLIP text encoder built from their configs
with random weights (the same compute as the real model; no download), at 512 x 512 in the three precisions of
docs/conventions.md: fp16 weights, fp32 weights under fp16 autocast ("float32+autocast") and fp32; LoRA (100 steps)
in fp16, with a check that its losses stayed finite.
It also times the ways of evaluating the stored chain's eps for Cycle-SDE's Eq. 8 noises (it does not depend on the
sample being denoised): in each backward step's call (one call on [x, chain sample], the default) or in a pass
before the backward pass, 1 or 20 steps per call (``reconstruct(chain_batch=...)``); all give the same result.
The paper reports ~76 s per edit (GPU not stated).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import subprocess
import sys
import time

import torch

PAPER_SECONDS = 76


def sd15_shaped(device: str, dtype: torch.dtype):
    """Stable Diffusion 1.5's architecture with random weights (its published configs), offline."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from sdelab.models.stable_diffusion import StableDiffusion, _byte_vocab

    unet = UNet2DConditionModel(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                                block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768,
                                attention_head_dim=8, norm_num_groups=32,
                                down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, sample_size=512, layers_per_block=2,
                        block_out_channels=(128, 256, 512, 512), scaling_factor=0.18215,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    vocab = _byte_vocab()
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                        num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                                        bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
                                        pad_token_id=vocab["<|endoftext|>"]))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    return StableDiffusion(unet, vae, text, tokenizer, scheduler, name="sd15-shaped-random",
                           random_weights=True).to(device, dtype)


def load(name: str, device: str, dtype: torch.dtype):
    from sdelab.models import load_digits_model, tiny_stable_diffusion

    if name == "digits":
        return load_digits_model(device=device, dtype=dtype)
    if name == "tiny-sd":
        return tiny_stable_diffusion(device=device, dtype=dtype)
    return sd15_shaped(device, dtype)


def one(config: dict) -> dict:
    """Run one configuration in this process and measure it."""
    from sdelab.edit.drag import DragSettings, drag

    device, dtype = config["device"], getattr(torch, config["dtype"].removesuffix("+autocast"))
    model = load(config["model"], device, dtype)
    autocast = (torch.autocast(device.split(":")[0], dtype=torch.float16) if config["dtype"].endswith("+autocast")
                else contextlib.nullcontext())
    side = {"digits": 16, "tiny-sd": 64}.get(config["model"], 512)
    image = torch.rand(1, model.image_channels, side, side, generator=torch.Generator().manual_seed(0))
    latent, ppl = side // model.pixels_per_latent, model.pixels_per_latent
    if latent >= 14:  # 10 latent pixels to the right: 5 sub-steps of 2
        src, tgt = [((latent // 2 - 5) * ppl, side // 2)], [((latent // 2 + 5) * ppl, side // 2)]
    else:  # the tiny SD's 8 x 8 latent: corner to corner, 7 * sqrt(2) = 9.9 latent pixels, also 5 sub-steps
        src, tgt = [(0, 0)], [((latent - 1) * ppl, (latent - 1) * ppl)]
    prompt = "a photo" if model.conditional else ""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with autocast:
        settings = DragSettings(sampler=config["sampler"], lora_steps=config["lora"])
        res = drag(model, image[0], src, tgt, prompt=prompt, settings=settings, frames=False, progress=False)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**30
    finite = all(map(math.isfinite, res.lora_losses)) and bool(torch.isfinite(res.latent).all())
    return config | {"substeps": res.settings["m"], "unet_calls": res.unet_calls, "seconds": round(seconds, 2),
                     "peak_gib": round(peak, 2), "finite": finite}


SAMPLERS = ("cycle-sde", "ode")  # SDE-Drag, ODE-Drag
STRATEGIES = {"in each step's call": None, "before, 1 step per call": 1, "before, 20 steps per call": 20}


def noise_strategies(config: dict) -> dict:
    """Seconds of Cycle-SDE's backward pass for each way of evaluating the stored chain's eps (Eq. 8 noises)."""
    from sdelab.edit.inversion import invert, reconstruct

    model = load(config["model"], config["device"], getattr(torch, config["dtype"]))
    gen = torch.Generator(device=model.device).manual_seed(0)
    x0 = torch.randn(model.latent_shape(1), generator=gen, device=model.device, dtype=model.latent_dtype)
    prompt, guidance = ("a photo", 3.0) if model.conditional else (None, 1.0)
    inv = invert(model, x0, 120, 0.6, prompt=prompt, guidance=guidance, generator=gen, progress=False)
    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)
    times, outs = {}, {}
    for name, chain_batch in STRATEGIES.items():
        sync()
        start = time.perf_counter()
        outs[name] = reconstruct(model, inv, inv.x_t0 + 0.1, chain_batch=chain_batch, progress=False)
        sync()
        times[name] = round(time.perf_counter() - start, 2)
    diff = max((out - outs["in each step's call"]).abs().max().item() for out in outs.values())
    return config | {"seconds": times, "max_abs_diff": diff}


def configurations(quick: bool) -> list[dict]:
    cpu = [dict(model=m, device="cpu", dtype="float32", sampler=s, lora=lora)
           for m in ("digits", "tiny-sd") for s in SAMPLERS for lora in ((0,) if quick else (0, 100))]
    if not torch.cuda.is_available():
        return cpu
    gpu = [dict(model="sd15-shaped", device="cuda", dtype=dt, sampler=s, lora=0)
           for dt in ("float16", "float32+autocast", "float32") for s in SAMPLERS]
    gpu += [] if quick else [dict(model="sd15-shaped", device="cuda", dtype="float16", sampler="cycle-sde", lora=100)]
    return cpu + gpu


def run_child(kind: str, config: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, json.dumps(config)], capture_output=True,
                         text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    if out.returncode:
        return config | {"error": out.stderr.strip().splitlines()[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        config = json.loads(args.child[1])
        if config["device"] == "cpu":
            torch.set_num_threads(1)  # small models: one thread each is faster on 2 shared cores
        print(json.dumps((one if args.child[0] == "edit" else noise_strategies)(config)))
        return
    from sdelab.edit.drag import EDITORS
    from sdelab.plotting import machine

    print(f"# drag benchmark on {machine()}, torch {torch.__version__}; paper: ~{PAPER_SECONDS} s per edit")
    print("| model | device | dtype | editor | LoRA steps | sub-steps | UNet calls | s per edit | peak GiB | finite |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for config in configurations(args.quick):
        r = run_child("edit", config)
        if "error" in r:
            print(f"| {r['model']} | {r['device']} | {r['dtype']} | {EDITORS[r['sampler']]} | {r['lora']} | error: "
                  f"{r['error']} |")
            continue
        print(f"| {r['model']} | {r['device']} | {r['dtype']} | {EDITORS[r['sampler']]} | {r['lora']} | "
              f"{r['substeps']} | {r['unet_calls']} | {r['seconds']:.2f} | {r['peak_gib']:.2f} | {r['finite']} |",
              flush=True)
    print("\n| model | device | dtype | " + " | ".join(f"chain eps {k} (s)" for k in STRATEGIES) + " | max abs diff |")
    print("|---|---|---|" + "---|" * (len(STRATEGIES) + 1))
    for config in [c for c in configurations(True) if c["sampler"] == "cycle-sde" and "+" not in c["dtype"]]:
        r = run_child("noises", config)
        if "error" in r:
            print(f"| {r['model']} | {r['device']} | {r['dtype']} | error: {r['error']} |")
            continue
        print(f"| {r['model']} | {r['device']} | {r['dtype']} | "
              + " | ".join(f"{r['seconds'][k]:.2f}" for k in STRATEGIES) + f" | {r['max_abs_diff']:.1e} |", flush=True)


if __name__ == "__main__":
    main()
