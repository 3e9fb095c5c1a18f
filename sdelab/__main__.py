"""The sdelab command line: ``python -m sdelab COMMAND ...``; ``--help`` lists the commands."""

from __future__ import annotations

import argparse
import importlib

# command name -> module with ``add_arguments(parser)`` and ``run(args)``; these front ends import only the
# standard library at module level (torch and the models load in ``run``), so ``--help`` answers at once
COMMANDS = {
    "toy-kl": "sdelab.cli.toy_kl",
    "drag": "sdelab.cli.drag",
    "reproduce": "sdelab.cli.reproduce",
    "bench": "sdelab.cli.bench",
    "bench-metrics": "sdelab.cli.bench_metrics",
    "bench-data": "sdelab.cli.bench_data",
    "train": "sdelab.cli.train",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sdelab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        modules[name] = module
        module.add_arguments(sub.add_parser(name, help=module.__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    return modules[args.command].run(args) or 0


if __name__ == "__main__":
    raise SystemExit(main())
