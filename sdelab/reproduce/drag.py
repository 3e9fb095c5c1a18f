"""The paper's drag claim measured on the shipped digits model: SDE-Drag's outputs are more realistic than
ODE-Drag's while the drag still happens (the paper shows it with a user study on Stable Diffusion).

Setup (``python -m sdelab reproduce drag``):
- Inputs: the 450 held-out digits; for each one drag drawn with a fixed seed: the source on an ink pixel
  (value > 0.5), a uniform direction, a length of 3 to 5 pixels, source and target at least radius + 1
  pixels from the border so that the copy windows are whole. Two mask settings: none, and a band of width
  2 * radius around the segment from source to target.
- Methods: ``input`` (no edit), ``copy-paste`` (the same sub-steps, windows and noise applied to the clean
  image, no diffusion), ``ode-drag`` and ``sde-drag`` (``sdelab.edit.drag``, batched through each sub-step).
- Grid: the official UI's density, 100 intervals over [0, T] (steps = 100 t0); t0 in {0.2, 0.4, 0.6}.
- Scores (``sdelab.eval``), each with a 95% bootstrap interval over the images: realism (Frechet distances to the
  1347 training digits in the judge's PCA and MLP features, "fd_pca" and "fd_mlp"; the judge's confident fraction);
  faithfulness (the judge's
  label of the input kept; mean |change| outside the band); drag accuracy (``mean_distance``: where the
  input's copy window at the source best matches the output within 7 px of the source, by least squares,
  and its distance to the target; ``transfer``: ink gained in the target window over the ink of the source
  window).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sdelab.data.digits import DragCases, band_masks, digits_dataset, drag_cases
from sdelab.edit.drag import default_radius, drag_latents, drag_substeps, paste_each, stack_substeps
from sdelab.eval.bootstrap import Estimate, compare, summarise
from sdelab.eval.judge import CONFIDENT, DigitsJudge
from sdelab.eval.tables import cell, label, markdown_table
from sdelab.models.pixel import load_digits_model
from sdelab.reproduce.processes import process_map
from sdelab.schedules import check_t0

METHODS = ("input", "copy-paste", "ode-drag", "sde-drag")
MASKS = ("none", "band")
SEARCH = 7  # pixels around the source searched by mean_distance


# ---- metrics -------------------------------------------------------------------------------------------------
def _window(images: np.ndarray, p: np.ndarray, r: int) -> np.ndarray:
    """images (n, 16, 16); p (n, 2) (x, y) -> the windows [p - r, p + r) as (n, 2r, 2r)."""
    return np.stack([im[y - r: y + r, x - r: x + r] for im, (x, y) in zip(images, p, strict=True)])


def mean_distance(inputs: np.ndarray, outputs: np.ndarray, source: np.ndarray, target: np.ndarray,
                  r: int) -> np.ndarray:
    """Per image: the position within SEARCH px of the source where the output best matches (least squares) the
    input's window at the source; its distance to the target. inputs, outputs (n, 16, 16); returns (n,)."""
    template = _window(inputs, source, r)  # (n, 2r, 2r)
    offsets = sorted(((dx, dy) for dx in range(-SEARCH, SEARCH + 1) for dy in range(-SEARCH, SEARCH + 1)
                      if dx * dx + dy * dy <= SEARCH * SEARCH), key=lambda o: o[0] ** 2 + o[1] ** 2)
    out = np.empty(len(inputs))
    for i in range(len(inputs)):
        best, where = np.inf, source[i]
        for dx, dy in offsets:  # nearest first: of equal matches the one closest to the source wins
            x, y = source[i, 0] + dx, source[i, 1] + dy
            if r <= x <= 16 - r and r <= y <= 16 - r:
                ssd = ((outputs[i, y - r: y + r, x - r: x + r] - template[i]) ** 2).sum()
                if ssd < best - 1e-12:
                    best, where = ssd, np.array([x, y])
        out[i] = np.linalg.norm(where - target[i])
    return out


def ink_transfer(inputs: np.ndarray, outputs: np.ndarray, source: np.ndarray, target: np.ndarray,
                 r: int) -> np.ndarray:
    """Per image: ink gained in the target window, over the input's ink in the source window; (n,)."""
    gained = _window(outputs, target, r).sum((1, 2)) - _window(inputs, target, r).sum((1, 2))
    return gained / np.maximum(_window(inputs, source, r).sum((1, 2)), 1e-6)


def measures(judge: DigitsJudge, cases: DragCases, outputs: torch.Tensor, band: torch.Tensor,
             r: int) -> tuple[dict, dict]:
    """Per-image measures (n,) and judge features of one method's outputs (n, 1, 16, 16) in [0, 1]."""
    x_in, x_out = cases.images[:, 0].numpy().astype(np.float64), outputs[:, 0].numpy().astype(np.float64)
    prob = judge.probabilities(outputs)  # (n, 10)
    source, target = cases.source.numpy(), cases.target.numpy()
    per_image = {
        "confident": (prob.max(1) > CONFIDENT).astype(float),
        "class_kept": (prob.argmax(1) == judge.probabilities(cases.images).argmax(1)).astype(float),
        "mean_distance": mean_distance(x_in, x_out, source, target, r),
        "transfer": ink_transfer(x_in, x_out, source, target, r),
        "change_outside": np.array([np.abs(o - i)[~b].mean() for o, i, b in
                                    zip(x_out, x_in, band[:, 0].numpy(), strict=True)]),
    }
    return per_image, judge.features(outputs)


