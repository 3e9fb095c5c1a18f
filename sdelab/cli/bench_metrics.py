"""Recompute DragBench's metrics for existing outputs of any method (this package's, the official codes', others').

    python -m sdelab bench-metrics --data DIR --outputs DIR [--model ID|PATH|tiny|shapes] [--seed S] [--limit K]
        [--out DIR]

For each sample of the benchmark in --data, the output is OUTPUTS/<sample id>.png, OUTPUTS/<sample id>/
dragged_image.png (DragDiffusion's evaluation layout) or OUTPUTS/<folder name>.png (SDE-Drag's); one of
another size is resized to the input's. Measures: Mean Distance (DIFT matching on --model's UNet, up-block 1,
t = 261; DragDiffusion used SD 2.1: pass stabilityai/stable-diffusion-2-1 or a local copy to match it),
1 - LPIPS (with the optional lpips package), PSNR and SSIM outside the mask. Writes OUT/metrics.csv and
OUT/metrics.json (OUT defaults to --outputs) and prints the summary. --model tiny is a random-weight SD:
its Mean Distance means nothing. Where a sample has gt_image.png (the shapes set of `bench-data`), the
ground-truth metrics are added (drag error, success, validity, PSNR to the truth) with the Spearman rank
correlation of Mean Distance and the true drag error; score such a set with --model shapes.
"""

from __future__ import annotations

import argparse
import sys

from sdelab.cli.args import positive_int

SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--data", required=True, help="the DragBench folder the outputs were made from")
    parser.add_argument("--outputs", required=True, help="folder of output images")
    parser.add_argument("--model", default=SD15,
                        help=f"feature model: hub id, local folder, 'tiny' or a shipped pixel model ({SD15})")
    parser.add_argument("--seed", type=int, default=1234, help="base seed of the feature noise (1234)")
    parser.add_argument("--limit", type=positive_int, help="only the first K samples (sorted by id)")
    parser.add_argument("--out", help="folder for metrics.csv and metrics.json (default: --outputs)")


def run(args: argparse.Namespace) -> int:
    from sdelab.bench.data import load_dragbench
    from sdelab.bench.runner import markdown, measure_outputs
    from sdelab.cli.models import load_model

    try:
        bench = load_dragbench(args.data)
        for sid, reason in bench.skipped:
            print(f"skipped {sid}: {reason}", file=sys.stderr)
        model = load_model(args.model)
        if getattr(model, "random_weights", False):
            print(f"{model.name} has RANDOM weights: its Mean Distance means nothing", file=sys.stderr)
        results = measure_outputs(model, bench, args.outputs, seed=args.seed, limit=args.limit, out=args.out,
                                  log=lambda m: print(m, file=sys.stderr))
    except (ValueError, OSError) as err:
        print(f"bench-metrics: error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    print(markdown(results))
    return 0
