"""The theorems on an image model: an edit's distribution gap along ODE, SDE and Cycle-SDE chains (digits, shapes).

Theorems 3.1-3.3 of the paper follow the marginals p~_t of an edited chain against the unedited ones: along the
probability-flow ODE KL(p~_t || p_t) stays constant (Thm 3.2: the flow is a bijection; a DDIM step with a learned eps
is one only approximately); along the SDE (Thm 3.1) and
Cycle-SDE (Thm 3.3) it falls. Notebooks 02-04 show it on mixtures with exact densities. Here the same samplers
carry a population of images through a trained pixel model, where no density is known, and the gap to the
model's target marginal q_t is measured with two-sample statistics at checkpoints of the grid. The data side is a
``World`` (``WORLDS``): the population with one drag per image, the reference images, the feature map and, for the
shapes, the judge; the chains, checkpoints, statistics and tables are one code for both.

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

The shapes world (``python -m sdelab reproduce image-gap --model shapes``, ``image_gap_shapes(model)``), where a
drag is visible at the population level because a judge says which images are scenes at all:
- Population: n = 300 scenes of ``sdelab.data.shapes.drag_cases(n, seed=0)`` (the scenes of ``reproduce drag --model
  shapes``), each with one object dragged 3-8 px from its centre. The shapes model runs on Stable Diffusion's
  schedule, so t0 = 0.6 is the paper's level; 20 steps (intervals 33), 6 checkpoints, one seed by default.
- Edits: ``none`` (the floor's partner) and ``drag``: one ``copy_paste`` of the whole drag at x_t0 with the default
  copy radius (``default_radius(32)`` = 2), alpha 1.1, beta 0.3. The same four curves.
- ``fd_pca`` and ``c2st`` as above, in ``ScenesPCA``: a seeded 32-component PCA of 2000 generator scenes' pixels
  (``random_scenes(2000, seed=1)``), against 1000 other generator scenes (``random_scenes(1000, seed=2)``) noised to
  t; the floor is the unedited scenes' forward chain.
- ``valid``: the shapes judge's validity rate (``sdelab.data.shapes.parse``), with its floor ``valid_floor``. The
  judge reads clean images only: a chain's state at t > 0 is noise to it (every state would be invalid, edited or
  not), so at a checkpoint t it reads the state's clean-data estimate, the decoded x0 prediction
  x0_hat = (x_t - sigma_t eps(x_t, t)) / alpha_t that the sampler's step from t uses (free: ``run_kept`` keeps it;
  for the floor, the eps of the forward chain that Eq. 8 computes anyway). That is what the chain would output if it
  stopped at t, and the floor's rate at the same t (the unedited forward chain's x0 prediction) is the model's own
  rate on real q_t samples, so edited and unedited populations are compared at equal t. At the data level (t = 0,
  the grid's last point, docs/conventions.md) the judge reads the outputs themselves: the headline, the validity of
  what each editor returns; there the floor is the clean scenes (all valid). An x0 prediction at large t is a
  posterior mean, blurry even on real q_t samples: compare a curve with the floor at the same t, not with 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from sklearn.decomposition import PCA

from sdelab.data import digits, shapes
from sdelab.edit.drag import copy_paste, default_radius
from sdelab.eval.bootstrap import Estimate, frechet_two_sample, mean_estimate
from sdelab.eval.c2st import FOLDS, c2st
from sdelab.eval.judge import DigitsJudge
from sdelab.eval.tables import cell, markdown_table
from sdelab.models.pixel import PixelDiffusion, load_pixel_model
from sdelab.reproduce.processes import process_map
from sdelab.samplers import SAMPLERS
from sdelab.sampling import StoredNoise, add_noise, cycle_sde_noises, ddim_invert, denoise, forward_chain
from sdelab.schedules import check_t0, time_grid

EDITS = ("none", "contrast", "shift", "blur", "drag")
SHAPES_EDITS = ("none", "drag")
CURVES = (*SAMPLERS, "ode-inversion")  # ode, sde, cycle-sde, ode-inversion
CONTRAST, SHIFT, BLUR = 1.3, 2, 1.0  # factor; pixels to the right; Gaussian sigma in pixels
RADIUS, ALPHA, BETA = 2, 1.1, 0.3  # the drag's copy-paste (sdelab.edit.drag; radius = default_radius(16))
FIT_SCENES, REFERENCE_SCENES, COMPONENTS = 2000, 1000, 32  # the shapes world's PCA and reference set


# ---- the edits ---------------------------------------------------------------------------------------------------
def edit(name: str, x_t0: torch.Tensor, cases=None, seed: int = 0, radius: int = RADIUS) -> torch.Tensor:
    """One edit (``EDITS``) of a noisy population x_t0 (n, c, S, S); a new tensor. ``drag`` needs the cases (one drag
    per image: ``source``, ``target`` (n, 2) pixels, from the digits' or the shapes' ``drag_cases``), copies windows
    of half-size ``radius`` and draws the copy-paste's noise from ``torch.Generator().manual_seed(seed)``."""
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
        return copy_paste(x_t0, source, target, radius, ALPHA, BETA, gen)
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


