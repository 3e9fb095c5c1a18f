"""An edit's distribution gap along ODE, SDE and Cycle-SDE chains: python -m sdelab reproduce image-gap.

    python -m sdelab reproduce image-gap --model digits [--edit NAME ...] [--seed S] [--repeats K] [--workers W]
                                         [--json] [--figures [DIR]]
    python -m sdelab reproduce image-gap --model shapes [--edit none drag] [--n N] [--intervals K] [--json]
                                         [--figures [DIR]]

digits: every held-out digit is noised to t0 by the forward chain, edited, and denoised by the ODE, the SDE and
Cycle-SDE from the same edited start (and by the ODE from a DDIM-inverted start); at checkpoints t the population is
compared with the training digits noised to t (Frechet distance in the judge's PCA features, classifier two-sample
test), beside the noise floor of the unedited digits (sdelab.reproduce.image_gap). Seeds S, S + 1, ..., S + K - 1
run side by side. Figure: image_gap_digits.png.
shapes: the same on 300 shapes scenes with one drag each (the copy-paste at t0; edits none and drag), on Stable
Diffusion's schedule (20 steps from t0 = 0.6, 6 checkpoints, one seed), with the shapes judge's validity rate of the
decoded x0 prediction at every checkpoint (of the outputs at t = 0) beside its floor. Figure: image_gap_shapes.png.
"""

from __future__ import annotations

import argparse
import sys

from sdelab.cli.args import positive_int, unit_interval

RUNS = True  # --workers and --bootstrap
MODELS = ("digits", "shapes")
EDITS = ("none", "contrast", "shift", "blur", "drag")  # sdelab.reproduce.image_gap.EDITS (no torch import here)
SHAPES_EDITS = ("none", "drag")  # sdelab.reproduce.image_gap.SHAPES_EDITS
# per model: edits, n, intervals, repeats, checkpoints (sdelab.reproduce.image_gap.image_gap, image_gap_shapes)
DEFAULTS = {"digits": dict(edit=list(EDITS), n=450, intervals=50, repeats=3, checkpoints=11),
            "shapes": dict(edit=list(SHAPES_EDITS), n=300, intervals=33, repeats=1, checkpoints=6)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--edit", nargs="+", choices=EDITS,
                        help="edits (default: all; shapes: none drag, the only ones it has)")
    parser.add_argument("--n", type=positive_int, help="population (digits: 450 = all held-out; shapes: 300 scenes)")
    parser.add_argument("--t0", type=unit_interval, default=0.6, help="start level (0.6)")
    parser.add_argument("--intervals", type=positive_int,
                        help="grid intervals over [0, T]: steps = intervals * t0 (digits 50: 30 steps from t0 = 0.6; "
                             "shapes 33: 20 steps)")
    parser.add_argument("--repeats", type=positive_int,
                        help="seeds --seed, --seed + 1, ...: this many runs of every noise (digits 3, shapes 1)")
    parser.add_argument("--checkpoints", type=positive_int,
                        help="grid times where the statistics are measured, t0 and the data level included "
                             "(digits 11, shapes 6)")
    parser.set_defaults(workers=3, bootstrap=100)  # one process per default seed: on 2 cores three finish together


def resolved(args: argparse.Namespace) -> argparse.Namespace:
    """The arguments with the model's defaults (``DEFAULTS``) where none was given."""
    given = {k: v for k, v in vars(args).items() if v is not None}
    return argparse.Namespace(**DEFAULTS[args.model] | given)


def run(args: argparse.Namespace):
    from sdelab.cli.reproduce import Report
    from sdelab.reproduce.figures import gap_figure
    from sdelab.reproduce.image_gap import image_gap, markdown

    args = resolved(args)
    seeds = tuple(range(args.seed, args.seed + args.repeats))
    result = image_gap(args.n, args.t0, args.intervals, tuple(args.edit), seeds, args.checkpoints, args.bootstrap,
                       args.workers, progress=not args.json, world=args.model)
    s = result.settings
    print(f"reproduce image-gap --model {args.model}: {s['seconds']:.0f} s", file=sys.stderr)
    model, population, reference = (("digits DDPM", "held-out digits", "training digits") if args.model == "digits"
                                    else (f"shapes model {s['model']}", "scenes", "other generator scenes"))
    setup = (f"{model}, n={s['n']} {population}, t0={s['t0']}, {s['steps']} steps, seeds {s['seeds']}, "
             f"reference: {reference} noised to t, {s['bootstrap']} bootstrap resamples, {s['seconds']:.0f} s")
    return Report(result, markdown(result), lambda: {f"image_gap_{args.model}": gap_figure(result)}, setup)
