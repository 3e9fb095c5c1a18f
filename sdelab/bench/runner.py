"""Run SDE-Drag or ODE-Drag over a DragBench folder: resumable, atomic, sharded across processes with accelerate.

Layout of the output folder OUT:
- ``OUT/<sample id>.png``: the output at the input's size (the drag runs at the model's native size, the
  longer side scaled to it, and comes back bicubic: ``sdelab.edit.drag``'s ``size``);
- ``OUT/records/<sample id>.json``: the sample's row (seed, seconds, UNet calls, metrics) and its drag settings,
  written after the image: a sample is finished when its record exists;
- ``OUT/settings.json``: the run's settings; a later run into OUT must have the same (it resumes that run);
- ``OUT/results.json`` and ``OUT/results.csv``: every finished sample's row, sorted by id, and a summary; for a
  set with ground truth (``gt_image.png``) the rows add ``sdelab.bench.truth``'s measures and the summary how well
  Mean Distance agrees with the true drag error.

Every file is written to a temporary name and renamed (``atomic_write``), so a run killed at any point leaves
only whole files, and the next run redoes just the unfinished samples. Each sample's seed comes from the base
seed and its id (``sample_seed``), so its output does not depend on which samples run, in what order or in
which process: K processes (``accelerate launch --num_processes K``) each take a share of the unfinished
samples (``PartialState.split_between_processes``) and write the same files one process would.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
import zlib
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from sdelab.bench.data import DragBench, DragSample
from sdelab.bench.files import atomic_write, json_bytes, png_bytes
from sdelab.bench.metrics import (
    DIFT_ENSEMBLE,
    DIFT_T,
    DIFT_UP_BLOCK,
    ImageFidelity,
    mean_distance,
    native_size,
    psnr_outside,
    ssim_outside,
)
from sdelab.bench.truth import TRUTH_KEYS, agreement, truth_metrics
from sdelab.edit.drag import EDITORS, DragSettings, drag, drag_sampler
from sdelab.models.base import DiffusionModel
from sdelab.models.images import working_size

COLUMNS = ("id", "seed", "seconds", "unet_calls", "substeps", "width", "height", "model_width", "model_height",
           "points", "mean_distance", "image_fidelity", "psnr_outside_mask", "ssim_outside_mask", *TRUTH_KEYS)
METRICS = ("mean_distance", "image_fidelity", "psnr_outside_mask", "ssim_outside_mask")


def sample_seed(base_seed: int, sample_id: str) -> int:
    """The seed of one sample: CRC-32 of "<base seed>/<sample id>" (stable across runs, machines and Python)."""
    return zlib.crc32(f"{base_seed}/{sample_id}".encode())


def output_path(out: Path, sample_id: str) -> Path:
    return out / f"{sample_id}.png"


def record_path(out: Path, sample_id: str) -> Path:
    return out / "records" / f"{sample_id}.json"


def sample_metrics(model: DiffusionModel, sample: DragSample, source: Image.Image, output: Image.Image,
                   size: tuple[int, int], seed: int, fidelity: ImageFidelity) -> dict:
    """Every measure of one output (at the input's size): the per-point distances, the row's four metrics and the
    ground-truth measures (``sdelab.bench.truth``; None where the sample has no true edited image)."""
    distances = mean_distance(model, source, output, sample.sources, sample.targets, sample.prompt, size, seed)
    truth = sample.truth()
    gt = dict.fromkeys(TRUTH_KEYS) if truth is None else truth_metrics(output, truth, sample.targets)
    return dict(distances=distances, mean_distance=sum(distances) / len(distances),
                image_fidelity=fidelity(source, output), psnr_outside_mask=psnr_outside(source, output, sample.mask),
                ssim_outside_mask=ssim_outside(source, output, sample.mask), **gt)


def run_sample(model: DiffusionModel, sample: DragSample, settings: dict, fidelity: ImageFidelity):
    """Drag one sample at the model's native size; returns (output image at the input's size, its record)."""
    start = time.perf_counter()
    seed = sample_seed(settings["seed"], sample.id)
    mask = None if sample.mask is None else Image.fromarray(sample.mask.astype("uint8") * 255)
    drag_settings = DragSettings(sampler=settings["sampler"], t0=settings["t0"], steps=settings["steps"],
                                 lora_steps=settings["lora_steps"], size=native_size(model), seed=seed)
    result = drag(model, sample.image(), sample.sources, sample.targets, mask, sample.prompt, drag_settings,
                  frames=False, progress=False)
    h, w = sample.size
    size = tuple(result.settings["working_size"])
    metrics = sample_metrics(model, sample, sample.image(), result.image, size, seed, fidelity)
    row = dict(id=sample.id, seed=seed, unet_calls=result.unet_calls, substeps=result.settings["m"], width=w,
               height=h, model_width=size[1], model_height=size[0], points=len(sample.sources), **metrics)
    row["seconds"] = round(time.perf_counter() - start, 3)
    return result.image, dict(row=row, drag=result.settings)


def _check_settings(out: Path, settings: dict, state) -> None:
    """Write OUT/settings.json (main process) or check a previous run's against these settings."""
    path = out / "settings.json"
    if path.exists():
        previous = json.loads(path.read_text())
        if previous != settings:
            changed = sorted(k for k in settings.keys() | previous.keys() if previous.get(k) != settings.get(k))
            raise ValueError(f"out {str(out)!r} holds a run with other settings ({', '.join(changed)}): resume it "
                             f"with the same settings or choose another folder")
    elif state.is_main_process:
        atomic_write(path, json_bytes(settings))


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def summary(rows: list[dict]) -> dict:
    """Benchmark-level numbers: Mean Distance over all points (DragDiffusion's), the other metrics over samples.

    With ground truth: the drag error's mean over the samples that have one, "objects_lost" (samples whose dragged
    object the output lacks), success and validity as fractions of the samples with ground truth, the mean PSNR to
    the truth, and "agreement": the Spearman correlation of per-sample Mean Distance with the drag error.
    """
    distances = [d for r in rows for d in r["distances"]]
    out = {"samples": len(rows), "points": len(distances),
           "mean_distance": sum(distances) / len(distances) if distances else None}
    for key in METRICS[1:]:
        out[key] = _mean(r[key] for r in rows)
    judged = [r for r in rows if r.get("success") is not None]  # samples with a shapes ground truth
    out |= dict(truth_samples=len(judged), drag_error=_mean(r["drag_error"] for r in judged),
                objects_lost=sum(r["drag_error"] is None for r in judged),
                success=_mean(float(r["success"]) for r in judged), valid=_mean(float(r["valid"]) for r in judged),
                psnr_truth=_mean(r.get("psnr_truth") for r in rows),
                agreement=agreement([r["mean_distance"] for r in judged], [r["drag_error"] for r in judged]))
    out["seconds_per_sample"] = sum(r["seconds"] for r in rows) / len(rows) if rows else None
    return out