def features(judge, x: torch.Tensor) -> np.ndarray:
    """The PCA features (n, d) of diffusion states x (n, c, S, S) in the model's x0 scale, mapped to pixels by
    (x + 1) / 2 without clipping; judge: a world's feature map (``DigitsJudge``, ``ScenesPCA``)."""
    return judge.features((x + 1) / 2)["fd_pca"]


@dataclass(frozen=True)
class ScenesPCA:
    """The shapes world's fixed feature map: a 32-component PCA (seeded) of the pixels of FIT_SCENES generator scenes
    (``random_scenes(FIT_SCENES, seed=1)``, disjoint from the drag cases' seed 0 and the reference's seed 2)."""

    pca: PCA

    @classmethod
    def fit(cls, scenes: int = FIT_SCENES, seed: int = 0) -> ScenesPCA:
        images = shapes.render_batch(shapes.random_scenes(scenes, seed=4 * seed + 1))  # (scenes, 3, 32, 32)
        return cls(PCA(n_components=min(COMPONENTS, scenes), random_state=seed).fit(_flat(images)))

    def features(self, images) -> dict[str, np.ndarray]:
        """{"fd_pca": (n, 32)} of images (n, 3, S, S); linear, so noisy states mapped by (x + 1) / 2 have features."""
        return {"fd_pca": self.pca.transform(_flat(images))}


def _flat(images) -> np.ndarray:
    """(n, c, S, S) tensor or array -> (n, c S^2) float64."""
    images = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    return images.reshape(len(images), -1).astype(np.float64)


def shapes_valid(images: torch.Tensor) -> np.ndarray:
    """(n,) float 0/1: the shapes judge's verdict (``sdelab.data.shapes.parse``) on images (n, 3, S, S) in [0, 1]."""
    return np.array([p.valid for p in shapes.parse_batch(images)], dtype=np.float64)


# ---- the worlds: what the experiment needs from a data set -------------------------------------------------------
@dataclass(frozen=True)
class World:
    """The data side of the experiment: the population (n images with one drag each) and its edits, the clean
    reference images, the feature map of FD-PCA and C2ST, and, where the world has one, the judge's validity
    verdicts; ``text`` names the population, the reference and the features in the settings and captions."""

    name: str
    model: str  # the default model (``load_pixel_model``)
    label: str  # the default model in the settings
    edits: tuple[str, ...]
    max_n: int
    radius: int  # the drag's copy radius
    cases: Callable  # n -> drag cases: images (n, c, S, S) in [0, 1], source, target (n, 2)
    reference: Callable[[], torch.Tensor]  # () -> (m, c, S, S) in [0, 1]
    feature_map: Callable  # () -> an object with features(images) -> {"fd_pca": (n, d)}
    valid: Callable[[torch.Tensor], np.ndarray] | None  # images (n, c, S, S) in [0, 1] -> (n,) 0/1
    text: dict
    edit_settings: dict


