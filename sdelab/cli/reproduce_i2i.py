"""DiffEdit and SDEdit with ODE, SDE and Cycle-SDE on the conditional digits model: python -m sdelab reproduce i2i.

    python -m sdelab reproduce i2i --model digits [--n N] [--t0 T ...] [--guidance G] [--workers W] [--json]
                                   [--figures]

The 450 held-out digits, each k edited towards (k + 3) mod 10 at t0 = 0.3 ... 0.8 (50 steps over the whole
diffusion) with DiffEdit and SDEdit, and "edited" into its own class (the null edit): the fraction judged as the
target, Frechet distances to the training digits, the distance to the input and the change outside the DiffEdit
mask, with 95% bootstrap intervals (sdelab.reproduce.i2i).
"""

from __future__ import annotations

import argparse
import json
import sys

from sdelab.cli.args import positive_int, unit_interval


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--model", default="digits", choices=["digits"],
                        help="the model (digits: the class-conditional digits DDPM, runs on a CPU)")
    parser.add_argument("--n", type=positive_int, default=450,
                        help="held-out digits to edit (450: all; n: the first n)")
    parser.add_argument("--t0", type=unit_interval, nargs="+", default=[0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
                        help="encode ratios")
    parser.add_argument("--steps", type=positive_int, default=50, help="steps over the whole diffusion (50)")
    parser.add_argument("--guidance", type=float, default=2.0, help="classifier-free guidance backwards (2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the masks and the noise (0)")
    parser.add_argument("--bootstrap", type=positive_int, default=200, help="bootstrap resamples (200)")
    parser.add_argument("--weights", help="the conditional model's folder (default: sdelab/weights/digits_cond)")
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="torch threads with --workers 1 (1: faster on two cores shared with other jobs)")
    parser.add_argument("--workers", type=positive_int, default=2,
                        help="processes for the t0s, one thread each (2: one per core; the same table as 1)")
    parser.add_argument("--json", action="store_true", help='print {"rows": [...], "settings": {...}}')
    parser.add_argument("--figures", action="store_true",
                        help="save figures/i2i_digits_curves.png and figures/i2i_digits_examples.png")


def run(args: argparse.Namespace) -> int:
    if args.guidance < 1:
        print(f"error: --guidance must be >= 1, got {args.guidance}", file=sys.stderr)
        return 2
    import torch

    from sdelab.plotting import save_figure
    from sdelab.reproduce.i2i import curves_figure, examples_figure, markdown, reproduce_i2i

    torch.set_num_threads(args.threads)
    result = reproduce_i2i(args.n, tuple(args.t0), args.steps, args.guidance, seed=args.seed, reps=args.bootstrap,
                           weights=args.weights, workers=args.workers,
                           progress=not args.json, keep=6 if args.figures else 0)
    examples = result.pop("examples", None)
    print(json.dumps(result) if args.json else markdown(result))
    if args.figures:
        s = result["settings"]
        setup = (f"class-conditional digits DDPM, n={s['n']} held-out digits, k -> k+3, cfg {s['guidance']:g}, "
                 f"{s['steps']} steps, seed={s['seed']}, {s['seconds']:.0f} s")
        save_figure(curves_figure(result), "i2i_digits_curves", setup=setup)
        save_figure(examples_figure(examples, s["t0"]), "i2i_digits_examples", setup=setup)
        print("figures saved", file=sys.stderr)
    return 0
