"""SDE-Drag against ODE-Drag on the digits model: python -m sdelab reproduce drag.

    python -m sdelab reproduce drag --model digits [--n N] [--t0 T ...] [--json] [--save DIR] [--figures [DIR]]

SDE-Drag against ODE-Drag (and the input, and the bare copy-paste) on the 450 held-out digits, with
realism, faithfulness and drag-accuracy measures and 95% bootstrap intervals (sdelab.reproduce.drag).
Figures: drag_digits_tradeoff.png and drag_digits_examples.png.
"""

from __future__ import annotations

import argparse

from sdelab.cli.args import positive_int, unit_interval

RUNS = True  # --workers and --bootstrap


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=positive_int, default=450, help="held-out digits to edit (450 = all)")
    parser.add_argument("--t0", type=unit_interval, nargs="+", default=[0.2, 0.4, 0.6], help="start levels")
    parser.add_argument("--intervals", type=positive_int, default=100,
                        help="grid intervals over [0, T]: steps = intervals * t0 (100, the official UI's)")
    parser.add_argument("--save", help="folder for drag_digits_t0=<t0>_mask=<mask>.npz with every output")
    parser.add_argument("--load", help="a --save folder: re-measure its outputs instead of running the drags")


def run(args: argparse.Namespace):
    import tempfile
    from pathlib import Path

    import numpy as np

    from sdelab.cli.reproduce import Report
    from sdelab.reproduce.drag import markdown, reproduce_drag
    from sdelab.reproduce.figures import drag_examples_figure, drag_tradeoff_figure

    if args.workers > 2:
        raise ValueError(f"workers must be 1 or 2 (one per mask setting), got {args.workers}")
    save = args.save or args.load or (tempfile.mkdtemp() if args.figures else None)
    if save:
        Path(save).mkdir(parents=True, exist_ok=True)
    result = reproduce_drag(args.n, tuple(args.t0), args.intervals, seed=args.seed, reps=args.bootstrap,
                            save=None if args.load else save, load=args.load, workers=args.workers,
                            progress=not args.json)

    def figures() -> dict:
        arrays = {t0: dict(np.load(f"{save}/drag_digits_t0={t0}_mask=none.npz")) for t0 in args.t0}
        first = next(iter(arrays.values()))
        return {"drag_digits_tradeoff": drag_tradeoff_figure(result),
                "drag_digits_examples": drag_examples_figure(arrays, first["source"], first["target"])}

    s = result.settings
    setup = (f"digits DDPM, n={s['n']} held-out digits, one drag each (3-5 px), steps = {s['intervals']} t0, "
             f"alpha={s['alpha']}, beta={s['beta']}, r={s['radius']}, seed={s['seed']}")
    return Report(result, markdown(result), figures, setup)