def _digits_cases(n: int):
    return digits.drag_cases(n, RADIUS, seed=0)


def _digits_reference() -> torch.Tensor:
    return digits.digits_dataset(split="train")


def _shapes_cases(n: int):
    return shapes.drag_cases(n, seed=0)


def _shapes_reference() -> torch.Tensor:
    return shapes.render_batch(shapes.random_scenes(REFERENCE_SCENES, seed=2))


WORLDS = {
    "digits": World("digits", "digits", "digits-ddpm", EDITS, 450, RADIUS, _digits_cases, _digits_reference,
                    DigitsJudge.fit, None,
                    dict(population="held-out digits", floor="held-out digits", limit="the held-out digits",
                         reference="the 1347 training digits noised to t with add_noise",
                         features="the judge's 32-component PCA of the training pixels, on (x + 1) / 2"),
                    dict(contrast=CONTRAST, shift_px=SHIFT, blur_sigma_px=BLUR)),
    "shapes": World("shapes", "shapes", "shapes", SHAPES_EDITS, REFERENCE_SCENES, default_radius(shapes.SIZE),
                    _shapes_cases, _shapes_reference, ScenesPCA.fit, shapes_valid,
                    dict(population="shapes scenes (drag_cases, seed 0)", floor="scenes", limit="the reference scenes",
                         reference=f"{REFERENCE_SCENES} other generator scenes (seed 2) noised to t with add_noise",
                         features=f"a {COMPONENTS}-component PCA of {FIT_SCENES} generator scenes' pixels (seed 1), "
                                  "on (x + 1) / 2",
                         valid="the shapes judge's verdict (sdelab.data.shapes.parse) on the decoded x0 prediction "
                               "(x - sigma_t eps) / alpha_t; at the data level on the output itself"),
                    {}),
}


def world_of(name: str) -> World:
    if name not in WORLDS:
        raise ValueError(f"world must be one of {tuple(WORLDS)}, got {name!r}")
    return WORLDS[name]


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


def run_kept(eps_model, schedule, x, grid, keep: list[int], estimates: bool = False, **kwargs):
    """``denoise`` from x at grid[0]: the population at the grid indices in ``keep`` (0 is the start), and with
    ``estimates`` its clean-data estimates there (else {}): x0_hat, the prediction the step from grid[i] makes, and
    at the data level (the last index) the output itself. Returns (states, estimates), each {grid index: tensor}."""
    kept, clean, last = ({0: x} if 0 in keep else {}), {}, len(grid) - 1

    def store(info: dict) -> None:
        if estimates and info["i"] in keep:
            clean[info["i"]] = info["x0_hat"]
        if info["i"] + 1 in keep:
            kept[info["i"] + 1] = info["x"]

    out = denoise(eps_model, schedule, x, grid, callback=store, **kwargs)
    if estimates and last in keep:
        clean[last] = out
    return kept, clean


@dataclass(frozen=True)
class Setup:
    """What every seed shares: the model, the grid, the population with its drags, the reference images, the
    world's feature map (``judge``), the DDIM inversion of the population (deterministic) and the world."""

    model: PixelDiffusion
    grid: torch.Tensor  # (steps + 1,) timesteps from t0 down to 0
    cases: object  # the world's drag cases
    x0: torch.Tensor  # (n, c, S, S) the population in [-1, 1]
    reference: torch.Tensor  # (m, c, S, S) the reference images in [-1, 1]
    judge: object  # the feature map: DigitsJudge or ScenesPCA
    inverted: torch.Tensor  # (n, c, S, S) DDIM inversion of x0 to grid[0]
    world: World


