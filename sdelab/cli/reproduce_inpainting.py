"""SDE against ODE inpainting on the digits model: python -m sdelab reproduce inpainting.

    python -m sdelab reproduce inpainting --model digits [--n N] [--steps K ...] [--workers W] [--json] [--figures]

The 450 held-out digits with small (0.2) and large (0.4) stroke masks, filled by DDIM (ODE) and DDPM (SDE) at
25, 50 and 100 steps; Frechet distances to the training digits, the judge's agreement with the input, 95%
bootstrap intervals, the paper's FID beside them (sdelab.reproduce.inpainting).
"""

from __future__ import annotations

import argparse
import json
import sys

from sdelab.cli.args import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--model", default="digits", choices=["digits"], help="the model (digits: runs on a CPU)")
    parser.add_argument("--n", type=positive_int, default=450, help="held-out digits to inpaint (450 = all)")
    parser.add_argument("--steps", type=positive_int, nargs="+", default=[25, 50, 100], help="step counts")
    parser.add_argument("--seed", type=int, default=0, help="seed of the masks and the noise (0)")
    parser.add_argument("--bootstrap", type=positive_int, default=200, help="bootstrap resamples (200)")
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="torch threads with --workers 1 (1: faster on two cores shared with other jobs)")
    parser.add_argument("--workers", type=positive_int, default=2,
                        help="processes for the sampler and step-count runs, one thread each (2: one per core; the "
                             "same table as 1)")
    parser.add_argument("--json", action="store_true", help='print {"rows": [...], "settings": {...}}')
    parser.add_argument("--figures", action="store_true",
                        help="save figures/inpainting_digits_fd.png and figures/inpainting_digits_examples.png")


def run(args: argparse.Namespace) -> int:
    import torch

    from sdelab.plotting import save_figure
    from sdelab.reproduce.inpainting import examples_figure, fd_figure, markdown, reproduce_inpainting

    torch.set_num_threads(args.threads)
    result = reproduce_inpainting(args.n, tuple(args.steps), seed=args.seed, reps=args.bootstrap,
                                  workers=args.workers, progress=not args.json, keep=8 if args.figures else 0)
    examples = result.pop("examples", None)
    print(json.dumps(result) if args.json else markdown(result))
    if args.figures:
        s = result["settings"]
        setup = (f"digits DDPM, n={s['n']} held-out digits, stroke masks 0.2 / 0.4, steps={s['steps']}, "
                 f"seed={s['seed']}, {s['seconds']:.0f} s")
        save_figure(fd_figure(result), "inpainting_digits_fd", setup=setup)
        save_figure(examples_figure(examples, s["steps"][-1]), "inpainting_digits_examples", setup=setup)
        print("figures saved", file=sys.stderr)
    return 0
