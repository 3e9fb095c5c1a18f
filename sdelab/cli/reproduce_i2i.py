"""DiffEdit and SDEdit with ODE, SDE and Cycle-SDE on the conditional digits model: python -m sdelab reproduce i2i.

    python -m sdelab reproduce i2i --model digits [--n N] [--t0 T ...] [--guidance G] [--workers W] [--json]
                                   [--figures [DIR]]

The 450 held-out digits, each k edited towards (k + 3) mod 10 at t0 = 0.3 ... 0.8 (50 steps over the whole
diffusion) with DiffEdit and SDEdit, and "edited" into its own class (the null edit): the fraction judged as the
target, Frechet distances to the training digits, the distance to the input and the change outside the DiffEdit
mask, with 95% bootstrap intervals (sdelab.reproduce.i2i). Figures: i2i_digits_curves.png and
i2i_digits_examples.png.
"""

from __future__ import annotations

import argparse

from sdelab.cli.args import positive_int, unit_interval

RUNS = True  # --workers and --bootstrap


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=positive_int, default=450,
                        help="held-out digits to edit (450: all; n: the first n)")
    parser.add_argument("--t0", type=unit_interval, nargs="+", default=[0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
                        help="encode ratios")
    parser.add_argument("--steps", type=positive_int, default=50, help="steps over the whole diffusion (50)")
    parser.add_argument("--guidance", type=float, default=2.0, help="classifier-free guidance backwards (2)")
    parser.add_argument("--weights", help="the conditional model's folder (default: sdelab/weights/digits_cond)")


def run(args: argparse.Namespace):
    if args.guidance < 1:
        raise ValueError(f"--guidance must be >= 1, got {args.guidance}")
    from sdelab.cli.reproduce import Report
    from sdelab.reproduce.figures import i2i_curves_figure, i2i_examples_figure
    from sdelab.reproduce.i2i import markdown, reproduce_i2i

    result = reproduce_i2i(args.n, tuple(args.t0), args.steps, args.guidance, seed=args.seed, reps=args.bootstrap,
                           weights=args.weights, workers=args.workers, progress=not args.json,
                           keep=6 if args.figures else 0)
    s = result.settings
    setup = (f"class-conditional digits DDPM, n={s['n']} held-out digits, k -> k+3, cfg {s['guidance']:g}, "
             f"{s['steps']} steps, seed={s['seed']}, {s['seconds']:.0f} s")
    return Report(result, markdown(result), lambda: {
        "i2i_digits_curves": i2i_curves_figure(result),
        "i2i_digits_examples": i2i_examples_figure(result.examples, s["t0"])}, setup)
