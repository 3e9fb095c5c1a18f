"""``accelerate launch`` with 2 CPU processes shards DragBench and writes what one process writes."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sdelab.__main__ import main

pytestmark = pytest.mark.slow  # about 35 s on 2 shared cores: two fresh processes import torch and diffusers

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_write_the_same_files_as_one(tmp_path):
    bench = ["bench", "--data", str(FIXTURES / "dragbench_s"), "--sampler", "cycle-sde", "--model", "tiny",
             "--steps", "3", "--lora-steps", "0", "--device", "cpu"]
    # accelerate's --cpu flag starts a single process; --multi_gpu starts K processes with torchrun, and
    # `--device cpu` makes them a gloo process group on the CPU
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(free_port()), "-m", "sdelab"]
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([*launch, *bench, "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "3 to run on 2 process(es)" in done.stderr
    assert main([*bench, "--out", str(tmp_path / "one")]) == 0  # one process (this one, one thread)

    one, two = tmp_path / "one", tmp_path / "two"
    images = sorted(p.relative_to(one) for p in one.rglob("*.png"))
    assert len(images) == 3 and images == sorted(p.relative_to(two) for p in two.rglob("*.png"))
    assert all((one / p).read_bytes() == (two / p).read_bytes() for p in images)

    def table(out: Path):  # everything but the wall-clock seconds
        results = json.loads((out / "results.json").read_text())
        rows = [{k: v for k, v in r.items() if k != "seconds"} for r in results["rows"]]
        lines = [line.split(",") for line in (out / "results.csv").read_text().splitlines()]
        col = lines[0].index("seconds")
        return results["settings"], rows, [line[:col] + line[col + 1:] for line in lines]

    assert table(one) == table(two)
