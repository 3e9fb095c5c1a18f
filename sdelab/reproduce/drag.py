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
- Metrics, each with a 95% bootstrap interval over the images: realism (Frechet distances to the training
  digits in the judge's PCA and MLP features, the judge's confident fraction); faithfulness (the judge's
  label of the input kept; mean |change| outside the band); drag accuracy (``mean_distance``: where the
  input's copy window at the source best matches the output within 7 px of the source, by least squares,
  and its distance to the target; ``transfer``: ink gained in the target window over the ink of the source
  window).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from sdelab.data.digits import DragCases, band_masks, digits_dataset, drag_cases
from sdelab.edit.drag import default_radius, drag_latents, drag_substeps, paste_only
from sdelab.models.digits_quality import DigitsJudge, frechet_distance
from sdelab.models.pixel import load_digits_model
from sdelab.reproduce.processes import process_map

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


def measures(judge: DigitsJudge, cases: DragCases, outputs: torch.Tensor, band: torch.Tensor, r: int) -> dict:
    """Per-image measures and judge features of one method's outputs (n, 1, 16, 16) in [0, 1]."""
    x_in, x_out = cases.images[:, 0].numpy().astype(np.float64), outputs[:, 0].numpy().astype(np.float64)
    flat = x_out.reshape(len(x_out), -1)
    prob = judge.classifier.predict_proba(flat)
    source, target = cases.source.numpy(), cases.target.numpy()
    per_image = {
        "confident": (prob.max(1) > 0.9).astype(float),
        "class_kept": (prob.argmax(1) == judge.classifier.predict(x_in.reshape(len(x_in), -1))).astype(float),
        "mean_distance": mean_distance(x_in, x_out, source, target, r),
        "transfer": ink_transfer(x_in, x_out, source, target, r),
        "change_outside": np.array([np.abs(o - i)[~b].mean() for o, i, b in
                                    zip(x_out, x_in, band[:, 0].numpy(), strict=True)]),
    }
    return {"per_image": per_image, "features": {"fd_pca": judge.pca.transform(flat), "fd_mlp": judge.hidden(flat)}}


def _statistics(m: dict, train_features: dict, boots: np.ndarray) -> tuple[dict, dict]:
    """Point values and their values on every bootstrap resample (rows of ``boots``), per measure."""
    point = {name: float(v.mean()) for name, v in m["per_image"].items()}
    resampled = {name: v[boots].mean(1) for name, v in m["per_image"].items()}
    for name, f in m["features"].items():
        point[name] = frechet_distance(f, train_features[name])
        resampled[name] = np.array([frechet_distance(f[b], train_features[name]) for b in boots])
    return point, resampled


def summarise(m: dict, train_features: dict, boots: np.ndarray) -> dict:
    """One table row: the measures with 95% bootstrap intervals over the images.

    A resample with replacement repeats images, which inflates a Frechet distance; its interval is therefore
    bias-corrected (the resampled values shifted by their mean excess over the estimate).
    """
    point, resampled = _statistics(m, train_features, boots)
    ci = {}
    for name, values in resampled.items():
        shift = values.mean() - point[name] if name.startswith("fd_") else 0.0
        ci[name] = np.percentile(values - shift, [2.5, 97.5]).tolist()
    return point | {"ci": ci}


def compare(ode: dict, sde: dict, train_features: dict, boots: np.ndarray) -> dict:
    """ODE-Drag minus SDE-Drag for every measure, with a paired 95% bootstrap interval (the same resamples)."""
    (p_ode, r_ode), (p_sde, r_sde) = _statistics(ode, train_features, boots), _statistics(sde, train_features, boots)
    return {name: {"ode_minus_sde": p_ode[name] - p_sde[name],
                   "ci": np.percentile(r_ode[name] - r_sde[name], [2.5, 97.5]).tolist()} for name in p_ode}


# ---- the experiment ------------------------------------------------------------------------------------------
def _copy_paste_only(x0, per_image: list, r: int, alpha: float, beta: float, seed: int) -> torch.Tensor:
    """``paste_only`` per image (each has its own sub-steps), one generator for all."""
    gen = torch.Generator().manual_seed(seed)
    return torch.cat([paste_only(x0[i: i + 1], substeps, r, alpha, beta, gen) for i, substeps in enumerate(per_image)])


