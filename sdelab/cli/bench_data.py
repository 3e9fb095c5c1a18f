"""Write a DragBench-S-layout set with ground truth: the shapes world's drags (sdelab.bench.shapes_set).

    python -m sdelab bench-data shapes --out DIR [--n 100] [--seed S]

One folder per sample with origin_image.png (a 32 x 32 scene), mask.png (the band around the drag, white =
editable), prompt.json (the dragged object's centre as source, its centre in the ground truth as target, the
prompt "") and gt_image.png (the ground truth: the scene with the object moved). The same seed writes the same
bytes. Then `python -m sdelab bench --data DIR --model shapes --out RUN` drags it and scores the outputs against
the ground truth. Bad input exits with status 2 and one line saying what is wrong.
"""

from __future__ import annotations

import argparse
import sys

SETS = ("shapes",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("set", choices=SETS, help="the data set to write (shapes)")
    parser.add_argument("--out", required=True, help="a new or empty folder (or one holding this same set)")
    parser.add_argument("--n", type=int, default=100, help="number of samples (100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the scenes and drags (0)")


def run(args: argparse.Namespace) -> int:
    from sdelab.bench.shapes_set import write_shapes_bench

    try:
        out = write_shapes_bench(args.out, n=args.n, seed=args.seed)
    except (ValueError, OSError) as err:
        print(f"bench-data: error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    print(f"{args.n} {args.set} samples (seed {args.seed}) with gt_image.png in {out}", file=sys.stderr)
    return 0
