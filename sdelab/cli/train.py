"""Train a shipped pixel model from scratch with its recipe: python -m sdelab train MODEL [--out DIR] [...].

    python -m sdelab train {digits,digits-cond,shapes} [--out DIR] [--steps N] [--seed S] [--threads 1] [--device cuda]

The recipes (data, network, noise schedule, optimiser) are in sdelab.recipes; an option overrides its field.
The shipped weights: ``--out sdelab/weights/digits`` (``digits``), ``sdelab/weights/digits_cond`` (``digits-cond``),
``sdelab/weights/shapes`` (``shapes``).
Bad input exits with status 2 and one line saying what is wrong.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from sdelab.cli.args import positive_int
from sdelab.recipes import RECIPES

OVERRIDES = ("steps", "batch_size", "lr", "widths", "layers_per_block", "ema_decay", "p_uncond")


def _recipes(field: str) -> str:
    """The recipes' values of one field, for the help: "digits 4000, digits-cond 4000, shapes 7000"."""

    def shown(v):
        return " ".join(map(str, v)) if isinstance(v, tuple) else str(v)
    return ", ".join(f"{k} {shown(getattr(r, field))}" for k, r in RECIPES.items())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("model", choices=list(RECIPES), help="the recipe: " + ", ".join(
        f"{k} ({r.name}, data sdelab.data.{r.data})" for k, r in RECIPES.items()))
    parser.add_argument("--out", default=None, help="output folder (default: ./<model>-model)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and every draw (0)")
    parser.add_argument("--steps", type=positive_int, help=f"AdamW steps ({_recipes('steps')})")
    parser.add_argument("--batch-size", type=positive_int, help=f"batch size ({_recipes('batch_size')})")
    parser.add_argument("--lr", type=float, help=f"peak learning rate of the one-cycle schedule ({_recipes('lr')})")
    parser.add_argument("--widths", type=positive_int, nargs="+",
                        help=f"UNet width per resolution level ({_recipes('widths')})")
    parser.add_argument("--layers-per-block", type=positive_int,
                        help=f"ResNet layers per block ({_recipes('layers_per_block')})")
    parser.add_argument("--ema-decay", type=float, help=f"decay of the saved EMA weights ({_recipes('ema_decay')})")
    parser.add_argument("--p-uncond", type=float, help="label dropout of a conditional model (0.1)")
    parser.add_argument("--device", default="cpu", help="torch device to train on, e.g. cuda (cpu)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch threads (default: torch's); 1 is faster on a machine shared with other jobs")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import torch

    from sdelab.train import train

    given = {k: getattr(args, k) for k in OVERRIDES if getattr(args, k) is not None}
    recipe = dataclasses.replace(RECIPES[args.model], **given | ({"widths": tuple(args.widths)} if args.widths
                                                                   else {}))
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    out = args.out or f"{args.model}-model"
    try:
        train(recipe, out, seed=args.seed, device=args.device, progress=not args.quiet)
    except ValueError as err:
        print(f"train {args.model}: error: {err}", file=sys.stderr)
        return 2
    print(f"saved to {out}")
    return 0