def run_drags(model, x0: torch.Tensor, per_image: list, mask: torch.Tensor | None, t0: float, intervals: int,
              alpha: float, beta: float, r: int, seed: int, progress: bool) -> dict[str, torch.Tensor]:
    """ODE-Drag and SDE-Drag outputs (n, 1, 16, 16) in [0, 1] of the latents x0 with their sub-steps, the images
    batched by their sub-step count."""
    steps = max(1, round(intervals * t0))
    out = {}
    for method in ("ode", "sde"):
        result = torch.empty_like(x0)
        for m in sorted({len(s) for s in per_image}):
            idx = [i for i, s in enumerate(per_image) if len(s) == m]
            substeps = [(torch.stack([per_image[i][k][0] for i in idx]), torch.stack([per_image[i][k][1] for i in idx]))
                        for k in range(m)]  # each (b, 1, 2)
            gen = torch.Generator(device=model.device).manual_seed(seed + m)
            # chain_batch=20: the chain's eps 20 steps per call, measured faster for this model on a CPU
            # (benchmarks/drag.py); the same result up to float rounding
            result[idx] = drag_latents(model, x0[idx], substeps, method=method,
                                       mask=None if mask is None else mask[idx], t0=t0, steps=steps, alpha=alpha,
                                       beta=beta, radius=r, generator=gen, chain_batch=20, progress=progress)
        out[f"{method}-drag"] = model.decode(result)
    return out


def _outputs(model, x0, per_image, cases, mask_name, bands, t0, intervals, alpha, beta, r, seed, progress, load):
    """Every method's outputs (n, 1, 16, 16) in [0, 1] at one mask and t0: computed, or read from ``load``."""
    if load is not None:
        saved = np.load(f"{load}/drag_digits_t0={t0}_mask={mask_name}.npz")
        if not (np.array_equal(saved["source"], cases.source.numpy()) and len(saved["input"]) == len(x0)):
            raise ValueError(f"load={load!r} holds outputs of other drags (n, seed): rerun without --load")
        return {method: torch.from_numpy(saved[method.replace("-", "_")]) for method in METHODS}
    mask = bands if mask_name == "band" else None
    pasted = _copy_paste_only(x0, per_image, r, alpha, beta, seed)
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
                   progress: bool = True) -> dict:
    """The table's rows (one per method, mask and t0), the paired ODE-minus-SDE comparisons, and the settings.

    save: a folder for the .npz outputs; load: such a folder, to re-measure saved outputs without rerunning.
    workers: 2 runs the two mask settings in two processes (one thread each; call it under
    ``if __name__ == "__main__":``), the same outputs as one process.
    """
    if workers not in (1, 2):
        raise ValueError(f"workers must be 1 or 2 (one per mask setting), got {workers}")
    if not all(0 < t <= 1 for t in t0s):
        raise ValueError(f"t0 values must lie in (0, 1], got {list(t0s)}")
    start = time.perf_counter()
    model = load_digits_model()
    r = default_radius(16)
    cases = drag_cases(n, r, seed)
    judge = DigitsJudge.fit()
    train = digits_dataset(split="train")[:, 0].numpy().reshape(-1, 256).astype(np.float64)
    train_features = {"fd_pca": judge.pca.transform(train), "fd_mlp": judge.hidden(train)}
    bands = band_masks(cases, r)
    x0 = model.encode(cases.images)
    per_image = [drag_substeps(s[None], t[None], 2.0) for s, t in zip(cases.source, cases.target, strict=True)]
    boots = np.random.default_rng(seed).integers(n, size=(reps, n))  # shared: every comparison is paired
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
                rows.append({"method": method, "mask": mask_name, "t0": t0 if method.endswith("drag") else None}
                            | summarise(m[method], train_features, boots))
            comparisons.append({"mask": mask_name, "t0": t0}
                               | compare(m["ode-drag"], m["sde-drag"], train_features, boots))
            if save is not None:
                arrays = {k.replace("-", "_"): v.numpy().astype(np.float32) for k, v in outputs.items()}
                np.savez_compressed(f"{save}/drag_digits_t0={t0}_mask={mask_name}.npz", **arrays,
                                    source=cases.source.numpy(), target=cases.target.numpy())
    settings = dict(model=model.name, n=n, t0=list(t0s), intervals=intervals, steps=[max(1, round(intervals * t))
                                                                                     for t in t0s],
                    alpha=alpha, beta=beta, radius=r, step_size=2.0, search=SEARCH, seed=seed, bootstrap=reps,
                    workers=workers, seconds=round(time.perf_counter() - start, 1))
    if save is not None:  # the run's own settings beside its outputs, so that --load can report them
        Path(save, "settings.json").write_text(json.dumps(settings))
    if load is not None:
        fresh = json.loads(Path(load, "settings.json").read_text())
        settings |= {"seconds_of_the_run": fresh["seconds"],
                     "measured_from_saved_outputs": True}
    return {"rows": rows, "comparisons": comparisons, "settings": settings}


