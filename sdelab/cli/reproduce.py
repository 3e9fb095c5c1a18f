"""Reproduce the paper's claims on models that run here: python -m sdelab reproduce EXPERIMENT [...].

Each experiment is a module with ``add_arguments(parser)`` and ``run(args)``; ``--help`` after its name
lists its options.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# experiment name -> its command-line module (standard library only at import time)
EXPERIMENTS = {
    "drag": "sdelab.cli.reproduce_drag",
    "inpainting": "sdelab.cli.reproduce_inpainting",
    "i2i": "sdelab.cli.reproduce_i2i",
    "image-gap": "sdelab.cli.reproduce_image_gap",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    sub = parser.add_subparsers(dest="experiment", required=True)
    for name, module_name in EXPERIMENTS.items():
        module = importlib.import_module(module_name)
        module.add_arguments(sub.add_parser(name, help=module.__doc__.splitlines()[0]))


def run(args: argparse.Namespace) -> int:
    """Run the experiment; a ValueError (a bad combination of arguments, such as --n beyond the held-out digits)
    ends it with one line and exit status 2, as argparse does for a bad single argument."""
    try:
        return importlib.import_module(EXPERIMENTS[args.experiment]).run(args)
    except ValueError as err:
        print(f"reproduce {args.experiment}: error: {err}", file=sys.stderr)
        return 2