def write_tables(out: Path, settings: dict, rows: list[dict], skipped: list, failed: list, name: str = "results",
                 columns: tuple[str, ...] = COLUMNS) -> dict:
    """OUT/<name>.json (settings, rows, summary, skipped and failed samples) and OUT/<name>.csv (the rows)."""
    results = dict(settings=settings, summary=summary(rows), rows=rows,
                   skipped=[dict(id=i, reason=r) for i, r in skipped], failed=[dict(id=i, reason=r) for i, r in failed])
    atomic_write(out / f"{name}.json", json_bytes(results))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    atomic_write(out / f"{name}.csv", text.getvalue().encode())
    return results


def run_bench(model: DiffusionModel, bench: DragBench, out, *, sampler: str = "cycle-sde", steps: int = 120,
              t0: float = 0.6, lora_steps: int = 100, seed: int = 1234, limit: int | None = None, state=None,
              progress: bool = True, log=print) -> dict | None:
    """SDE-Drag (sampler "cycle-sde") or ODE-Drag ("ode") on the first ``limit`` samples of ``bench`` (all: None)
    into OUT.

    Finished samples (with a record) are skipped; the rest are shared among the processes of ``state`` (an
    accelerate PartialState; None: one process). Each output is measured at once (``sample_metrics``, the drag
    model's own UNet as the feature model). A ValueError from one sample is recorded as its failure; the run
    goes on. Returns the results (on the main process; None on the others) after every process is done.
    """
    from accelerate import PartialState

    chosen = drag_sampler(sampler)
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be an integer >= 1 or None, got {limit!r}")
    state = state or PartialState()
    out = Path(out)
    settings = dict(benchmark=bench.layout, sampler=chosen.name, editor=EDITORS[chosen.name], model=model.name,
                    steps=steps, t0=t0,
                    lora_steps=lora_steps, seed=seed, native_size=native_size(model),
                    dtype=str(model.dtype).removeprefix("torch."), feature_model=model.name, dift_t=DIFT_T,
                    dift_up_block=DIFT_UP_BLOCK, dift_ensemble=DIFT_ENSEMBLE)
    out.mkdir(parents=True, exist_ok=True)
    if state.is_main_process:  # a killed run's half-written temporary files (no other process writes yet)
        for tmp in out.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)
    _check_settings(out, settings, state)
    samples = bench.samples[:limit]
    todo = [s for s in samples if not record_path(out, s.id).exists()]
    fidelity = ImageFidelity(model.device)
    if state.is_main_process:
        for sid, reason in bench.skipped:
            log(f"skipped {sid}: {reason}")
        if fidelity.reason:
            log(f"image_fidelity (1 - LPIPS) left empty: {fidelity.reason}")
        log(f"{len(samples) - len(todo)} of {len(samples)} samples already done in {out}; {len(todo)} to run on "
            f"{state.num_processes} process(es)")
    state.wait_for_everyone()  # every process has listed the unfinished samples before any writes a record
    with state.split_between_processes(todo) as mine:
        bar = tqdm(mine, desc=settings["editor"], unit="sample", disable=not (progress and state.is_main_process))
        for sample in bar:
            bar.set_postfix_str(sample.id)
            try:
                output, record = run_sample(model, sample, settings, fidelity)
            except ValueError as err:  # recorded as finished: the same input fails the same way next time
                log(f"failed {sample.id}: {err}")
                atomic_write(record_path(out, sample.id), json_bytes(dict(error=str(err))))
                continue
            atomic_write(output_path(out, sample.id), png_bytes(output))
            atomic_write(record_path(out, sample.id), json_bytes(record))
            bar.set_postfix_str(f"{sample.id}, {record['row']['seconds']:.1f} s/sample")
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    rows, failed = [], []
    for sample in samples:
        record = json.loads(record_path(out, sample.id).read_text())
        if "error" in record:
            failed.append((sample.id, record["error"]))
        else:
            rows.append(record["row"])
    return write_tables(out, settings, rows, bench.skipped, failed)


