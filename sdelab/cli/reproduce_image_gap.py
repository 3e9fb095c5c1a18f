"""An edit's distribution gap along ODE, SDE and Cycle-SDE chains (digits): python -m sdelab reproduce image-gap.

    python -m sdelab reproduce image-gap --model digits [--edit NAME ...] [--seeds S ...] [--workers W] [--json]
                                         [--figures]

Every held-out digit is noised to t0 by the forward chain, edited, and denoised by the ODE, the SDE and Cycle-SDE
from the same edited start (and by the ODE from a DDIM-inverted start); at checkpoints t the population is compared
with the training digits noised to t (Frechet distance in PCA features, classifier two-sample test), beside the
noise floor of the unedited digits (sdelab.reproduce.image_gap).
"""

from __future__ import annotations

import argparse
import json
import sys

from sdelab.cli.args import positive_int, unit_interval

EDITS = ("none", "contrast", "shift", "blur", "drag")  # sdelab.reproduce.image_gap.EDITS (no torch import here)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--model", default="digits", choices=["digits"], help="the model (digits: runs on a CPU)")
    parser.add_argument("--edit", nargs="+", choices=EDITS, default=list(EDITS), help="edits (default: all)")
    parser.add_argument("--n", type=positive_int, default=450, help="held-out digits (450 = all)")
    parser.add_argument("--t0", type=unit_interval, default=0.6, help="start level (0.6)")
    parser.add_argument("--intervals", type=positive_int, default=50,
                        help="grid intervals over [0, T]: steps = intervals * t0 (50: 30 steps from t0 = 0.6)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of all noise (0 1 2)")
    parser.add_argument("--checkpoints", type=positive_int, default=11,
                        help="grid times where the statistics are measured, t0 and the data level included (11)")
    parser.add_argument("--workers", type=positive_int, default=3,
                        help="processes running the seeds side by side, one thread each (3: one per default seed; "
                             "on 2 cores three finish together, two would leave a core idle for the third seed)")
    parser.add_argument("--bootstrap", type=positive_int, default=100, help="bootstrap resamples (100)")
    parser.add_argument("--json", action="store_true", help='print {"rows": [...], "settings": {...}}')
    parser.add_argument("--figures", action="store_true", help="save figures/image_gap_digits.png")


def run(args: argparse.Namespace) -> int:
    import torch

    from sdelab.plotting import save_figure
    from sdelab.reproduce.image_gap import gap_figure, image_gap, markdown

    torch.set_num_threads(1)  # batches of 16x16 images: one thread is faster than two on two shared cores
    result = image_gap(args.n, args.t0, args.intervals, tuple(args.edit), tuple(args.seeds), args.checkpoints,
                       args.bootstrap, args.workers, progress=not args.json)
    print(json.dumps(result) if args.json else markdown(result))
    if args.figures:
        s = result["settings"]
        setup = (f"digits DDPM, n={s['n']} held-out digits, t0={s['t0']}, {s['steps']} steps, seeds {s['seeds']}, "
                 f"reference: training digits noised to t, {s['bootstrap']} bootstrap resamples, {s['seconds']:.0f} s")
        save_figure(gap_figure(result), "image_gap_digits", setup=setup)
        print("figure saved", file=sys.stderr)
    return 0
