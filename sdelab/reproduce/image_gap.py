"""The theorems on an image model: an edit's distribution gap along ODE, SDE and Cycle-SDE chains (digits DDPM).

Theorems 3.1-3.3 of the paper follow the marginals p~_t of an edited chain against the unedited ones: along the
ODE (eta = 0) KL(p~_t || p_t) stays constant (Thm 3.2, every step is a bijection); along the SDE (Thm 3.1) and
Cycle-SDE (Thm 3.3) it falls. Notebooks 02-04 show it on mixtures with exact densities. Here the same samplers
carry a population of images through the shipped digits model, where no density is known, and the gap to the
model's target marginal q_t is measured with two-sample statistics at checkpoints of the grid.

Setup (``python -m sdelab reproduce image-gap``):
- Population: the n = 450 held-out digits x0 (``drag_cases``, which also gives each digit one drag). The forward
  chain (Eq. 7, ``forward_chain``) on ``time_grid(schedule, steps, t0)``; x_t0 = chain[0] ~ q(x_t0 | x0).
- Edits of x_t0 (``EDITS``): ``none``; ``contrast`` x -> 1.3 x; ``shift`` 2 px to the right (wrapping round, so
  the noise keeps its law and only the digit moves); ``blur`` Gaussian, sigma 1 px; ``drag`` one ``copy_paste`` of
  each digit's whole 3-5 px drag (radius 2, alpha 1.1, beta 0.3; SDE-Drag cuts a drag into sub-steps, here one).
- Chains from the same edited start x_t0 (the theorems' setting): ``ode`` (eta = 0), ``sde`` (eta = 1, fresh noise),
  ``cycle-sde`` (eta = 1 with the stored chain's Eq. 8 noises: ``cycle_sde_noises`` once for every edit, the noises
  that ``denoise(..., noise=CycleNoise(schedule, chain, grid))`` would compute on the fly at one more UNet pass per
  edit); and
  ``ode-inversion``, what an ODE editor does in practice: DDIM inversion of the clean digits (``ddim_invert``), the
  same edit, eta = 0 back.
- Statistics at every checkpoint t against a reference population: the 1347 training digits noised to t with
  ``add_noise`` (fresh noise per seed and t), so that they measure distributions, not closeness to the same images.
  ``fd_pca``: the Frechet distance in the digits judge's 32-component PCA of the training pixels
  (``sdelab.eval``), applied to (x + 1) / 2, the model's x0 scale mapped to pixels without clipping (the PCA is
  linear, so noisy states have features too). ``c2st``: a classifier two-sample test, the cross-validated accuracy
  of a logistic regression on the PCA features and their squares telling the population from n reference samples
  (0.5 = indistinguishable). The noise floor (``fd_pca_floor``, ``c2st_floor``): the same statistics of the
  unedited held-out digits at t (chain[i]) against the same reference. 95% bootstrap intervals: the FD's with the
  rows of both sets resampled (the reference is a random draw too) and bias-corrected, the C2ST's over its
  cross-validated verdicts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from sdelab.data.digits import DragCases, digits_dataset, drag_cases
from sdelab.edit.drag import copy_paste
from sdelab.eval.bootstrap import Estimate, frechet_two_sample, mean_estimate
from sdelab.eval.c2st import FOLDS, c2st
from sdelab.eval.judge import DigitsJudge
from sdelab.eval.tables import cell, markdown_table
from sdelab.models.pixel import PixelDiffusion, load_digits_model
from sdelab.reproduce.processes import process_map
from sdelab.samplers import SAMPLERS
from sdelab.sampling import StoredNoise, add_noise, cycle_sde_noises, ddim_invert, denoise, forward_chain
from sdelab.schedules import check_t0, time_grid

EDITS = ("none", "contrast", "shift", "blur", "drag")
CURVES = (*SAMPLERS, "ode-inversion")  # ode, sde, cycle-sde, ode-inversion
CONTRAST, SHIFT, BLUR = 1.3, 2, 1.0  # factor; pixels to the right; Gaussian sigma in pixels
RADIUS, ALPHA, BETA = 2, 1.1, 0.3  # the drag's copy-paste (sdelab.edit.drag; radius = default_radius(16))


# ---- the edits ---------------------------------------------------------------------------------------------------
def edit(name: str, x_t0: torch.Tensor, cases: DragCases | None = None, seed: int = 0) -> torch.Tensor:
    """One edit (``EDITS``) of a noisy population x_t0 (n, 1, 16, 16); a new tensor. ``drag`` needs the cases
    (one drag per image) and draws the copy-paste's noise from ``torch.Generator().manual_seed(seed)``."""
    if name == "none":
        return x_t0.clone()
    if name == "contrast":
        return CONTRAST * x_t0
    if name == "shift":
        return torch.roll(x_t0, SHIFT, dims=-1)
    if name == "blur":
        blurred = gaussian_filter(x_t0.cpu().numpy(), sigma=(0, 0, BLUR, BLUR))
        return torch.as_tensor(blurred, dtype=x_t0.dtype).to(x_t0.device)
    if name == "drag":
        if cases is None or len(cases.source) != len(x_t0):
            raise ValueError(f"the drag edit needs one drag per image ({len(x_t0)}): pass cases from drag_cases")
        gen = torch.Generator(device=x_t0.device).manual_seed(seed)
        source, target = cases.source[:, None].to(x_t0.device), cases.target[:, None].to(x_t0.device)  # (n, 1, 2)
        return copy_paste(x_t0, source, target, RADIUS, ALPHA, BETA, gen)
    raise ValueError(f"edit must be one of {EDITS}, got {name!r}")


