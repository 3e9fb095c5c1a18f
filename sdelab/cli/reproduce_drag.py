"""SDE-Drag against ODE-Drag on the digits model: python -m sdelab reproduce drag.

    python -m sdelab reproduce drag --model digits [--n N] [--t0 T ...] [--json] [--save DIR] [--figures]

SDE-Drag against ODE-Drag (and the input, and the bare copy-paste) on the 450 held-out digits, with
realism, faithfulness and drag-accuracy measures and 95% bootstrap intervals (sdelab.reproduce.drag).
"""

from __future__ import annotations

import argparse
import json
import sys

from sdelab.cli.args import positive_int, unit_interval


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--model", default="digits", choices=["digits"], help="the model (digits: runs on a CPU)")
    parser.add_argument("--n", type=positive_int, default=450, help="held-out digits to edit (450 = all)")
    parser.add_argument("--t0", type=unit_interval, nargs="+", default=[0.2, 0.4, 0.6], help="start levels")
    parser.add_argument("--intervals", type=positive_int, default=100,
                        help="grid intervals over [0, T]: steps = intervals * t0 (100, the official UI's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the drags and the noise (0)")
    parser.add_argument("--bootstrap", type=positive_int, default=200, help="bootstrap resamples (200)")
    parser.add_argument("--workers", type=int, choices=[1, 2], default=2,
                        help="processes: 2 runs the two mask settings side by side, one thread each (2)")
    parser.add_argument("--json", action="store_true", help='print {"rows": [...], "settings": {...}}')
    parser.add_argument("--save", help="folder for drag_digits_t0=<t0>_mask=<mask>.npz with every output")
    parser.add_argument("--load", help="a --save folder: re-measure its outputs instead of running the drags")
    parser.add_argument("--figures", action="store_true",
                        help="save figures/drag_digits_tradeoff.png and figures/drag_digits_examples.png")


def run(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    import numpy as np
    import torch

    from sdelab.plotting import save_figure
    from sdelab.reproduce.drag import examples_figure, markdown, reproduce_drag, tradeoff_figure

    torch.set_num_threads(1)  # batches of 16x16 images: one thread is faster than two on two shared cores
    save = args.save or args.load or (tempfile.mkdtemp() if args.figures else None)
    if save:
        Path(save).mkdir(parents=True, exist_ok=True)
    result = reproduce_drag(args.n, tuple(args.t0), args.intervals, seed=args.seed, reps=args.bootstrap,
                            save=None if args.load else save, load=args.load, workers=args.workers,
                            progress=not args.json)
    print(json.dumps(result) if args.json else markdown(result))
    if args.figures:
        s = result["settings"]
        setup = (f"digits DDPM, n={s['n']} held-out digits, one drag each (3-5 px), steps = {s['intervals']} t0, "
                 f"alpha={s['alpha']}, beta={s['beta']}, r={s['radius']}, seed={s['seed']}")
        save_figure(tradeoff_figure(result), "drag_digits_tradeoff", setup=setup)
        arrays = {t0: dict(np.load(f"{save}/drag_digits_t0={t0}_mask=none.npz")) for t0 in args.t0}
        first = next(iter(arrays.values()))
        save_figure(examples_figure(arrays, first["source"], first["target"]), "drag_digits_examples", setup=setup)
        print("figures saved", file=sys.stderr)
    return 0