def setup(n: int, t0: float, intervals: int, world: str = "digits", model=None) -> Setup:
    """The shared part of the experiment (build it once per process and pass it on); model: a name or folder for
    ``load_pixel_model`` (default: the world's, "digits" or "shapes")."""
    w = world_of(world)
    model = load_pixel_model(w.model if model is None else model)
    grid = time_grid(model.schedule, max(1, round(intervals * t0)), t0)
    cases = w.cases(n)
    x0 = model.encode(cases.images)
    reference = model.encode(w.reference())
    inverted = ddim_invert(in_chunks(model.eps_model()), model.schedule, x0, grid)[0]
    return Setup(model, grid, cases, x0, reference, w.feature_map(), inverted, w)


def _chains(s: Setup, edits, keep: list[int], seed: int, deterministic: dict, estimates: bool, progress: bool):
    """``population_chains`` with the clean-data estimates (``run_kept``) of every population and of the floor's:
    (states, estimates, floor states, floor estimates); the estimates are {} without ``estimates``."""
    eps_model, schedule, grid, n, k = in_chunks(s.model.eps_model()), s.model.schedule, s.grid, len(s.x0), len(edits)
    chain = forward_chain(schedule, s.x0, grid, generator=torch.Generator(device=s.x0.device).manual_seed(4 * seed))
    starts = torch.cat([edit(name, chain[0], s.cases, seed, s.world.radius) for name in edits])  # (k n, c, S, S)
    floor_clean = {}

    def store(info: dict) -> None:  # x0_hat of chain[i], from the eps that Eq. 8 takes
        if info["i"] in keep:
            floor_clean[info["i"]] = info["x0_hat"]

    noises = cycle_sde_noises(eps_model, schedule, chain, grid, progress=progress,
                              callback=store if estimates else None)  # Eq. 8, once for all edits
    if estimates and len(grid) - 1 in keep:
        floor_clean[len(grid) - 1] = chain[-1]
    fresh = torch.Generator(device=s.x0.device).manual_seed(4 * seed + 1)
    runs = {
        "ode": run_kept(eps_model, schedule, starts, grid, keep, estimates, eta=0.0, progress=progress),
        "sde": run_kept(eps_model, schedule, starts, grid, keep, estimates, eta=1.0, generator=fresh,
                        progress=progress),
        "cycle-sde": run_kept(eps_model, schedule, starts, grid, keep, estimates, eta=1.0,
                              noise=StoredNoise([w.repeat(k, 1, 1, 1) for w in noises]), progress=progress),
    }
    split = [{curve: _split(kept, j, n) for curve, kept in runs.items()} for j in range(k)]
    out = {(curve, name): split[j][curve] for curve in runs for j, name in enumerate(edits)}
    cached = {name: (name, tuple(keep), estimates) for name in edits}  # keys of the deterministic cache
    todo = [name for name in edits if name == "drag" or cached[name] not in deterministic]
    if todo:
        inverted = torch.cat([edit(name, s.inverted, s.cases, seed, s.world.radius) for name in todo])
        kept = run_kept(eps_model, schedule, inverted, grid, keep, estimates, eta=0.0, progress=progress)
        for j, name in enumerate(todo):
            if name == "drag":
                out["ode-inversion", name] = _split(kept, j, n)
            else:
                deterministic[cached[name]] = _split(kept, j, n)
    out |= {("ode-inversion", name): deterministic[cached[name]] for name in edits if name != "drag"}
    states = {key: value[0] for key, value in out.items()}
    clean = {key: value[1] for key, value in out.items()}
    return states, clean, {i: chain[i] for i in keep}, floor_clean


def _split(kept: tuple[dict, dict], j: int, n: int) -> tuple[dict, dict]:
    """Rows j n .. (j + 1) n of every tensor of ``run_kept``'s (states, estimates): the j-th edit's populations."""
    return tuple({i: x[j * n:(j + 1) * n] for i, x in part.items()} for part in kept)