# ---- the statistics ----------------------------------------------------------------------------------------------
def gap(a: np.ndarray, reference: np.ndarray, seed: int = 0, reps: int = 100) -> dict[str, Estimate]:
    """FD and C2ST of features a (n, d) against reference features (m >= n, d), with 95% bootstrap intervals.

    The FD uses the whole reference; the C2ST its first n rows (shuffle it beforehand), so that chance is 0.5.
    ``seed`` fixes the C2ST's folds and the bootstrap's resamples, so that populations compared with one
    reference under one seed are paired: identical populations get identical results.
    """
    if reference.ndim != 2 or a.ndim != 2 or reference.shape[1] != a.shape[1] or len(reference) < len(a):
        raise ValueError(f"reference must be (m, d) with m >= n for a (n, d), got {reference.shape} and {a.shape}")
    _, correct = c2st(a, reference[:len(a)], seed=seed)
    return {"fd_pca": frechet_two_sample(a, reference, reps, seed), "c2st": mean_estimate(correct, reps, seed)}


def features(judge: DigitsJudge, x: torch.Tensor) -> np.ndarray:
    """The judge's PCA features (n, 32) of diffusion states x (n, 1, 16, 16) in the model's x0 scale, mapped to
    pixels by (x + 1) / 2 without clipping."""
    return judge.features((x + 1) / 2)["fd_pca"]


# ---- the chains --------------------------------------------------------------------------------------------------
CHUNK = 900  # rows per UNet call: larger batches cost twice the time per image in page faults on a CPU


def in_chunks(eps_model, size: int = CHUNK):
    """The eps model evaluated ``size`` rows at a time (the same values; memory and time stay linear in n)."""
    return lambda x, t: torch.cat([eps_model(part, t) for part in x.split(size)])


def checkpoints(steps: int, count: int) -> list[int]:
    """``count`` grid indices spread evenly from 0 (t0) to ``steps`` (the data level), both included."""
    if count < 2:
        raise ValueError(f"checkpoints must be >= 2 (t0 and the data level), got {count}")
    return sorted({int(i) for i in np.round(np.linspace(0, steps, count))})


def run_kept(eps_model, schedule, x, grid, keep: list[int], **kwargs) -> dict[int, torch.Tensor]:
    """``denoise`` from x at grid[0]; the population at the grid indices in ``keep`` (0 is the start)."""
    kept = {0: x} if 0 in keep else {}

    def store(info: dict) -> None:
        if info["i"] + 1 in keep:
            kept[info["i"] + 1] = info["x"]

    denoise(eps_model, schedule, x, grid, callback=store, **kwargs)
    return kept


@dataclass(frozen=True)
class Setup:
    """What every seed shares: the model, the grid, the held-out digits with their drags, the training digits
    (the reference), the judge (its features), and the DDIM inversion of the held-out digits (deterministic)."""

    model: PixelDiffusion
    grid: torch.Tensor  # (steps + 1,) timesteps from t0 down to 0
    cases: DragCases
    x0: torch.Tensor  # (n, 1, 16, 16) held-out digits in [-1, 1]
    train: torch.Tensor  # (1347, 1, 16, 16) training digits in [-1, 1]
    judge: DigitsJudge
    inverted: torch.Tensor  # (n, 1, 16, 16) DDIM inversion of x0 to grid[0]


def setup(n: int, t0: float, intervals: int) -> Setup:
    """The shared part of the experiment (build it once per process and pass it on)."""
    model = load_digits_model()
    grid = time_grid(model.schedule, max(1, round(intervals * t0)), t0)
    cases = drag_cases(n, RADIUS, seed=0)
    x0 = model.encode(cases.images)
    train = model.encode(digits_dataset(split="train"))
    inverted = ddim_invert(in_chunks(model.eps_model()), model.schedule, x0, grid)[0]
    return Setup(model, grid, cases, x0, train, DigitsJudge.fit(), inverted)


