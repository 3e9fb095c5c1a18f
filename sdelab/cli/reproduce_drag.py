"""SDE-Drag against ODE-Drag on a shipped model: python -m sdelab reproduce drag.

    python -m sdelab reproduce drag --model digits [--n N] [--t0 T ...] [--json] [--save DIR] [--figures [DIR]]
    python -m sdelab reproduce drag --model shapes [--n N] [--t0 T ...] [--intervals K] [--json] [--figures [DIR]]

digits: SDE-Drag against ODE-Drag (and the input, and the bare copy-paste) on the 450 held-out digits, with
realism, faithfulness and drag-accuracy measures and 95% bootstrap intervals (sdelab.reproduce.drag).
Figures: drag_digits_tradeoff.png and drag_digits_examples.png.
shapes: the same against the true edited image on 300 procedural scenes, t0 0.2-0.8 on Stable Diffusion's schedule,
no mask or a band, the default or a covering copy radius (sdelab.reproduce.drag_shapes). Figures:
drag_shapes_tradeoff.png and drag_shapes_examples.png.
"""

from __future__ import annotations

import argparse

from sdelab.cli.args import positive_int, unit_interval

RUNS = True  # --workers and --bootstrap
MODELS = ("digits", "shapes")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=positive_int, help="inputs to edit (digits: 450 = all held-out; shapes: 300)")
    parser.add_argument("--t0", type=unit_interval, nargs="+", help="start levels (digits: 0.2 0.4 0.6; shapes: "
                                                                    "0.2 0.4 0.6 0.8)")
    parser.add_argument("--intervals", type=positive_int,
                        help="grid intervals over [0, T]: steps = intervals * t0 (digits: 100, the official UI's; "
                             "shapes: 20)")
    parser.add_argument("--save", help="digits: folder for drag_digits_t0=<t0>_mask=<mask>.npz with every output")
    parser.add_argument("--load", help="digits: a --save folder: re-measure its outputs instead of running the drags")


def run(args: argparse.Namespace):
    return (_shapes if args.model == "shapes" else _digits)(args)


def _shapes(args: argparse.Namespace):
    from sdelab.cli.reproduce import Report
    from sdelab.reproduce.drag_shapes import T0S, markdown, reproduce_drag_shapes
    from sdelab.reproduce.figures import shapes_drag_figure, shapes_examples_figure

    if args.save or args.load:
        raise ValueError("--save and --load are the digits run's; the shapes run keeps its examples in its result")
    result = reproduce_drag_shapes("shapes", args.n or 300, tuple(args.t0 or T0S), args.intervals or 20,
                                   seed=args.seed, reps=args.bootstrap, workers=args.workers)

    def figures() -> dict:
        return {"drag_shapes_tradeoff": shapes_drag_figure(result),
                "drag_shapes_examples": shapes_examples_figure(result.examples)}

    s = result.settings
    setup = (f"shapes model (SD schedule), n={s['n']} scenes, one drag each (3-8 px), steps = {s['intervals']} t0, "
             f"alpha={s['alpha']}, beta={s['beta']}, seed={s['seed']}")
    return Report(result, markdown(result), figures, setup)


def _digits(args: argparse.Namespace):
    import tempfile
    from pathlib import Path

    import numpy as np

    from sdelab.cli.reproduce import Report
    from sdelab.reproduce.drag import markdown, reproduce_drag
    from sdelab.reproduce.figures import drag_examples_figure, drag_tradeoff_figure

    if args.workers > 2:
        raise ValueError(f"workers must be 1 or 2 (one per mask setting), got {args.workers}")
    t0s = args.t0 or [0.2, 0.4, 0.6]
    save = args.save or args.load or (tempfile.mkdtemp() if args.figures else None)
    if save:
        Path(save).mkdir(parents=True, exist_ok=True)
    result = reproduce_drag(args.n or 450, tuple(t0s), args.intervals or 100, seed=args.seed, reps=args.bootstrap,
                            save=None if args.load else save, load=args.load, workers=args.workers,
                            progress=not args.json)

    def figures() -> dict:
        arrays = {t0: dict(np.load(f"{save}/drag_digits_t0={t0}_mask=none.npz")) for t0 in t0s}
        first = next(iter(arrays.values()))
        return {"drag_digits_tradeoff": drag_tradeoff_figure(result),
                "drag_digits_examples": drag_examples_figure(arrays, first["source"], first["target"])}

    s = result.settings
    setup = (f"digits DDPM, n={s['n']} held-out digits, one drag each (3-5 px), steps = {s['intervals']} t0, "
             f"alpha={s['alpha']}, beta={s['beta']}, r={s['radius']}, seed={s['seed']}")
    return Report(result, markdown(result), figures, setup)