def population_chains(s: Setup, edits, keep: list[int], seed: int, deterministic: dict, progress: bool = False):
    """One seed's four curves of every edit, {(curve, edit): {grid index: (n, c, S, S)}}, and the unedited
    forward chain at the kept indices (the floor's population). The edits run batched, (len(edits) n, c, S, S).

    ode-inversion is deterministic for every edit but the drag (no noise anywhere): its populations are looked up
    in, or added to, the caller's ``deterministic`` cache {(edit, tuple(keep), with estimates): (populations,
    estimates)}, kept for one Setup.
    """
    states, _, floor, _ = _chains(s, edits, keep, seed, deterministic, False, progress)
    return states, floor


@dataclass(frozen=True)
class GapRow:
    """The statistics of one curve and edit at one seed and checkpoint t, beside the floor of that seed and t."""

    sampler: str
    edit: str
    seed: int
    t: int
    scores: dict[str, Estimate]  # fd_pca, c2st, (valid,) fd_pca_floor, c2st_floor, (valid_floor)


@dataclass
class GapResult:
    rows: list[GapRow]
    settings: dict


def validity(s: Setup, x: torch.Tensor, reps: int, seed: int) -> Estimate:
    """The judge's validity rate of the clean-data estimates x (n, c, S, S) in the model's scale (decoded), with its
    95% bootstrap interval."""
    return mean_estimate(s.world.valid(s.model.decode(x)), reps, seed)


def seed_rows(s: Setup, deterministic: dict, edits, count: int, reps: int, seed: int,
              progress: bool = False) -> list[GapRow]:
    """The rows of one seed: every curve and edit at every checkpoint, with the floor of that seed and t (and, in a
    world with a judge, the validity rates of the clean-data estimates and of the floor's)."""
    keep, judged = checkpoints(len(s.grid) - 1, count), s.world.valid is not None
    chains, clean, floor_population, floor_clean = _chains(s, edits, keep, seed, deterministic, judged, progress)
    reference_noise = torch.Generator().manual_seed(4 * seed + 2)
    rng = np.random.default_rng(seed)
    rows = []
    for i in keep:
        t = s.grid[i]
        noise = torch.randn(s.reference.shape, generator=reference_noise)
        reference = features(s.judge, add_noise(s.reference, s.model.schedule, t, noise))
        reference = reference[rng.permutation(len(s.reference))]
        paired = 1000 * seed + i  # one C2ST split and one set of resamples for every population at this t
        floor = gap(features(s.judge, floor_population[i]), reference, paired, reps)
        floor |= {"valid": validity(s, floor_clean[i], reps, paired)} if judged else {}
        floor = {f"{name}_floor": e for name, e in floor.items()}
        for curve in CURVES:
            for name in edits:
                g = gap(features(s.judge, chains[curve, name][i]), reference, paired, reps)
                g |= {"valid": validity(s, clean[curve, name][i], reps, paired)} if judged else {}
                rows.append(GapRow(curve, name, seed, int(t), g | floor))
    return rows


def _seed_rows_job(world: str, model, n: int, t0: float, intervals: int, edits, count: int, reps: int,
                   seed: int) -> list[GapRow]:
    """``seed_rows`` in a worker process, which builds its own Setup and cache."""
    return seed_rows(setup(n, t0, intervals, world, model), {}, edits, count, reps, seed)