@dataclass(frozen=True)
class DragRow:
    """The scores of one method's outputs at one mask setting and t0 (None for input and copy-paste)."""

    method: str
    mask: str
    t0: float | None
    scores: dict[str, Estimate]  # fd_pca, fd_mlp, confident, class_kept, mean_distance, transfer, change_outside


@dataclass(frozen=True)
class DragComparison:
    """ODE-Drag minus SDE-Drag at one mask setting and t0, paired image by image."""

    mask: str
    t0: float
    ode_minus_sde: dict[str, Estimate]  # the scores of DragRow


@dataclass
class DragResult:
    rows: list[DragRow]
    comparisons: list[DragComparison]
    settings: dict

    @classmethod
    def from_json(cls, data: dict) -> DragResult:
        """The result from its JSON (``sdelab.reproduce.results.to_json``), such as the shipped drag_digits.json."""
        def scores(d: dict) -> dict[str, Estimate]:
            return {k: Estimate(**v) for k, v in d.items()}

        return cls([DragRow(r["method"], r["mask"], r["t0"], scores(r["scores"])) for r in data["rows"]],
                   [DragComparison(c["mask"], c["t0"], scores(c["ode_minus_sde"])) for c in data["comparisons"]],
                   data["settings"])


# ---- the experiment ------------------------------------------------------------------------------------------
def run_drags(model, x0: torch.Tensor, per_image: list, mask: torch.Tensor | None, t0: float, intervals: int,
              alpha: float, beta: float, r: int, seed: int, progress: bool) -> dict[str, torch.Tensor]:
    """ODE-Drag and SDE-Drag outputs (n, 1, 16, 16) in [0, 1] of the latents x0 with their sub-steps, the images
    batched by their sub-step count."""
    steps = max(1, round(intervals * t0))
    out = {}
    for method, sampler in (("ode-drag", "ode"), ("sde-drag", "cycle-sde")):
        result = torch.empty_like(x0)
        for m in sorted({len(s) for s in per_image}):
            idx = [i for i, s in enumerate(per_image) if len(s) == m]
            substeps = stack_substeps(per_image, idx)  # each (b, 1, 2)
            gen = torch.Generator(device=model.device).manual_seed(seed + m)
            # chain_batch=20: the chain's eps 20 steps per call, measured faster for this model on a CPU
            # (benchmarks/drag.py); the same result up to float rounding
            result[idx] = drag_latents(model, x0[idx], substeps, sampler=sampler,
                                       mask=None if mask is None else mask[idx], t0=t0, steps=steps, alpha=alpha,
                                       beta=beta, radius=r, generator=gen, chain_batch=20, progress=progress)
        out[method] = model.decode(result)
    return out


def _outputs(model, x0, per_image, cases, mask_name, bands, t0, intervals, alpha, beta, r, seed, progress, load):
    """Every method's outputs (n, 1, 16, 16) in [0, 1] at one mask and t0: computed, or read from ``load``."""
    if load is not None:
        saved = np.load(f"{load}/drag_digits_t0={t0}_mask={mask_name}.npz")
        if not (np.array_equal(saved["source"], cases.source.numpy()) and len(saved["input"]) == len(x0)):
            raise ValueError(f"load={load!r} holds outputs of other drags (n, seed): rerun without --load")
        return {method: torch.from_numpy(saved[method.replace("-", "_")]) for method in METHODS}
    mask = bands if mask_name == "band" else None
    pasted = paste_each(x0, per_image, r, alpha, beta, torch.Generator().manual_seed(seed))
    if mask is not None:
        pasted = torch.where(mask, pasted, x0)
    fixed = {"input": cases.images, "copy-paste": model.decode(pasted)}
    return fixed | run_drags(model, x0, per_image, mask, t0, intervals, alpha, beta, r, seed, progress)


def _mask_outputs(n: int, seed: int, mask_name: str, t0s: tuple, intervals: int, alpha: float,
                  beta: float) -> dict[float, dict[str, torch.Tensor]]:
    """Every method's outputs at every t0 for one mask setting: one worker's share of the run."""
    model, r = load_digits_model(), default_radius(16)
    cases = drag_cases(n, r, seed)
    per_image = [drag_substeps(s[None], t[None], 2.0) for s, t in zip(cases.source, cases.target, strict=True)]
    return {t0: _outputs(model, model.encode(cases.images), per_image, cases, mask_name, band_masks(cases, r), t0,
                         intervals, alpha, beta, r, seed, False, None) for t0 in t0s}