def markdown(result: dict) -> str:
    """The rows as a markdown table (drag measures with their 95% intervals), then the paired comparisons."""
    head = ("| mask | method | t0 | FD-PCA | FD-MLP | confident | class kept | mean distance (px) | ink transfer | "
            "change outside |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = []
    for r in result["rows"]:
        ci = r["ci"]
        lines.append(f"| {r['mask']} | {r['method']} | {'' if r['t0'] is None else r['t0']} | {r['fd_pca']:.2f} | "
                     f"{r['fd_mlp']:.2f} | {r['confident']:.2f} | {r['class_kept']:.2f} | "
                     f"{r['mean_distance']:.2f} [{ci['mean_distance'][0]:.2f}, {ci['mean_distance'][1]:.2f}] | "
                     f"{r['transfer']:.2f} [{ci['transfer'][0]:.2f}, {ci['transfer'][1]:.2f}] | "
                     f"{r['change_outside']:.3f} |")
    names = ["fd_pca", "fd_mlp", "confident", "class_kept", "mean_distance", "transfer"]
    head2 = ("| mask | t0 | " + " | ".join(names) + " |\n|---|---|" + "---|" * len(names))
    lines2 = [f"| {c['mask']} | {c['t0']} | " + " | ".join(
        f"{c[n]['ode_minus_sde']:+.3f} [{c[n]['ci'][0]:+.3f}, {c[n]['ci'][1]:+.3f}]" for n in names) + " |"
        for c in result.get("comparisons", [])]
    return "\n".join([head, *lines, "", "ODE-Drag minus SDE-Drag (paired 95% bootstrap intervals):", "", head2,
                      *lines2])


# ---- figures -------------------------------------------------------------------------------------------------
def tradeoff_figure(result: dict):
    """Realism (FD-PCA to the training digits) against drag accuracy (mean distance, ink transfer), per mask."""
    import matplotlib.pyplot as plt

    colors = {"input": "0.3", "copy-paste": "C1", "ode-drag": "C3", "sde-drag": "C0"}
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.2), sharey="row")
    for col, mask in enumerate(MASKS):
        for row, (measure, label) in enumerate([("mean_distance", "mean distance to the target (px), lower = moved"),
                                                ("transfer", "ink transfer to the target window, higher = moved")]):
            ax = axes[row, col]
            for method, color in colors.items():
                rows = [r for r in result["rows"] if r["method"] == method and r["mask"] == mask]
                xs, ys = [r[measure] for r in rows], [r["fd_pca"] for r in rows]
                xerr = np.abs(np.array([r["ci"][measure] for r in rows]).T - xs)
                yerr = np.abs(np.array([r["ci"]["fd_pca"] for r in rows]).T - ys)
                ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, fmt="o-" if len(rows) > 1 else "s", color=color,
                            capsize=2, label=method)
                for r in rows:
                    if r["t0"] is not None:
                        ax.annotate(f"t0={r['t0']}", (r[measure], r["fd_pca"]), fontsize=7, xytext=(3, 3),
                                    textcoords="offset points", color=color)
            ax.set(xlabel=label, ylabel="FD-PCA to training digits (lower: realistic)" if col == 0 else "",
                   title=f"mask: {mask}")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Drag on the digits model: realism against drag accuracy (95% bootstrap intervals)", fontsize=11)
    fig.tight_layout()
    return fig


def examples_figure(arrays: dict[str, dict[str, np.ndarray]], source: np.ndarray, target: np.ndarray, k: int = 6):
    """Inputs with their drag arrows, then copy-paste and each t0's ODE-Drag and SDE-Drag outputs, for k images.

    arrays: {t0 label: npz arrays of run ``--save``}; every t0 shares the inputs and the copy-paste.
    """
    from sdelab.plotting import digit_columns

    first = next(iter(arrays.values()))
    columns = [("input", first["input"]), ("copy-paste", first["copy_paste"])]
    for t0, a in arrays.items():
        columns += [(f"ODE-Drag\nt0={t0}", a["ode_drag"]), (f"SDE-Drag\nt0={t0}", a["sde_drag"])]
    fig, axes = digit_columns(columns, k, cell=(1.15, 1.2))
    for ax, (sx, sy), (tx, ty) in zip(axes[:, 0], source, target, strict=False):  # the inputs' drags
        ax.annotate("", (tx, ty), (sx, sy), arrowprops=dict(arrowstyle="->", color="C3", lw=1.5))
        ax.plot([sx], [sy], "o", color="C3", ms=3)
    fig.tight_layout(pad=0.3)
    return fig