def image_gap(n: int = 450, t0: float = 0.6, intervals: int = 50, edits=EDITS, seeds=(0, 1, 2), count: int = 11,
              reps: int = 100, workers: int = 1, progress: bool = True, world: str = "digits",
              model=None) -> GapResult:
    """The rows (one per curve, edit, seed and checkpoint t) and the settings (module docstring).

    world: "digits" or "shapes" (``WORLDS``; ``image_gap_shapes`` has the shapes defaults); model: a name or folder
    for ``load_pixel_model`` (default: the world's). workers > 1 runs the seeds in that many processes (one thread
    each; call it under ``if __name__ == "__main__":`` in a script): the rows agree up to float rounding (the UNet
    batches differ).
    """
    w = world_of(world)
    check_t0(t0)
    if not FOLDS <= n <= w.max_n:
        raise ValueError(f"n must lie in [{FOLDS}, {w.max_n}] (the C2ST's folds; {w.text['limit']}), got {n}")
    bad = [e for e in edits if e not in w.edits]
    if bad or not edits:
        raise ValueError(f"edits must be a non-empty selection of {w.edits} ({w.name}), got {list(edits)}")
    if not seeds or workers < 1:
        raise ValueError(f"seeds must name at least one seed and workers must be >= 1, got {list(seeds)}, {workers}")
    start = time.perf_counter()
    if workers == 1 or len(seeds) == 1:
        shared, deterministic = setup(n, t0, intervals, world, model), {}
        per_seed = [seed_rows(shared, deterministic, tuple(edits), count, reps, seed, progress) for seed in seeds]
    else:
        jobs = [(world, model, n, t0, intervals, tuple(edits), count, reps, seed) for seed in seeds]
        per_seed = process_map(_seed_rows_job, jobs, workers)
    rows = [r for rows in per_seed for r in rows]
    settings = dict(model=w.label if model is None else str(model), n=n, t0=t0, intervals=intervals,
                    steps=max(1, round(intervals * t0)), checkpoints=sorted({r.t for r in rows}, reverse=True),
                    edits=list(edits), seeds=list(seeds), **w.edit_settings,
                    drag=dict(radius=w.radius, alpha=ALPHA, beta=BETA, step="the whole drag in one copy-paste"),
                    reference=w.text["reference"], features=w.text["features"],
                    c2st=f"logistic regression on [PCA, PCA^2], {FOLDS}-fold cross-validated")
    settings |= {"valid": w.text["valid"]} if w.valid is not None else {}
    settings |= dict(bootstrap=reps, workers=workers, seconds=round(time.perf_counter() - start, 1), world=w.name)
    return GapResult(rows, settings)


def image_gap_shapes(model="shapes", n: int = 300, t0: float = 0.6, intervals: int = 33, edits=SHAPES_EDITS,
                     seeds=(0,), count: int = 6, reps: int = 100, workers: int = 1,
                     progress: bool = True) -> GapResult:
    """``image_gap`` in the shapes world with its defaults (module docstring): 300 scenes, 20 steps from t0 = 0.6
    (intervals 33), 6 checkpoints, one seed; model: a shipped pixel model's name or a folder."""
    return image_gap(n, t0, intervals, edits, seeds, count, reps, workers, progress, world="shapes", model=model)


def roughness(x: torch.Tensor) -> float:
    """Mean squared difference between neighbouring pixels (rows and columns averaged), over a batch (n, c, S, S):
    the speckle that a contrast edit leaves in the ODE's outputs raises it, a smooth digit keeps it low."""
    return ((x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., 1:] - x[..., :-1]).pow(2).mean()).item() / 2


# ---- the exact 1-D analogues -------------------------------------------------------------------------------------
ANALOGUES = {"contrast": "1.3 x the true q_t0", "shift": "the `shifted` prior N(1, 1)",
             "blur": "the `narrow` prior N(0, 0.5^2)"}


