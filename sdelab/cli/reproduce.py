"""Reproduce the paper's claims on models that run here: python -m sdelab reproduce EXPERIMENT [...].

Every experiment shares the flags of ``common`` (``--model``, ``--seed``, ``--threads``, ``--json``, ``--figures``;
the runs over held-out digits also ``--workers`` and ``--bootstrap``), and one tail (``finish``) prints its markdown
tables or its JSON and saves its figures. Each experiment is a module with ``add_arguments(parser)`` and
``run(args) -> Report``; ``--help`` after its name lists its options.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass

from sdelab.cli.args import positive_int

# experiment name -> its command-line module (standard library only at import time)
EXPERIMENTS = {
    "drag": "sdelab.cli.reproduce_drag",
    "inpainting": "sdelab.cli.reproduce_inpainting",
    "i2i": "sdelab.cli.reproduce_i2i",
    "image-gap": "sdelab.cli.reproduce_image_gap",
    "quality": "sdelab.cli.reproduce_quality",
}


@dataclass
class Report:
    """What an experiment's ``run`` hands to the tail: its typed result, its markdown, and a function drawing its
    figures ({file stem: figure}) with the setup line of their footers."""

    result: object
    markdown: str
    figures: Callable[[], dict] = dict
    setup: str = ""


def common(runs: bool, models: tuple[str, ...] = ("digits",)) -> argparse.ArgumentParser:
    """The flags every experiment shares, with one meaning everywhere; ``runs``: also ``--workers`` and
    ``--bootstrap`` (experiments over many inputs with bootstrap intervals); ``models``: the models it runs on."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--model", default=models[0], choices=list(models),
                        help="the model (%(choices)s: shipped, run on a CPU; default %(default)s)")
    parent.add_argument("--seed", type=int, default=0, help="seed of every random draw (%(default)s)")
    parent.add_argument("--threads", type=positive_int, default=1,
                        help="torch threads of the main process (1: 16x16 images run fastest on one thread each)")
    parent.add_argument("--json", action="store_true", help="print the result as JSON instead of markdown tables")
    parent.add_argument("--figures", nargs="?", const="figures", metavar="DIR",
                        help="save the figures as DIR/<name>.png (DIR: figures)")
    if runs:
        parent.add_argument("--workers", type=positive_int, default=2,
                            help="worker processes, one thread each (%(default)s; the same table as 1)")
        parent.add_argument("--bootstrap", type=positive_int, default=200,
                            help="bootstrap resamples of every 95%% interval (%(default)s)")
    return parent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    sub = parser.add_subparsers(dest="experiment", required=True)
    for name, module_name in EXPERIMENTS.items():
        module = importlib.import_module(module_name)
        parent = common(module.RUNS, getattr(module, "MODELS", ("digits",)))
        experiment = sub.add_parser(name, help=module.__doc__.splitlines()[0], parents=[parent],
                                    description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(experiment)


def finish(args: argparse.Namespace, report: Report) -> int:
    """The one tail: the JSON (``--json``) or the markdown on stdout, the figures under ``--figures``."""
    from sdelab.plotting import save_figure
    from sdelab.reproduce.results import to_json

    print(json.dumps(to_json(report.result)) if args.json else report.markdown)
    if args.figures:
        import matplotlib.pyplot as plt

        for stem, fig in report.figures().items():
            print(f"saved {save_figure(fig, stem, report.setup, args.figures)}", file=sys.stderr)
            plt.close(fig)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the experiment; a ValueError (a bad combination of arguments, such as --n beyond the held-out digits)
    ends it with one line and exit status 2, as argparse does for a bad single argument."""
    import torch

    torch.set_num_threads(args.threads)
    try:
        report = importlib.import_module(EXPERIMENTS[args.experiment]).run(args)
    except ValueError as err:
        print(f"reproduce {args.experiment}: error: {err}", file=sys.stderr)
        return 2
    return finish(args, report)
