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
  ``fd``: the Frechet distance in a fixed 32-component PCA of the training digits (``frechet_distance``).
  ``c2st``: a classifier two-sample test, the cross-validated accuracy of a logistic regression on the PCA features
  and their squares telling the population from n reference samples (0.5 = indistinguishable).
  The noise floor (``fd_floor``, ``c2st_floor``): the same statistics of the unedited held-out digits at t
  (chain[i]) against the same reference. 95% bootstrap intervals: the FD over rows of both sets resampled, the
  C2ST over its cross-validated verdicts resampled.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sdelab.data.digits import DragCases, digits_dataset, drag_cases
from sdelab.edit.drag import copy_paste
from sdelab.models.digits_quality import frechet_distance
from sdelab.models.pixel import PixelDiffusion, load_digits_model
from sdelab.reproduce.processes import process_map
from sdelab.samplers import SAMPLERS
from sdelab.sampling import StoredNoise, add_noise, cycle_sde_noises, ddim_invert, denoise, forward_chain
from sdelab.schedules import time_grid

EDITS = ("none", "contrast", "shift", "blur", "drag")
CURVES = (*SAMPLERS, "ode-inversion")  # ode, sde, cycle-sde, ode-inversion
CONTRAST, SHIFT, BLUR = 1.3, 2, 1.0  # factor; pixels to the right; Gaussian sigma in pixels
RADIUS, ALPHA, BETA = 2, 1.1, 0.3  # the drag's copy-paste (sdelab.edit.drag; radius = default_radius(16))
COMPONENTS, FOLDS = 32, 5  # PCA features; cross-validation folds of the C2ST


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
def c2st(a: np.ndarray, b: np.ndarray, seed: int = 0, folds: int = FOLDS) -> tuple[float, np.ndarray]:
    """Classifier two-sample test: the accuracy of ``folds``-fold cross-validated predictions of a logistic
    regression on [x, x^2] telling the rows of a (n, d) from those of b (n, d); 0.5 = indistinguishable.

    Returns (accuracy, correct): correct (2n,) bool, the verdict on every row (a's rows first), for the bootstrap.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"a and b must be (n, d) arrays of one shape (equal sizes: chance is 0.5), got "
                         f"{a.shape} and {b.shape}")
    if not 2 <= folds <= len(a):
        raise ValueError(f"folds must lie in [2, n = {len(a)}], got {folds}")
    x = np.concatenate([a, b])
    x = np.concatenate([x, x**2], axis=1)  # (2n, 2d): a linear classifier on these sees means and variances
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    with threadpool_limits(limits=1):
        verdict = cross_val_predict(classifier, x, y, cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    correct = verdict == y
    return float(correct.mean()), correct


def _interval(values) -> list[float]:
    return np.percentile(values, [2.5, 97.5]).tolist()


def gap(a: np.ndarray, reference: np.ndarray, seed: int = 0, reps: int = 100) -> dict:
    """FD and C2ST of features a (n, d) against reference features (m >= n, d), with 95% bootstrap intervals.

    The FD uses the whole reference; the C2ST its first n rows (shuffle it beforehand), so that chance is 0.5.
    ``seed`` fixes the C2ST's folds and the bootstrap's resamples, so that populations compared with one
    reference under one seed are paired: identical populations get identical results.
    The FD's interval is the bootstrap's spread about the estimate: resampling with replacement repeats rows and so
    biases every resampled distance upwards (by about as much as the estimate at n = 450 in 32 dimensions).
    """
    if reference.ndim != 2 or a.ndim != 2 or reference.shape[1] != a.shape[1] or len(reference) < len(a):
        raise ValueError(f"reference must be (m, d) with m >= n for a (n, d), got {reference.shape} and {a.shape}")
    rng = np.random.default_rng(seed)
    n, m = len(a), len(reference)
    fd = frechet_distance(a, reference)
    fd_boot = np.array([frechet_distance(a[rng.integers(n, size=n)], reference[rng.integers(m, size=m)])
                        for _ in range(reps)])
    fd_boot += fd - fd_boot.mean()  # resampled rows repeat, which raises a Frechet distance: keep only the spread
    accuracy, correct = c2st(a, reference[:n], seed=seed)
    c2st_boot = correct[rng.integers(2 * n, size=(reps, 2 * n))].mean(1)
    return {"fd": fd, "c2st": accuracy, "ci": {"fd": _interval(fd_boot), "c2st": _interval(c2st_boot)}}


@dataclass
class Features:
    """The fixed feature map: a PCA of the training digits in the diffusion's x0 scale, (n, 1, 16, 16) -> (n, 32)."""

    pca: PCA

    @classmethod
    def fit(cls, train_x0: torch.Tensor, components: int = COMPONENTS, seed: int = 0) -> Features:
        return cls(PCA(n_components=components, random_state=seed).fit(_flat(train_x0)))

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        return self.pca.transform(_flat(x))