def population_chains(s: Setup, edits, keep: list[int], seed: int, deterministic: dict, progress: bool = False):
    """One seed's four curves of every edit, {(curve, edit): {grid index: (n, 1, 16, 16)}}, and the unedited
    forward chain at the kept indices (the floor's population). The edits run batched, (len(edits) n, 1, 16, 16).

    ode-inversion is deterministic for every edit but the drag (no noise anywhere): its populations are looked up
    in, or added to, the caller's ``deterministic`` cache {(edit, tuple(keep)): populations}, kept for one Setup.
    """
    eps_model, schedule, grid, n, k = in_chunks(s.model.eps_model()), s.model.schedule, s.grid, len(s.x0), len(edits)
    chain = forward_chain(schedule, s.x0, grid, generator=torch.Generator(device=s.x0.device).manual_seed(4 * seed))
    starts = torch.cat([edit(name, chain[0], s.cases, seed) for name in edits])  # (k n, 1, 16, 16)
    noises = cycle_sde_noises(eps_model, schedule, chain, grid, progress=progress)  # Eq. 8, once for all edits
    fresh = torch.Generator(device=s.x0.device).manual_seed(4 * seed + 1)
    runs = {
        "ode": run_kept(eps_model, schedule, starts, grid, keep, eta=0.0, progress=progress),
        "sde": run_kept(eps_model, schedule, starts, grid, keep, eta=1.0, generator=fresh, progress=progress),
        "cycle-sde": run_kept(eps_model, schedule, starts, grid, keep, eta=1.0,
                              noise=StoredNoise([w.repeat(k, 1, 1, 1) for w in noises]), progress=progress),
    }
    out = {(curve, name): {i: x[j * n:(j + 1) * n] for i, x in kept.items()}
           for curve, kept in runs.items() for j, name in enumerate(edits)}
    todo = [name for name in edits if name == "drag" or (name, tuple(keep)) not in deterministic]
    if todo:
        inverted = torch.cat([edit(name, s.inverted, s.cases, seed) for name in todo])
        kept = run_kept(eps_model, schedule, inverted, grid, keep, eta=0.0, progress=progress)
        for j, name in enumerate(todo):
            populations = {i: x[j * n:(j + 1) * n] for i, x in kept.items()}
            if name == "drag":
                out["ode-inversion", name] = populations
            else:
                deterministic[name, tuple(keep)] = populations
    out |= {("ode-inversion", name): deterministic[name, tuple(keep)] for name in edits if name != "drag"}
    return out, {i: chain[i] for i in keep}


@dataclass(frozen=True)
class GapRow:
    """The statistics of one curve and edit at one seed and checkpoint t, beside the floor of that seed and t."""

    sampler: str
    edit: str
    seed: int
    t: int
    scores: dict[str, Estimate]  # fd_pca, c2st, fd_pca_floor, c2st_floor


@dataclass
class GapResult:
    rows: list[GapRow]
    settings: dict


def seed_rows(s: Setup, deterministic: dict, edits, count: int, reps: int, seed: int,
              progress: bool = False) -> list[GapRow]:
    """The rows of one seed: every curve and edit at every checkpoint, with the floor of that seed and t."""
    keep = checkpoints(len(s.grid) - 1, count)
    chains, floor_population = population_chains(s, edits, keep, seed, deterministic, progress)
    reference_noise = torch.Generator().manual_seed(4 * seed + 2)
    rng = np.random.default_rng(seed)
    rows = []
    for i in keep:
        t = s.grid[i]
        noise = torch.randn(s.train.shape, generator=reference_noise)
        reference = features(s.judge, add_noise(s.train, s.model.schedule, t, noise))[rng.permutation(len(s.train))]
        paired = 1000 * seed + i  # one C2ST split and one set of resamples for every population at this t
        floor = gap(features(s.judge, floor_population[i]), reference, paired, reps)
        floor = {f"{name}_floor": e for name, e in floor.items()}
        for curve in CURVES:
            for name in edits:
                g = gap(features(s.judge, chains[curve, name][i]), reference, paired, reps)
                rows.append(GapRow(curve, name, seed, int(t), g | floor))
    return rows


def _seed_rows_job(n: int, t0: float, intervals: int, edits, count: int, reps: int, seed: int) -> list[GapRow]:
    """``seed_rows`` in a worker process, which builds its own Setup and cache."""
    return seed_rows(setup(n, t0, intervals), {}, edits, count, reps, seed)


