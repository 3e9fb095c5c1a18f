"""Drag points of an image with SDE-Drag (or ODE-Drag with --ode), the paper's drag editor.

    python -m sdelab drag IMAGE --source X,Y [--source X,Y ...] --target X,Y [...] [--mask M.png] [--prompt P]
        [--ode] [--model ID|PATH|tiny|digits|shapes] [--size PIXELS] [--steps N] [--t0 T] [--lora-steps N] [--seed S]
        --out OUT.png [--gif OUT.gif]

Points are (x, y) pixels of IMAGE, sources and targets paired in order; the mask has IMAGE's size. An image of
any size is dragged at a working size (--size: its longer side, by default the model's own, 512 for Stable
Diffusion 1.5) and written back at its own size. The defaults are the official SDE-Drag code's
(sdelab.edit.drag). A progress bar counts UNet steps. --model tiny (a random-weight SD: its pictures mean
nothing) and --model digits (the shipped 16x16 digits model) run offline; a hub id or a local folder loads
Stable Diffusion. Bad input exits with status 2 and one line saying what is wrong.
"""

from __future__ import annotations

import argparse
import sys

from sdelab.cli.args import non_negative_int, positive_int, unit_interval

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"


def point(text: str) -> tuple[float, float]:
    """'X,Y' -> (x, y) image pixels."""
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be X,Y (two numbers), got {text!r}") from None
    return x, y


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("image", help="the input image (a path)")
    parser.add_argument("--source", type=point, action="append", required=True, help="a source point X,Y (repeat)")
    parser.add_argument("--target", type=point, action="append", required=True, help="a target point X,Y (repeat)")
    parser.add_argument("--mask", help="mask image at the input's size: white = editable (default: all)")
    parser.add_argument("--prompt", default="", help="text prompt (Stable Diffusion; default '')")
    parser.add_argument("--ode", action="store_true", help="ODE-Drag (DDIM inversion) instead of SDE-Drag")
    parser.add_argument("--model", default=SD15,
                        help=f"hub id, local folder, 'tiny' or a shipped pixel model such as 'digits' (default {SD15})")
    parser.add_argument("--size", type=non_negative_int,
                        help="working size: the longer side in pixels, a multiple of 8 for Stable Diffusion (default: "
                             "the model's own, 512 for SD 1.5); 0 drags at the image's own size")
    parser.add_argument("--steps", type=positive_int, default=120, help="steps from t0 to the data level (120)")
    parser.add_argument("--t0", type=unit_interval, default=0.6, help="start level, fraction of the diffusion (0.6)")
    parser.add_argument("--lora-steps", type=non_negative_int, default=0, help="LoRA fine-tuning steps (0: none)")
    parser.add_argument("--seed", type=int, default=1234, help="random seed (1234)")
    parser.add_argument("--out", required=True, help="output image path (PNG)")
    parser.add_argument("--gif", help="also save the sub-step frames as an animated GIF")


def run(args: argparse.Namespace) -> int:
    import torch

    from sdelab.bench.metrics import native_size
    from sdelab.cli.models import load_model
    from sdelab.edit.drag import DragSettings, drag

    def fail(message: str) -> int:
        print(f"drag: error: {message}", file=sys.stderr)
        return 2

    try:
        model = load_model(args.model)
    except (ValueError, OSError) as err:
        return fail(str(err).splitlines()[0])
    size = native_size(model) if args.size is None else args.size or None
    try:
        settings = DragSettings(sampler="ode" if args.ode else "cycle-sde", t0=args.t0, steps=args.steps, size=size,
                                lora_steps=args.lora_steps, seed=args.seed)
        result = drag(model, args.image, args.source, args.target, args.mask, args.prompt, settings,
                      frames=args.gif is not None)
    except torch.OutOfMemoryError:
        lower = ["--size (e.g. 512, SD 1.5's own, or 384)"] + ["drop --gif"] * bool(args.gif) + \
            ["--lora-steps 0"] * bool(args.lora_steps)
        return fail(f"{model.device} ran out of memory at --size {size or 'as is'}: lower " + ", or ".join(lower))
    except (ValueError, FileNotFoundError, FloatingPointError) as err:
        return fail(str(err))
    result.image.save(args.out)
    if args.gif:
        frames = result.frames
        frames[0].save(args.gif, save_all=True, append_images=frames[1:], duration=500, loop=0)
    s = result.settings
    print(f"{s['editor']}: {s['m']} sub-steps at {s['working_size'][1]} x {s['working_size'][0]} (input "
          f"{s['image_size'][1]} x {s['image_size'][0]}), {result.unet_calls} UNet calls, {result.seconds:.1f} s "
          f"-> {args.out}", file=sys.stderr)
    return 0