def reproduce_drag(n: int = 450, t0s=(0.2, 0.4, 0.6), intervals: int = 100, alpha: float = 1.1, beta: float = 0.3,
                   seed: int = 0, reps: int = 200, save=None, load=None, workers: int = 1,
                   progress: bool = True) -> DragResult:
    """The table's rows (one per method, mask and t0), the paired ODE-minus-SDE comparisons, and the settings.
    Every interval resamples the n inputs under ``seed`` (``sdelab.eval.bootstrap``).

    save: a folder for the .npz outputs; load: such a folder, to re-measure saved outputs without rerunning.
    workers: 2 runs the two mask settings in two processes (one thread each; call it under
    ``if __name__ == "__main__":``), the same outputs as one process.
    """
    if workers not in (1, 2):
        raise ValueError(f"workers must be 1 or 2 (one per mask setting), got {workers}")
    for t0 in t0s:
        check_t0(t0)
    start = time.perf_counter()
    model = load_digits_model()
    r = default_radius(16)
    cases = drag_cases(n, r, seed)
    judge = DigitsJudge.fit()
    references = judge.references(digits_dataset(split="train"))
    bands = band_masks(cases, r)
    x0 = model.encode(cases.images)
    per_image = [drag_substeps(s[None], t[None], 2.0) for s, t in zip(cases.source, cases.target, strict=True)]
    computed = {}
    if load is None and workers == 2:
        jobs = [(n, seed, m, tuple(t0s), intervals, alpha, beta) for m in MASKS]
        computed = dict(zip(MASKS, process_map(_mask_outputs, jobs, workers), strict=True))
    rows, comparisons = [], []
    for mask_name in MASKS:
        for k, t0 in enumerate(t0s):
            outputs = computed[mask_name][t0] if computed else _outputs(
                model, x0, per_image, cases, mask_name, bands, t0, intervals, alpha, beta, r, seed, progress, load)
            reported = METHODS if k == 0 else METHODS[2:]  # input and copy-paste do not depend on t0
            m = {method: measures(judge, cases, outputs[method], bands, r) for method in reported}
            for method in reported:
                rows.append(DragRow(method, mask_name, t0 if method.endswith("drag") else None,
                                    summarise(*m[method], references, reps, seed)))
            comparisons.append(DragComparison(mask_name, t0, compare(m["ode-drag"], m["sde-drag"], references, reps,
                                                                     seed)))
            if save is not None:
                arrays = {k.replace("-", "_"): v.numpy().astype(np.float32) for k, v in outputs.items()}
                np.savez_compressed(f"{save}/drag_digits_t0={t0}_mask={mask_name}.npz", **arrays,
                                    source=cases.source.numpy(), target=cases.target.numpy())
    settings = dict(model=model.name, n=n, t0=list(t0s), intervals=intervals, steps=[max(1, round(intervals * t))
                                                                                     for t in t0s],
                    alpha=alpha, beta=beta, radius=r, step_size=2.0, search=SEARCH,
                    reference="the 1347 training digits", seed=seed, bootstrap=reps,
                    workers=workers, seconds=round(time.perf_counter() - start, 1))
    if save is not None:  # the run's own settings beside its outputs, so that --load can report them
        Path(save, "settings.json").write_text(json.dumps(settings))
    if load is not None:
        fresh = json.loads(Path(load, "settings.json").read_text())
        settings |= {"seconds_of_the_run": fresh["seconds"],
                     "measured_from_saved_outputs": True}
    return DragResult(rows, comparisons, settings)


def caption(settings: dict) -> str:
    """What every drag table measures, against which reference set, with which intervals."""
    return (f"*Digits DDPM, {settings['n']} held-out digits, one drag each. FD-PCA / FD-MLP: Frechet distances to "
            f"{settings['reference']} in the judge's 32-component PCA of the training pixels / its 64 hidden units; "
            f"95% bootstrap intervals over the images ({settings['bootstrap']} resamples; Frechet intervals "
            "bias-corrected).*")


MEASURES = ("fd_pca", "fd_mlp", "confident", "class_kept", "mean_distance", "transfer")  # compared in the 2nd table


def markdown(result: DragResult) -> str:
    """The rows (the drag measures with their intervals), then the paired comparisons."""
    rows = [[r.mask, r.method, label(r.t0)] + [cell(r.scores[k], interval=False) for k in MEASURES[:4]]
            + [cell(r.scores["mean_distance"]), cell(r.scores["transfer"]), cell(r.scores["change_outside"], 3,
                                                                                 interval=False)]
            for r in result.rows]
    table = markdown_table(["mask", "method", "t0", "FD-PCA", "FD-MLP", "confident", "class kept", "mean distance (px)",
                            "ink transfer", "change outside"], rows, caption(result.settings))
    comparisons = [[c.mask, label(c.t0)] + [cell(c.ode_minus_sde[k], 3, signed=True) for k in MEASURES]
                   for c in result.comparisons]
    comparisons = markdown_table(["mask", "t0", "FD-PCA", "FD-MLP", "confident", "class kept", "mean distance",
                                  "ink transfer"], comparisons,
                                 "ODE-Drag minus SDE-Drag, paired image by image (positive FD and negative confident / "
                                 "class-kept differences favour SDE-Drag).")
    return f"{table}\n\n{comparisons}"
