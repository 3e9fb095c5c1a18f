"""Sample quality of the digits models against the held-out digits: python -m sdelab reproduce quality.

    python -m sdelab reproduce quality --model digits [--conditional] [--n N] [--steps K ...] [--guidance G ...]
                                       [--weights DIR] [--json] [--figures [DIR]]

Samples of the shipped model (DDIM and DDPM), real train digits, blurred real digits and uniform noise, scored by
the digits judge: its confident fraction, classes, entropy, and Frechet distances to the 450 held-out test digits
(sdelab.reproduce.quality). --conditional: the class-conditional model, its null class and samples asked for each
digit at every --guidance. Figure: digits_samples.png (digits_cond_samples.png with --conditional).
"""

from __future__ import annotations

import argparse

from sdelab.cli.args import positive_int

RUNS = False  # no worker processes, no intervals


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", default=None, help="model folder (default: the shipped weights)")
    parser.add_argument("--conditional", action="store_true",
                        help="the class-conditional model (default folder: sdelab/weights/digits_cond)")
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0, 3.0],
                        help="classifier-free guidance scales of the class-conditional rows (--conditional)")
    parser.add_argument("--n", type=positive_int, default=450, help="samples per sampler (450 = the test split's size)")
    parser.add_argument("--steps", type=positive_int, nargs="+", default=[50, 100], help="step counts (50 100)")


def run(args: argparse.Namespace):
    from sdelab.cli.reproduce import Report
    from sdelab.models.pixel import load_digits_model
    from sdelab.reproduce.figures import samples_figure
    from sdelab.reproduce.quality import markdown, reproduce_quality

    model = load_digits_model(args.weights, conditional=args.conditional)
    result = reproduce_quality(model, args.n, tuple(args.steps), tuple(args.guidance), args.seed,
                               keep=bool(args.figures))
    stem = "digits_cond_samples" if args.conditional else "digits_samples"
    setup = f"{model.name} ({args.weights or 'shipped weights'}), {args.steps[0]} steps, seed {args.seed}"
    return Report(result, markdown(result), lambda: {stem: samples_figure(result.examples)}, setup)