def image_gap(n: int = 450, t0: float = 0.6, intervals: int = 50, edits=EDITS, seeds=(0, 1, 2), count: int = 11,
              reps: int = 100, workers: int = 1, progress: bool = True) -> GapResult:
    """The rows (one per curve, edit, seed and checkpoint t) and the settings (module docstring).

    workers > 1 runs the seeds in that many processes (one thread each; call it under ``if __name__ == "__main__":``
    in a script): the rows agree up to float rounding (the UNet batches differ).
    """
    check_t0(t0)
    if not FOLDS <= n <= 450:
        raise ValueError(f"n must lie in [{FOLDS}, 450] (the C2ST's folds; the held-out digits), got {n}")
    bad = [e for e in edits if e not in EDITS]
    if bad or not edits:
        raise ValueError(f"edits must be a non-empty selection of {EDITS}, got {list(edits)}")
    if not seeds or workers < 1:
        raise ValueError(f"seeds must name at least one seed and workers must be >= 1, got {list(seeds)}, {workers}")
    start = time.perf_counter()
    if workers == 1:
        shared, deterministic = setup(n, t0, intervals), {}
        per_seed = [seed_rows(shared, deterministic, tuple(edits), count, reps, seed, progress) for seed in seeds]
    else:
        jobs = [(n, t0, intervals, tuple(edits), count, reps, seed) for seed in seeds]
        per_seed = process_map(_seed_rows_job, jobs, workers)
    rows = [r for rows in per_seed for r in rows]
    settings = dict(model="digits-ddpm", n=n, t0=t0, intervals=intervals, steps=max(1, round(intervals * t0)),
                    checkpoints=sorted({r.t for r in rows}, reverse=True), edits=list(edits), seeds=list(seeds),
                    contrast=CONTRAST, shift_px=SHIFT, blur_sigma_px=BLUR,
                    drag=dict(radius=RADIUS, alpha=ALPHA, beta=BETA, step="the whole drag in one copy-paste"),
                    reference="the 1347 training digits noised to t with add_noise",
                    features="the judge's 32-component PCA of the training pixels, on (x + 1) / 2",
                    c2st=f"logistic regression on [PCA, PCA^2], {FOLDS}-fold cross-validated", bootstrap=reps,
                    workers=workers, seconds=round(time.perf_counter() - start, 1))
    return GapResult(rows, settings)


# ---- summaries ---------------------------------------------------------------------------------------------------
def summary(result: GapResult) -> dict[tuple[str, str, int], dict[str, Estimate]]:
    """Per (curve, edit, t): every statistic's mean over the seeds, with the seeds' widest 95% interval."""
    out: dict = {}
    for r in result.rows:
        out.setdefault((r.sampler, r.edit, r.t), []).append(r.scores)
    return {key: {name: Estimate(float(np.mean([s[name].value for s in seeds])), min(s[name].low for s in seeds),
                                 max(s[name].high for s in seeds)) for name in seeds[0]}
            for key, seeds in out.items()}


def caption(settings: dict) -> str:
    """What the image-gap table measures, against which reference set, with which intervals."""
    return (f"*Digits DDPM, {settings['n']} held-out digits noised to t0 = {settings['t0']}, edited, denoised in "
            f"{settings['steps']} steps; seeds {settings['seeds']}. Statistics against {settings['reference']}: "
            f"FD-PCA, the Frechet distance in {settings['features']}; C2ST, a classifier two-sample test (0.5 = "
            "indistinguishable); floor: the unedited held-out digits. Means over the seeds with the seeds' widest 95% "
            f"bootstrap intervals ({settings['bootstrap']} resamples; Frechet intervals bias-corrected).*")


def markdown(result: GapResult) -> str:
    """One line per edit and curve: FD-PCA and C2ST at t0 and at the data level, beside the noise floor at the data
    level."""
    s = summary(result)
    top, bottom = result.settings["checkpoints"][0], result.settings["checkpoints"][-1]
    rows = []
    for name in result.settings["edits"]:
        for curve in CURVES:
            a, b = s[curve, name, top], s[curve, name, bottom]
            rows.append([name, curve, cell(a["fd_pca"]), cell(b["fd_pca"]), cell(b["fd_pca_floor"]),
                         cell(a["c2st"], 3), cell(b["c2st"], 3), cell(b["c2st_floor"], 3)])
    return markdown_table(["edit", "curve", f"FD-PCA at t={top}", f"FD-PCA at t={bottom}",
                           f"FD-PCA floor at t={bottom}", f"C2ST at t={top}", f"C2ST at t={bottom}",
                           f"C2ST floor at t={bottom}"], rows, caption(result.settings))
