"""Toy timings: the exact 1-D KL curve (120 steps, 2000-point grid) for ODE and SDE, and the CI-mode run time of
the toy notebooks (notebooks/0[1-4]_*.ipynb, CI=1, executed with nbclient). Prints two tables.

    .venv/bin/python benchmarks/toy.py [--repeats 3] [--no-notebooks]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import nbformat
import torch
from nbclient import NotebookClient

from sdelab.plotting import machine
from sdelab.schedules import VPSchedule, time_grid
from sdelab.toy.exact import exact_chain, fokker_planck, x_grid
from sdelab.toy.gmm import bimodal_1d
from sdelab.toy.priors import mismatched_prior

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def best_of(repeats: int, fn) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds of this process over ``repeats`` calls (CPU time is what a busy
    shared machine does not inflate)."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return min(wall), min(cpu)


def exact_table(repeats: int) -> None:
    q0, prior = bimodal_1d(), mismatched_prior("shifted")
    sd, lin = VPSchedule.stable_diffusion(), VPSchedule.linear()
    grid, x = time_grid(sd, 120, 0.6), x_grid(2000)
    rows = [(f"exact chain, {name}, SD schedule, 120 steps, 2000 points",
             best_of(repeats, lambda eta=eta: exact_chain(q0, prior, sd, grid, eta, x=x)))
            for name, eta in [("ODE (eta=0)", 0.0), ("SDE (eta=1)", 1.0)]]
    times = time_grid(lin, 200, 0.6).numpy()
    rows += [(f"Fokker-Planck, {name}, linear VP, 600 points",
              best_of(repeats, lambda sde=sde: fokker_planck(q0, prior, lin, times, sde=sde, x=x_grid(600))))
             for name, sde in [("ODE", False), ("SDE", True)]]
    print(f"\nExact 1-D KL curves (best of {repeats}; target < 1 s for the chains)")
    print(f"{'what':62s} {'wall s':>8s} {'CPU s':>8s}")
    for what, (wall, cpu) in rows:
        print(f"{what:62s} {wall:8.3f} {cpu:8.3f}")


def notebook_table() -> None:
    paths = sorted(NOTEBOOKS.glob("0[1-4]_*.ipynb"))
    print("\nNotebooks at smoke size (CI=1), run by nbclient from notebooks/ (wall clock, kernel start included)")
    print(f"{'notebook':45s} {'wall s':>8s}")
    os.environ["CI"] = "1"  # the kernels inherit it
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        client = NotebookClient(nb, timeout=600, resources={"metadata": {"path": f"{NOTEBOOKS}"}})
        client.execute()
        print(f"{path.name:45s} {time.perf_counter() - start:8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats, the best is reported (3)")
    parser.add_argument("--no-notebooks", action="store_true", help="skip the notebook table")
    args = parser.parse_args()
    print(f"{machine()}, torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
          f"load average {os.getloadavg()[0]:.1f}")
    exact_table(args.repeats)
    if not args.no_notebooks:
        notebook_table()


if __name__ == "__main__":
    main()
