"""Run a reproduction's independent jobs in worker processes, one torch thread each (small models on a CPU)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

import torch


def _one_thread() -> None:
    torch.set_num_threads(1)


def process_map(fn: Callable, jobs: Sequence[tuple], workers: int) -> list:
    """[fn(*job) for job in jobs] in ``workers`` fresh processes (spawn: safe with torch's threads), taken in the
    jobs' order (put the longest first) and returned in it. fn must be importable; call it under
    ``if __name__ == "__main__":`` in a script. The results equal one process's when fn seeds its own randomness."""
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context, initializer=_one_thread) as pool:
        return list(pool.map(fn, *zip(*jobs, strict=True)))