def find_output(outputs: Path, sample_id: str) -> Path | None:
    """A method's output for a sample: OUTPUTS/<id>.png (this runner), OUTPUTS/<id>/dragged_image.png
    (DragDiffusion's evaluation layout) or OUTPUTS/<last part of id>.png (SDE-Drag's flat folder)."""
    for path in (outputs / f"{sample_id}.png", outputs / sample_id / "dragged_image.png",
                 outputs / f"{sample_id.rsplit('/', 1)[-1]}.png"):
        if path.is_file():
            return path
    return None


def measure_outputs(model: DiffusionModel, bench: DragBench, outputs, *, seed: int = 1234, limit: int | None = None,
                    out=None, progress: bool = True, log=print) -> dict:
    """Recompute the metrics of existing outputs (any method's) with ``model`` as the feature model.

    An output of another size is resized (bilinear) to its input's, as DragDiffusion's evaluation does. Samples
    without an output or with an unreadable one are reported and skipped. Writes OUT/metrics.json and
    OUT/metrics.csv (OUT: ``out``, default ``outputs``); with the drag model and base seed of a ``run_bench``
    run, the numbers equal that run's.
    """
    outputs = Path(outputs)
    if not outputs.is_dir():
        raise ValueError(f"outputs must be a folder, got {str(outputs)!r}")
    out = Path(out) if out is not None else outputs
    settings = dict(benchmark=bench.layout, outputs=str(outputs), seed=seed, native_size=native_size(model),
                    feature_model=model.name, dift_t=DIFT_T, dift_up_block=DIFT_UP_BLOCK, dift_ensemble=DIFT_ENSEMBLE)
    fidelity = ImageFidelity(model.device)
    if fidelity.reason:
        log(f"image_fidelity (1 - LPIPS) left empty: {fidelity.reason}")
    rows, failed = [], []
    for sample in tqdm(bench.samples[:limit], desc="metrics", unit="sample", disable=not progress):
        path = find_output(outputs, sample.id)
        if path is None:
            failed.append((sample.id, "no output image"))
            continue
        try:
            with Image.open(path) as im:
                output = im.convert("RGB")
        except (OSError, SyntaxError, ValueError) as err:
            failed.append((sample.id, f"unreadable output {path.name} ({err})"))
            continue
        h, w = sample.size
        if output.size != (w, h):
            output = output.resize((w, h), Image.Resampling.BILINEAR)
        start, sid_seed = time.perf_counter(), sample_seed(seed, sample.id)
        size = working_size(sample.size, native_size(model), model.pixels_per_latent)
        metrics = sample_metrics(model, sample, sample.image(), output, size, sid_seed, fidelity)
        rows.append(dict(id=sample.id, output=path.relative_to(outputs).as_posix(), seed=sid_seed, width=w, height=h,
                         model_width=size[1], model_height=size[0], points=len(sample.sources), **metrics,
                         seconds=round(time.perf_counter() - start, 3)))
    for sid, reason in failed:
        log(f"no metrics for {sid}: {reason}")
    columns = ("id", "output", "seed", "seconds", "width", "height", "model_width", "model_height", "points",
               *METRICS, *TRUTH_KEYS)
    out.mkdir(parents=True, exist_ok=True)
    return write_tables(out, settings, rows, bench.skipped, failed, name="metrics", columns=columns)