def _flat(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().reshape(len(x), -1).numpy().astype(np.float64)


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


@dataclass
class Setup:
    """What every seed shares: the model, the grid, the held-out digits with their drags, the training digits
    (the reference), the features, and the DDIM inversion of the held-out digits (deterministic)."""

    model: PixelDiffusion
    grid: torch.Tensor  # (steps + 1,) timesteps from t0 down to 0
    cases: DragCases
    x0: torch.Tensor  # (n, 1, 16, 16) held-out digits in [-1, 1]
    train: torch.Tensor  # (1347, 1, 16, 16) training digits in [-1, 1]
    features: Features
    inverted: torch.Tensor  # (n, 1, 16, 16) DDIM inversion of x0 to grid[0]
    deterministic: dict = field(default_factory=dict)  # (edit, keep) -> ode-inversion populations, seed-free


@lru_cache(maxsize=1)
def setup(n: int, t0: float, intervals: int) -> Setup:
    """The shared part of the experiment, computed once per process."""
    model = load_digits_model()
    grid = time_grid(model.schedule, max(1, round(intervals * t0)), t0)
    cases = drag_cases(n, RADIUS, seed=0)
    x0 = model.encode(cases.images)
    train = model.encode(digits_dataset(split="train"))
    inverted = ddim_invert(in_chunks(model.eps_model()), model.schedule, x0, grid)[0]
    return Setup(model, grid, cases, x0, train, Features.fit(train), inverted)


def population_chains(s: Setup, edits, keep: list[int], seed: int, progress: bool = False):
    """One seed's four curves of every edit, {(curve, edit): {grid index: (n, 1, 16, 16)}}, and the unedited
    forward chain at the kept indices (the floor's population). The edits run batched, (len(edits) n, 1, 16, 16).

    ode-inversion is deterministic for every edit but the drag (no noise anywhere): it runs once per process.
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
    todo = [name for name in edits if name == "drag" or (name, tuple(keep)) not in s.deterministic]
    if todo:
        inverted = torch.cat([edit(name, s.inverted, s.cases, seed) for name in todo])
        kept = run_kept(eps_model, schedule, inverted, grid, keep, eta=0.0, progress=progress)
        for j, name in enumerate(todo):
            populations = {i: x[j * n:(j + 1) * n] for i, x in kept.items()}
            if name == "drag":
                out["ode-inversion", name] = populations
            else:
                s.deterministic[name, tuple(keep)] = populations
    out |= {("ode-inversion", name): s.deterministic[name, tuple(keep)] for name in edits if name != "drag"}
    return out, {i: chain[i] for i in keep}


def seed_rows(n: int, t0: float, intervals: int, edits, count: int, reps: int, seed: int,
              progress: bool = False) -> list[dict]:
    """The rows of one seed: every curve and edit at every checkpoint, with the floor of that seed and t."""
    s = setup(n, t0, intervals)
    keep = checkpoints(len(s.grid) - 1, count)
    chains, floor_population = population_chains(s, edits, keep, seed, progress)
    reference_noise = torch.Generator().manual_seed(4 * seed + 2)
    rng = np.random.default_rng(seed)
    rows = []
    for i in keep:
        t = s.grid[i]
        noise = torch.randn(s.train.shape, generator=reference_noise)
        reference = s.features(add_noise(s.train, s.model.schedule, t, noise))[rng.permutation(len(s.train))]
        paired = 1000 * seed + i  # one C2ST split and one set of resamples for every population at this t
        floor = gap(s.features(floor_population[i]), reference, paired, reps)
        for curve in CURVES:
            for name in edits:
                g = gap(s.features(chains[curve, name][i]), reference, paired, reps)
                rows.append({"sampler": curve, "edit": name, "seed": seed, "t": int(t), "fd": g["fd"],
                             "c2st": g["c2st"], "fd_floor": floor["fd"], "c2st_floor": floor["c2st"],
                             "ci": g["ci"] | {"fd_floor": floor["ci"]["fd"], "c2st_floor": floor["ci"]["c2st"]}})
    return rows


def image_gap(n: int = 450, t0: float = 0.6, intervals: int = 50, edits=EDITS, seeds=(0, 1, 2), count: int = 11,
              reps: int = 100, workers: int = 1, progress: bool = True) -> dict:
    """The rows (one per curve, edit, seed and checkpoint t) and the settings (module docstring).

    workers > 1 runs the seeds in that many processes (one thread each; call it under ``if __name__ == "__main__":``
    in a script): the rows agree up to float rounding (the UNet batches differ).
    """
    if not 0 < t0 <= 1:
        raise ValueError(f"t0 must lie in (0, 1], got {t0}")
    if not FOLDS <= n <= 450:
        raise ValueError(f"n must lie in [{FOLDS}, 450] (the C2ST's folds; the held-out digits), got {n}")
    bad = [e for e in edits if e not in EDITS]
    if bad or not edits:
        raise ValueError(f"edits must be a non-empty selection of {EDITS}, got {list(edits)}")
    if not seeds or workers < 1:
        raise ValueError(f"seeds must name at least one seed and workers must be >= 1, got {list(seeds)}, {workers}")
    start = time.perf_counter()
    jobs = [(n, t0, intervals, tuple(edits), count, reps, seed) for seed in seeds]
    if workers == 1:
        per_seed = [seed_rows(*job, progress=progress) for job in jobs]
    else:
        per_seed = process_map(seed_rows, jobs, workers)
    rows = [r for rows in per_seed for r in rows]
    settings = dict(model="digits-ddpm", n=n, t0=t0, intervals=intervals, steps=max(1, round(intervals * t0)),
                    checkpoints=sorted({r["t"] for r in rows}, reverse=True), edits=list(edits), seeds=list(seeds),
                    contrast=CONTRAST, shift_px=SHIFT, blur_sigma_px=BLUR,
                    drag=dict(radius=RADIUS, alpha=ALPHA, beta=BETA, step="the whole drag in one copy-paste"),
                    reference="the 1347 training digits noised with add_noise", pca_components=COMPONENTS,
                    c2st=f"logistic regression on [PCA, PCA^2], {FOLDS}-fold cross-validated", bootstrap=reps,
                    workers=workers, seconds=round(time.perf_counter() - start, 1))
    return {"rows": rows, "settings": settings}


# ---- summaries ---------------------------------------------------------------------------------------------------
def summary(result: dict) -> dict:
    """Per (curve, edit, t): the mean over seeds of fd, c2st and their floors, and the seeds' widest intervals."""
    out: dict = {}
    for r in result["rows"]:
        out.setdefault((r["sampler"], r["edit"], r["t"]), []).append(r)
    table = {}
    for key, rs in out.items():
        entry = {s: float(np.mean([r[s] for r in rs])) for s in ("fd", "c2st", "fd_floor", "c2st_floor")}
        entry["ci"] = {s: [min(r["ci"][s][0] for r in rs), max(r["ci"][s][1] for r in rs)] for s in rs[0]["ci"]}
        table[key] = entry
    return table


def markdown(result: dict) -> str:
    """One line per edit and curve: FD and C2ST at t0 and at the data level (means over the seeds, with the seeds'
    widest 95% intervals), beside the noise floor at the data level."""
    s = summary(result)
    top, bottom = result["settings"]["checkpoints"][0], result["settings"]["checkpoints"][-1]
    head = (f"| edit | curve | FD at t={top} | FD at t={bottom} | FD floor at t={bottom} | C2ST at t={top} | "
            f"C2ST at t={bottom} | C2ST floor at t={bottom} |\n|---|---|---|---|---|---|---|---|")

    def cell(entry, name, digits):
        lo, hi = entry["ci"][name]
        return f"{entry[name]:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"

    lines = []
    for name in result["settings"]["edits"]:
        for curve in CURVES:
            a, b = s[curve, name, top], s[curve, name, bottom]
            lines.append(f"| {name} | {curve} | {cell(a, 'fd', 2)} | {cell(b, 'fd', 2)} | {cell(b, 'fd_floor', 2)} | "
                         f"{cell(a, 'c2st', 3)} | {cell(b, 'c2st', 3)} | {cell(b, 'c2st_floor', 3)} |")
    return "\n".join([head, *lines])


# ---- the figure --------------------------------------------------------------------------------------------------
COLORS = {"ode": "C0", "sde": "C3", "cycle-sde": "C2", "ode-inversion": "C1"}
LABELS = {name: s.label for name, s in SAMPLERS.items()} | {"ode-inversion": "ODE, DDIM-inverted start"}


def gap_figure(result: dict, edits=None):
    """FD (top row, log scale) and C2ST (bottom row) against t for every curve, one column per edit; the grey band
    is the noise floor (unedited held-out digits). Lines: means over the seeds; bands: the seeds' widest 95%
    bootstrap intervals. Sampling runs left to right (t0 -> 0)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    s = summary(result)
    edits = list(result["settings"]["edits"] if edits is None else edits)
    ts = result["settings"]["checkpoints"]
    fig, axes = plt.subplots(2, len(edits), figsize=(3.3 * len(edits) + 0.6, 6.4), sharex=True, squeeze=False)
    for col, name in enumerate(edits):
        for row, stat in enumerate(("fd", "c2st")):
            ax = axes[row, col]
            floor = [s["ode", name, t] for t in ts]
            lo, hi = zip(*[e["ci"][f"{stat}_floor"] for e in floor], strict=True)
            ax.fill_between(ts, lo, hi, color="0.6", alpha=0.35, lw=0)
            ax.plot(ts, [e[f"{stat}_floor"] for e in floor], color="0.4", lw=1, label="floor (unedited)")
            for curve in CURVES:
                entries = [s[curve, name, t] for t in ts]
                lo, hi = zip(*[e["ci"][stat] for e in entries], strict=True)
                ax.fill_between(ts, lo, hi, color=COLORS[curve], alpha=0.2, lw=0)
                ax.plot(ts, [e[stat] for e in entries], "o-", ms=2.5, color=COLORS[curve], label=LABELS[curve])
            if stat == "fd":
                ax.set(yscale="log", title=f"edit: {name}")
                ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
                ax.yaxis.set_minor_formatter(NullFormatter())
            else:
                ax.axhline(0.5, color="k", lw=0.5, ls=":")
                ax.set(xlabel="t (timestep; sampling runs left to right)", ylim=(0.4, 1.01))
    axes[0, 0].invert_xaxis()  # shared by every panel
    axes[0, 0].set_ylabel("Frechet distance in PCA-32 to q_t")
    axes[1, 0].set_ylabel("C2ST accuracy vs q_t (0.5 = same)")
    axes[0, 0].legend(fontsize=7)
    st = result["settings"]
    fig.suptitle(f"The edit's gap along the chains on the digits DDPM (n={st['n']}, t0={st['t0']}, {st['steps']} "
                 f"steps, seeds {st['seeds']}; mean over seeds, bands = widest 95% bootstrap interval)", fontsize=10)
    fig.tight_layout()
    return fig
