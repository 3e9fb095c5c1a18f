"""The DragBench runner on the fixtures with the tiny model: outputs and tables, per-sample seeds, resuming after a
kill in the middle of a sample, failures that do not stop the run, and the two command-line front ends."""

import csv
import json
import os
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import DEVICE
from PIL import Image

import sdelab.bench.files as bench_files
import sdelab.bench.runner as runner
from sdelab.__main__ import main
from sdelab.bench.data import DragBench, load_dragbench
from sdelab.bench.runner import COLUMNS, measure_outputs, run_bench, sample_seed
from sdelab.models import tiny_stable_diffusion

FIXTURES = Path(__file__).parent / "fixtures"
FAST = dict(sampler="cycle-sde", steps=3, lora_steps=0, seed=1234, progress=False)


@pytest.fixture(scope="module")
def tiny():
    return tiny_stable_diffusion(device=DEVICE)


@pytest.fixture(scope="module")
def bench_s():
    return load_dragbench(FIXTURES / "dragbench_s")


@pytest.fixture(scope="module")
def reference(tiny, bench_s, tmp_path_factory):
    """An uninterrupted run over the three DragBench-S fixtures: (out folder, results, log lines)."""
    out, log = tmp_path_factory.mktemp("reference"), []
    return out, run_bench(tiny, bench_s, out, log=log.append, **FAST), log


def files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.png"))}


def test_outputs_at_the_input_size_and_one_table_in_two_formats(reference, bench_s):
    out, results, log = reference
    assert sorted(files(out)) == [f"{s.id}.png" for s in bench_s.samples]
    for s in bench_s.samples:
        with Image.open(out / f"{s.id}.png") as im:
            assert im.size == s.size[::-1] and im.mode == "RGB"  # 80x60 and 48x72 inputs drag at 64x48 and 40x64
    rows = results["rows"]
    assert [r["id"] for r in rows] == [s.id for s in bench_s.samples]
    assert [(r["model_height"], r["model_width"]) for r in rows] == [(48, 64), (64, 40), (64, 64)]
    assert all(r["seed"] == zlib.crc32(f"1234/{r['id']}".encode()) for r in rows)
    assert all(r["unet_calls"] == 3 * r["substeps"] for r in rows)
    with open(out / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == list(COLUMNS)
    for line, row in zip(table, rows, strict=True):
        assert line == {c: "" if row[c] is None else str(row[c]) for c in COLUMNS}
    saved = json.loads((out / "results.json").read_text())
    assert saved["rows"] == rows and saved["settings"]["editor"] == "SDE-Drag" and saved["skipped"] == []
    masked = [r for r in rows if r["id"] != "animals/chelsea_eye"]
    assert rows[0]["psnr_outside_mask"] is None and all(r["psnr_outside_mask"] > 0 for r in masked)  # no mask.png
    points = [d for r in rows for d in r["distances"]]
    assert results["summary"]["mean_distance"] == pytest.approx(np.mean(points))  # over points, as DragDiffusion
    assert sum("left empty" in line for line in log) == (1 if rows[0]["image_fidelity"] is None else 0)


def test_a_sample_does_not_depend_on_which_samples_run_or_their_order(tiny, bench_s, reference, tmp_path):
    subset = DragBench(bench_s.root, bench_s.layout, bench_s.samples[::-2])  # the last sample first, one dropped
    run_bench(tiny, subset, tmp_path, log=lambda m: None, **FAST)
    assert files(tmp_path) == {k: v for k, v in files(reference[0]).items() if k != "objects/coffee_cup.png"}
    assert sample_seed(1234, "a") != sample_seed(1234, "b") != sample_seed(1235, "b")


class Killed(BaseException):
    """Stands for the process being killed (not an Exception: nothing in the runner may catch it)."""


@pytest.mark.parametrize("where", ["in the drag", "writing the record"])
def test_resume_after_a_kill_in_the_middle_of_a_sample_redoes_only_that_sample(tiny, bench_s, reference, tmp_path,
                                                                            monkeypatch, where):
    last = bench_s.samples[-1].id
    drag, replace = runner.drag, os.replace

    def killing_drag(*args, **kwargs):
        if args[6].seed == sample_seed(1234, last):  # args[6]: the DragSettings
            raise Killed
        return drag(*args, **kwargs)

    def killing_replace(src, dst):
        if str(dst).endswith(f"records/{last}.json"):
            raise Killed  # the image is written, its temporary record file too, the rename never happens
        return replace(src, dst)

    if where == "in the drag":
        monkeypatch.setattr(runner, "drag", killing_drag)
    else:
        monkeypatch.setattr(bench_files.os, "replace", killing_replace)
    with pytest.raises(Killed):
        run_bench(tiny, bench_s, tmp_path, log=lambda m: None, **FAST)
    monkeypatch.undo()
    assert not (tmp_path / "results.json").exists() and not (tmp_path / "records" / f"{last}.json").exists()
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()}

    calls = []
    monkeypatch.setattr(runner, "drag", lambda *a, **k: calls.append(a[6].seed) or drag(*a, **k))
    results = run_bench(tiny, bench_s, tmp_path, log=lambda m: None, **FAST)
    assert calls == [sample_seed(1234, last)]  # only the killed sample runs again
    for path, (data, mtime) in before.items():
        if path.exists() and not path.name.endswith(".tmp") and last not in path.as_posix():
            assert (path.read_bytes(), path.stat().st_mtime_ns) == (data, mtime)  # finished samples untouched
    assert not list(tmp_path.rglob("*.tmp"))  # the half-written temporary file is gone
    assert files(tmp_path) == files(reference[0])
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(results["rows"]) == strip(reference[1]["rows"])


