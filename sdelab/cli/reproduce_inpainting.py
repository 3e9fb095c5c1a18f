"""SDE against ODE inpainting on the digits model: python -m sdelab reproduce inpainting.

    python -m sdelab reproduce inpainting --model digits [--n N] [--steps K ...] [--workers W] [--json]
                                          [--figures [DIR]]

The 450 held-out digits with small (0.2) and large (0.4) stroke masks, filled by DDIM (ODE) and DDPM (SDE) at
25, 50 and 100 steps; Frechet distances to the training digits, the judge's agreement with the input, 95%
bootstrap intervals, the paper's FID beside them (sdelab.reproduce.inpainting). Figures: inpainting_digits_fd.png
and inpainting_digits_examples.png.
"""

from __future__ import annotations

import argparse

from sdelab.cli.args import positive_int

RUNS = True  # --workers and --bootstrap


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=positive_int, default=450, help="held-out digits to inpaint (450 = all)")
    parser.add_argument("--steps", type=positive_int, nargs="+", default=[25, 50, 100], help="step counts")


def run(args: argparse.Namespace):
    from sdelab.cli.reproduce import Report
    from sdelab.reproduce.figures import inpainting_examples_figure, inpainting_fd_figure
    from sdelab.reproduce.inpainting import markdown, reproduce_inpainting

    result = reproduce_inpainting(args.n, tuple(args.steps), seed=args.seed, reps=args.bootstrap,
                                  workers=args.workers, progress=not args.json, keep=8 if args.figures else 0)
    s = result.settings
    setup = (f"digits DDPM, n={s['n']} held-out digits, stroke masks 0.2 / 0.4, steps={s['steps']}, "
             f"seed={s['seed']}, {s['seconds']:.0f} s")
    return Report(result, markdown(result), lambda: {
        "inpainting_digits_fd": inpainting_fd_figure(result),
        "inpainting_digits_examples": inpainting_examples_figure(result.examples, s["steps"][-1])}, setup)