def markdown(results: dict) -> str:
    """The summary as a small markdown table."""
    s, cfg = results["summary"], results["settings"]
    fmt = lambda v: "" if v is None else "inf" if v == math.inf else f"{v:.4g}"  # noqa: E731
    head = "| editor | samples | points | Mean Distance (px) | 1 - LPIPS | PSNR outside mask (dB) | SSIM outside mask |"
    line = (f"| {cfg.get('editor', 'outputs')} | {s['samples']} | {s['points']} | {fmt(s['mean_distance'])} | "
            f"{fmt(s['image_fidelity'])} | {fmt(s['psnr_outside_mask'])} | {fmt(s['ssim_outside_mask'])} |")
    table = [head, "|---" * 7 + "|", line]
    if s.get("truth_samples"):
        a = s["agreement"]
        rho = "" if a["spearman"] is None else f"{a['spearman']:.3f} (p = {a['p_value']:.2g}, n = {a['n']})"
        table += ["", "| against the ground truth | samples | drag error (px) | objects lost | success | valid | "
                      "PSNR to truth (dB) | Spearman (Mean Distance, drag error) |", "|---" * 8 + "|",
                  f"| {cfg.get('editor', 'outputs')} | {s['truth_samples']} | {fmt(s['drag_error'])} | "
                  f"{s['objects_lost']} | {fmt(s['success'])} | {fmt(s['valid'])} | {fmt(s['psnr_truth'])} | {rho} |"]
    return "\n".join(table)