def test_resuming_with_other_settings_is_refused(tiny, bench_s, tmp_path):
    run_bench(tiny, bench_s, tmp_path, limit=1, log=lambda m: None, **FAST)
    with pytest.raises(ValueError, match=r"holds a run with other settings \(steps, t0\)"):
        run_bench(tiny, bench_s, tmp_path, log=lambda m: None, **FAST | dict(steps=4, t0=0.5))
    results = run_bench(tiny, bench_s, tmp_path, limit=2, log=lambda m: None, **FAST)  # a larger limit resumes
    assert len(results["rows"]) == 2


def test_a_failing_sample_is_reported_and_the_run_goes_on(tiny, bench_s, tmp_path, monkeypatch):
    bad, drag = bench_s.samples[0].id, runner.drag

    def drag_failing_once(*args, **kwargs):
        if args[6].seed == sample_seed(1234, bad):  # args[6]: the DragSettings
            raise ValueError("radius must be an integer >= 1")
        return drag(*args, **kwargs)

    monkeypatch.setattr(runner, "drag", drag_failing_once)
    log = []
    results = run_bench(tiny, bench_s, tmp_path, log=log.append, **FAST)
    assert [r["id"] for r in results["rows"]] == [s.id for s in bench_s.samples[1:]]
    assert results["failed"] == [dict(id=bad, reason="radius must be an integer >= 1")]
    assert f"failed {bad}: radius must be an integer >= 1" in log


def test_skipped_samples_are_listed_in_the_results(tiny, tmp_path):
    shutil.copytree(FIXTURES / "dragbench_d", tmp_path / "d")
    (tmp_path / "d" / "animals" / "cat_eyes" / "meta_data.pkl").write_bytes(b"not a pickle")
    log = []
    results = run_bench(tiny, load_dragbench(tmp_path / "d"), tmp_path / "out", limit=1, log=log.append, **FAST)
    assert [s["id"] for s in results["skipped"]] == ["animals/cat_eyes"]
    assert any(line.startswith("skipped animals/cat_eyes: unreadable meta_data.pkl") for line in log)
    assert [r["id"] for r in results["rows"]] == ["human_upper_body/camera_man"]


def test_bench_metrics_recomputes_the_runs_metrics_in_every_output_layout(tiny, bench_s, reference, tmp_path):
    out, results, _ = reference
    again = measure_outputs(tiny, bench_s, out, seed=1234, out=tmp_path / "same", progress=False, log=lambda m: None)
    for new, old in zip(again["rows"], results["rows"], strict=True):
        assert new["output"] == f"{old['id']}.png"
        assert all(new[k] == old[k] for k in ("distances", *runner.METRICS) if old[k] is not None)
    # DragDiffusion's layout (<id>/dragged_image.png) at another size, SDE-Drag's flat layout, and one missing
    other = tmp_path / "other"
    first, second, third = bench_s.samples
    (other / first.id).mkdir(parents=True)
    Image.open(out / f"{first.id}.png").resize((128, 96)).save(other / first.id / "dragged_image.png")
    shutil.copy(out / f"{second.id}.png", other / "coffee_cup.png")
    log = []
    measured = measure_outputs(tiny, bench_s, other, progress=False, log=log.append)
    assert [r["output"] for r in measured["rows"]] == [f"{first.id}/dragged_image.png", "coffee_cup.png"]
    assert measured["failed"] == [dict(id=third.id, reason="no output image")]
    assert (other / "metrics.csv").read_text().splitlines()[0].startswith("id,output,seed")
    assert f"no metrics for {third.id}: no output image" in log


def test_command_line_runs_and_refuses_bad_input_with_status_2(tmp_path, capsys):
    assert main(["bench", "--data", str(tmp_path / "none"), "--sampler", "cycle-sde", "--model", "tiny",
                 "--out", str(tmp_path / "out"), "--device", "cpu"]) == 2
    assert "bench: error: data must be a DragBench folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--data", "x", "--sampler", "sde", "--out", "y"])
    assert exit_.value.code == 2
    args = ["--data", str(FIXTURES / "dragbench_d"), "--model", "tiny", "--limit", "1"]
    assert main(["bench", *args, "--sampler", "ode", "--steps", "2", "--lora-steps", "0", "--device", "cpu",
                 "--out", str(tmp_path / "ode")]) == 0
    printed = capsys.readouterr()
    assert "| ODE-Drag | 1 | 2 |" in printed.out and "RANDOM weights" in printed.err
    assert main(["bench-metrics", *args, "--outputs", str(tmp_path / "ode")]) == 0
    assert "| outputs | 1 | 2 |" in capsys.readouterr().out
    assert main(["bench-metrics", *args, "--outputs", str(tmp_path / "none")]) == 2
