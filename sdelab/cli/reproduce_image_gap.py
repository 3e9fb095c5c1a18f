"""An edit's distribution gap along ODE, SDE and Cycle-SDE chains (digits): python -m sdelab reproduce image-gap.

    python -m sdelab reproduce image-gap --model digits [--edit NAME ...] [--seed S] [--repeats K] [--workers W]
                                         [--json] [--figures [DIR]]

Every held-out digit is noised to t0 by the forward chain, edited, and denoised by the ODE, the SDE and Cycle-SDE
from the same edited start (and by the ODE from a DDIM-inverted start); at checkpoints t the population is compared
with the training digits noised to t (Frechet distance in the judge's PCA features, classifier two-sample test),
beside the noise floor of the unedited digits (sdelab.reproduce.image_gap). Seeds S, S + 1, ..., S + K - 1 run
side by side. Figure: image_gap_digits.png.
"""

from __future__ import annotations

import argparse

from sdelab.cli.args import positive_int, unit_interval

RUNS = True  # --workers and --bootstrap
EDITS = ("none", "contrast", "shift", "blur", "drag")  # sdelab.reproduce.image_gap.EDITS (no torch import here)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--edit", nargs="+", choices=EDITS, default=list(EDITS), help="edits (default: all)")
    parser.add_argument("--n", type=positive_int, default=450, help="held-out digits (450 = all)")
    parser.add_argument("--t0", type=unit_interval, default=0.6, help="start level (0.6)")
    parser.add_argument("--intervals", type=positive_int, default=50,
                        help="grid intervals over [0, T]: steps = intervals * t0 (50: 30 steps from t0 = 0.6)")
    parser.add_argument("--repeats", type=positive_int, default=3,
                        help="seeds --seed, --seed + 1, ...: this many runs of every noise (3)")
    parser.add_argument("--checkpoints", type=positive_int, default=11,
                        help="grid times where the statistics are measured, t0 and the data level included (11)")
    parser.set_defaults(workers=3, bootstrap=100)  # one process per default seed: on 2 cores three finish together


def run(args: argparse.Namespace):
    from sdelab.cli.reproduce import Report
    from sdelab.reproduce.figures import gap_figure
    from sdelab.reproduce.image_gap import image_gap, markdown

    seeds = tuple(range(args.seed, args.seed + args.repeats))
    result = image_gap(args.n, args.t0, args.intervals, tuple(args.edit), seeds, args.checkpoints, args.bootstrap,
                       args.workers, progress=not args.json)
    s = result.settings
    setup = (f"digits DDPM, n={s['n']} held-out digits, t0={s['t0']}, {s['steps']} steps, seeds {s['seeds']}, "
             f"reference: training digits noised to t, {s['bootstrap']} bootstrap resamples, {s['seconds']:.0f} s")
    return Report(result, markdown(result), lambda: {"image_gap_digits": gap_figure(result)}, setup)