def exact_analogues(schedule, grid, x_points: int = 2000, etas=(0.0, 1.0)) -> dict:
    """The exact 1-D chains (``sdelab.toy.exact.exact_chain``) of three analogues of the image edits, on the 1-D
    mixture ``bimodal_1d`` with the image model's ``schedule`` and ``grid`` (t0 first): ``contrast``, the true q_t0
    scaled by 1.3 (means 1.3 x, variances 1.69 x); ``shift``, the ``shifted`` prior (mass moved between the modes, like
    a moved digit); ``blur``, the ``narrow`` prior (less variance). Returns {(edit, eta): ExactChain}."""
    from sdelab.toy import bimodal_1d
    from sdelab.toy.exact import exact_chain, x_grid
    from sdelab.toy.gmm import GaussianMixture
    from sdelab.toy.priors import mismatched_prior

    q0, x = bimodal_1d(), x_grid(x_points, 10.0)
    q_t0 = q0.marginal(schedule.alpha(grid[0]), schedule.sigma(grid[0]))
    priors = {"contrast": GaussianMixture(q_t0.weights, 1.3 * q_t0.means, 1.69 * q_t0.covs),
              "shift": mismatched_prior("shifted"), "blur": mismatched_prior("narrow")}
    return {(name, eta): exact_chain(q0, prior, schedule, grid, eta, x=x) for name, prior in priors.items()
            for eta in etas}


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
    w = WORLDS[settings.get("world", "digits")]
    population = (f"Digits DDPM, {settings['n']} held-out digits" if w.name == "digits" else
                  f"Shapes model ({settings['model']}), {settings['n']} {w.text['population']}")
    judged = ("" if "valid" not in settings else
              f"valid: {settings['valid']}; its floor: the same verdict on the unedited forward chain at t (the clean "
              "scenes at the data level). ")
    return (f"*{population} noised to t0 = {settings['t0']}, edited, denoised in {settings['steps']} steps; seeds "
            f"{settings['seeds']}. {judged}Statistics against {settings['reference']}: FD-PCA, the Frechet distance in "
            f"{settings['features']}; C2ST, a classifier two-sample test (0.5 = indistinguishable); floor: the "
            f"unedited {w.text['floor']}. Means over the seeds with the seeds' widest 95% bootstrap intervals "
            f"({settings['bootstrap']} resamples; Frechet intervals bias-corrected).*")


def markdown(result: GapResult) -> str:
    """One line per edit and curve: (the validity rate,) FD-PCA and C2ST at t0 and at the data level, beside the
    noise floor at the data level; in a world with a judge, then the validity rate at every checkpoint."""
    s = summary(result)
    top, bottom = result.settings["checkpoints"][0], result.settings["checkpoints"][-1]
    stats = (["valid"] if "valid" in result.settings else []) + ["fd_pca", "c2st"]
    names, digits_of = {"valid": "valid", "fd_pca": "FD-PCA", "c2st": "C2ST"}, {"valid": 3, "fd_pca": 2, "c2st": 3}
    rows = []
    for name in result.settings["edits"]:
        for curve in CURVES:
            a, b = s[curve, name, top], s[curve, name, bottom]
            rows.append([name, curve] + [cell(v, digits_of[k]) for k in stats for v in (a[k], b[k], b[f"{k}_floor"])])
    header = ["edit", "curve"] + [f"{names[k]}{where}" for k in stats
                                  for where in (f" at t={top}", f" at t={bottom}", f" floor at t={bottom}")]
    table = markdown_table(header, rows, caption(result.settings))
    return table if "valid" not in stats else f"{table}\n\n{validity_table(result)}"


def validity_table(result: GapResult) -> str:
    """The validity rate at every checkpoint t (columns, t0 first): one line per edit and curve, then the floor."""
    s, ts = summary(result), result.settings["checkpoints"]
    rows = [[name, curve] + [cell(s[curve, name, t]["valid"], 3) for t in ts]
            for name in result.settings["edits"] for curve in CURVES]
    rows.append(["", "floor (unedited forward chain)"] + [cell(s[CURVES[0], result.settings["edits"][0], t]
                                                               ["valid_floor"], 3) for t in ts])
    return markdown_table(["edit", "curve"] + [f"t={t}" for t in ts], rows,
                          "The judge's validity rate of the decoded x0 prediction at every checkpoint t (the output "
                          "itself at the data level), with 95% bootstrap intervals.")
