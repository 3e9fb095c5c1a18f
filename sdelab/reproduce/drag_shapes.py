"""The paper's drag claim against ground truth, on the shapes model: SDE-Drag's outputs are more realistic than
ODE-Drag's, and the drag is still done (the paper shows both halves with a user study on Stable Diffusion).

Setup (``python -m sdelab reproduce drag --model shapes``):
- Inputs: ``sdelab.data.shapes.drag_cases``: n scenes (300, fixed seed), in each one object dragged from its centre
  by 3-8 px to a place where it fits, so that the moved scene, the ground truth, is itself a valid scene.
- Methods: ``input`` (no edit), ``copy-paste`` (the same sub-steps, windows and noise applied to the clean image,
  no diffusion), ``ode-drag`` and ``sde-drag`` (``sdelab.edit.drag``, batched by sub-step count), ``truth``.
- Settings: t0 in {0.2, 0.4, 0.6, 0.8} on Stable Diffusion's schedule (the shapes model's), so 0.6 is the paper's
  level; steps = intervals * t0; no mask, or a band mask around the drag (the object's circumradius + 1.5 px); the
  copy window's half-size at the default (``default_radius``: 2 on a 32-pixel image) or covering the object
  (its circumradius + 0.5, rounded up).
- Measures, per image, read by the shapes world's judge (``parse``; docs/shapes.md), each with a 95% bootstrap
  interval over the scenes and paired SDE - ODE differences: ``drag_error`` (px from the target to the dragged
  object's centre, over the outputs that still show it), ``lost`` (no object of its colour), ``success`` (error
  <= 1 px, kind kept, a valid scene), ``others_kept`` (every other object within 0.5 px of where it was),
  ``valid`` (the judge's verdict), ``ghost`` (the object's colour left where the truth has none, over its area),
  ``psnr_truth`` (dB to the true edited image), ``change_outside`` (mean |output - input| outside the band).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from sdelab.data.shapes import (
    CIRCUMRADIUS,
    DragCases,
    Parse,
    Scene,
    band_masks,
    colour_weight,
    drag_cases,
    moved,
    parse,
    parse_batch,
    render,
)
from sdelab.edit.drag import (
    default_radius,
    drag_latents,
    drag_substeps,
    ode_drag,
    paste_each,
    paste_only,
    sde_drag,
    stack_substeps,
)
from sdelab.eval.bootstrap import Estimate, mean_estimate, paired_mean_difference
from sdelab.eval.tables import cell, label, markdown_table
from sdelab.reproduce.processes import process_map
from sdelab.schedules import check_t0

T0S = (0.2, 0.4, 0.6, 0.8)
MASKS = ("none", "band")
RADII = ("default", "cover")
METHOD_SAMPLERS = {"ode-drag": "ode", "sde-drag": "cycle-sde"}  # the methods that run a sampler
EXAMPLES = 6  # scenes kept for the examples figure
MEASURES = ("drag_error", "lost", "success", "others_kept", "valid", "ghost", "psnr_truth", "change_outside")
KEPT_PX = 0.5  # another object is kept when its centre moved at most this
SUCCESS_PX = 1.0
ABSENT = 0.05  # the truth shows none of a colour where its weight is below this


# ---- per-image measures ------------------------------------------------------------------------------------------
def object_radii(cases: DragCases) -> np.ndarray:
    """(n,) the circumradius in pixels of each case's dragged object."""
    return np.array([CIRCUMRADIUS[s.kind] * s.size for s in (sc.shapes[i] for sc, i in
                                                              zip(cases.scenes, cases.index.tolist(), strict=True))])


def measures(cases: DragCases, outputs: torch.Tensor, band: torch.Tensor) -> dict[str, np.ndarray]:
    """Every per-image measure (module docstring) of outputs (n, 3, S, S) in [0, 1]: {name: (n,)}; drag_error is NaN
    where the object was lost."""
    out = outputs.double().numpy()
    truth, inputs = cases.truth.double().numpy(), cases.images.double().numpy()
    outside = ~band[:, 0].numpy()  # (n, S, S)
    rows = {k: np.zeros(len(out)) for k in MEASURES}
    for i, read in enumerate(parse_batch(outputs)):
        moved = cases.truth_scenes[i].shapes[int(cases.index[i])]
        shown = {s.colour: s for s in read.scene.shapes}
        found = shown.get(moved.colour)
        error = math.hypot(found.x - moved.x, found.y - moved.y) if found else math.nan
        others = [s for k, s in enumerate(cases.truth_scenes[i].shapes) if k != int(cases.index[i])]
        kept = all(s.colour in shown and math.hypot(shown[s.colour].x - s.x, shown[s.colour].y - s.y) <= KEPT_PX
                   for s in others)
        shown_w, true_w = colour_weight(out[i], moved.colour), colour_weight(truth[i], moved.colour)  # (S, S)
        left = np.clip(shown_w - true_w, 0, None) * (true_w < ABSENT)  # the colour where the truth has (almost) none
        mse = float(((out[i] - truth[i]) ** 2).mean())
        rows["drag_error"][i] = error
        rows["lost"][i] = found is None
        rows["success"][i] = bool(found and error <= SUCCESS_PX and found.kind == moved.kind and read.valid)
        rows["others_kept"][i] = kept
        rows["valid"][i] = read.valid
        rows["ghost"][i] = left.sum() / moved.size**2
        rows["psnr_truth"][i] = 10 * math.log10(1 / max(mse, 1e-10))
        rows["change_outside"][i] = np.abs(out[i] - inputs[i]).mean(0)[outside[i]].mean()
    return rows


def _estimate(values: np.ndarray, reps: int, seed: int) -> Estimate:
    """The mean over the images where the value is defined (drag_error: where the object was found)."""
    values = values[~np.isnan(values)]
    return mean_estimate(values, reps, seed) if len(values) > 1 else Estimate(math.nan, math.nan, math.nan)


def _difference(a: np.ndarray, b: np.ndarray, reps: int, seed: int) -> Estimate:
    both = ~(np.isnan(a) | np.isnan(b))
    return paired_mean_difference(a[both], b[both], reps, seed) if both.sum() > 1 else Estimate(*[math.nan] * 3)


# ---- results ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShapesDragRow:
    """The scores of one method's outputs at one mask, copy radius and t0 (None where they do not apply)."""

    method: str
    mask: str | None
    radius: str | None
    t0: float | None
    scores: dict[str, Estimate]


@dataclass(frozen=True)
class ShapesDragComparison:
    """SDE-Drag minus ODE-Drag at one mask, radius and t0, paired scene by scene."""

    mask: str
    radius: str
    t0: float
    sde_minus_ode: dict[str, Estimate]


@dataclass
class ShapesDragResult:
    rows: list[ShapesDragRow]
    comparisons: list[ShapesDragComparison]
    settings: dict
    examples: dict = field(default_factory=dict)  # {column title: (k, 3, S, S)} of the first scenes, for the figure

    @classmethod
    def from_json(cls, data: dict) -> ShapesDragResult:
        """The result from its JSON (``sdelab.reproduce.results.to_json``), such as the shipped drag_shapes.json; the
        examples are not in it."""
        def scores(d: dict) -> dict[str, Estimate]:
            return {k: Estimate(**v) for k, v in d.items()}

        return cls([ShapesDragRow(r["method"], r["mask"], r["radius"], r["t0"], scores(r["scores"]))
                    for r in data["rows"]],
                   [ShapesDragComparison(c["mask"], c["radius"], c["t0"], scores(c["sde_minus_ode"]))
                    for c in data["comparisons"]], data["settings"])

    def score(self, method: str, measure: str, mask: str | None = None, radius: str | None = None,
              t0: float | None = None) -> Estimate:
        """One row's estimate of ``measure`` (e.g. ``score("ode-drag", "success", "none", "cover", 0.6)``; input and
        truth take no mask, radius or t0, copy-paste no t0); ValueError if the result has no such row."""
        for r in self.rows:
            if (r.method, r.mask, r.radius, r.t0) == (method, mask, radius, t0):
                return r.scores[measure]
        raise ValueError(f"no row for method={method!r}, mask={mask!r}, radius={radius!r}, t0={t0!r}")

    def difference(self, measure: str, mask: str, radius: str, t0: float) -> Estimate:
        """SDE-Drag minus ODE-Drag in ``measure``, paired scene by scene, at one mask, radius and t0."""
        for c in self.comparisons:
            if (c.mask, c.radius, c.t0) == (mask, radius, t0):
                return c.sde_minus_ode[measure]
        raise ValueError(f"no comparison for mask={mask!r}, radius={radius!r}, t0={t0!r}")


# ---- the experiment ----------------------------------------------------------------------------------------------
def copy_radii(cases: DragCases, radius: str) -> np.ndarray:
    """(n,) the copy window's half-size per case: ``default_radius`` of the image, or one that covers the object."""
    if radius == "default":
        return np.full(len(cases.index), default_radius(cases.images.shape[-1]))
    return np.ceil(object_radii(cases) + 0.5).astype(int)


def _groups(per_image: list, radii: np.ndarray) -> dict[tuple[int, int], list[int]]:
    """The images that share a sub-step count and a radius: one batched drag each."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, substeps in enumerate(per_image):
        groups.setdefault((len(substeps), int(radii[i])), []).append(i)
    return groups


def _drags(model, cases: DragCases, mask: torch.Tensor | None, radii: np.ndarray, t0s, intervals: int, alpha: float,
           beta: float, seed: int) -> dict:
    """{(method, t0): outputs (n, 3, S, S)} of copy-paste (t0 None), ODE-Drag and SDE-Drag at one mask and radius."""
    x0 = model.encode(cases.images)
    per_image = [drag_substeps(s[None], t[None], 2.0) for s, t in zip(cases.source, cases.target, strict=True)]
    groups = _groups(per_image, radii)
    pasted = paste_each(x0, per_image, radii, alpha, beta, torch.Generator().manual_seed(seed))
    if mask is not None:
        pasted = torch.where(mask, pasted, x0)
    out = {("copy-paste", None): model.decode(pasted)}
    for t0 in t0s:
        steps = max(1, round(intervals * t0))
        for method, sampler in METHOD_SAMPLERS.items():
            result = torch.empty_like(x0)
            for (m, r), idx in groups.items():
                substeps = stack_substeps(per_image, idx)  # each (b, 1, 2)
                gen = torch.Generator(device=model.device).manual_seed(seed + 1000 * m + r)
                result[idx] = drag_latents(model, x0[idx], substeps, sampler=sampler,
                                           mask=None if mask is None else mask[idx], t0=t0, steps=steps, alpha=alpha,
                                           beta=beta, radius=r, generator=gen)
            out[method, t0] = model.decode(result)
    return out


def _setting(model_path, n: int, seed: int, mask_name: str, radius: str, t0s, intervals: int, alpha: float,
             beta: float, keep: int = EXAMPLES) -> tuple[dict, dict]:
    """One worker's share at one mask and radius (the model loaded here): every method's per-image measures, and the
    outputs of the first ``keep`` scenes."""
    from sdelab.models.pixel import load_pixel_model

    model = load_pixel_model(model_path)
    cases = drag_cases(n, seed)
    band = band_masks(cases, torch.as_tensor(object_radii(cases) + 1.5))
    mask = band if mask_name == "band" else None
    outputs = _drags(model, cases, mask, copy_radii(cases, radius), t0s, intervals, alpha, beta, seed)
    return ({key: measures(cases, images, band) for key, images in outputs.items()},
            {key: images[:keep] for key, images in outputs.items()})


def reproduce_drag_shapes(model_path="shapes", n: int = 300, t0s=T0S, intervals: int = 50, alpha: float = 1.1,
                          beta: float = 0.3, seed: int = 0, reps: int = 200, workers: int = 2) -> ShapesDragResult:
    """The table's rows (one per method, mask, radius and t0), the paired SDE - ODE comparisons and the settings.

    model_path: a shipped pixel model's name or a folder (``load_pixel_model``). workers: the four mask x radius
    settings in that many processes (one thread each; call it under ``if __name__ == "__main__":``).
    """
    for t0 in t0s:
        check_t0(t0)
    if not isinstance(intervals, int) or intervals < 1:
        raise ValueError(f"intervals must be an integer >= 1, got {intervals!r}")
    start = time.perf_counter()
    cases = drag_cases(n, seed)
    band = band_masks(cases, torch.as_tensor(object_radii(cases) + 1.5))
    settings_list = [(m, r) for m in MASKS for r in RADII]
    jobs = [(model_path, n, seed, m, r, tuple(t0s), intervals, alpha, beta) for m, r in settings_list]
    runs = process_map(_setting, jobs, workers) if workers > 1 else [_setting(*job) for job in jobs]
    fixed = {"input": measures(cases, cases.images, band), "truth": measures(cases, cases.truth, band)}
    rows = [ShapesDragRow(name, None, None, None, {k: _estimate(v, reps, seed) for k, v in m.items()})
            for name, m in fixed.items()]
    comparisons = []
    examples = {"input": cases.images[:EXAMPLES], "truth": cases.truth[:EXAMPLES]}
    for (mask_name, radius), (run, kept) in zip(settings_list, runs, strict=True):
        if (mask_name, radius) == ("none", "default"):
            examples |= {method if t0 is None else f"{method} t0={t0}": images for (method, t0), images in kept.items()}
        for (method, t0), m in run.items():
            rows.append(ShapesDragRow(method, mask_name, radius, t0, {k: _estimate(v, reps, seed)
                                                                     for k, v in m.items()}))
        for t0 in t0s:
            sde, ode = run["sde-drag", t0], run["ode-drag", t0]
            comparisons.append(ShapesDragComparison(mask_name, radius, t0, {k: _difference(sde[k], ode[k], reps, seed)
                                                                           for k in MEASURES}))
    settings = dict(model=str(model_path), n=n, t0=list(t0s), intervals=intervals,
                    steps=[max(1, round(intervals * t)) for t in t0s], alpha=alpha, beta=beta,
                    default_radius=int(copy_radii(cases, "default")[0]), step_size=2.0, seed=seed, bootstrap=reps,
                    workers=workers, seconds=round(time.perf_counter() - start, 1))
    return ShapesDragResult(rows, comparisons, settings, examples)


# ---- tables ------------------------------------------------------------------------------------------------------
HEADERS = ["drag error (px)", "lost", "success", "others kept", "valid", "ghost", "PSNR to truth (dB)",
           "change outside"]


def markdown(result: ShapesDragResult) -> str:
    """The rows (every measure with its interval), then the paired SDE - ODE comparisons."""
    s = result.settings
    caption = (f"*Shapes model, {s['n']} scenes, one object dragged 3-8 px each; steps = {s['intervals']} t0 on Stable "
               f"Diffusion's schedule. Every measure is read by the shapes judge against the true edited image; 95% "
               f"bootstrap intervals over the scenes ({s['bootstrap']} resamples); drag error over the outputs that "
               "still show the object.*")
    rows = [[r.method, r.mask or "", r.radius or "", label(r.t0)] + [cell(r.scores[k]) for k in MEASURES]
            for r in result.rows]
    table = markdown_table(["method", "mask", "radius", "t0", *HEADERS], rows, caption)
    diffs = [[c.mask, c.radius, label(c.t0)] + [cell(c.sde_minus_ode[k], signed=True) for k in MEASURES]
             for c in result.comparisons]
    diffs = markdown_table(["mask", "radius", "t0", *HEADERS], diffs,
                           "SDE-Drag minus ODE-Drag, paired scene by scene (negative drag error and ghost, positive "
                           "success, valid and PSNR favour SDE-Drag).")
    return f"{table}\n\n{diffs}"


# ---- one scene, for the notebook ---------------------------------------------------------------------------------
def drag_scene(model, scene: Scene, source, target, *, t0: float = 0.6, intervals: int = 20, radius: int | None = None,
               seed: int = 0) -> dict[str, tuple[torch.Tensor, Parse]]:
    """One drag of ``scene`` from ``source`` to ``target`` ((x, y) pixels) with every method, each image (3, S, S)
    with the judge's reading: {"input", "copy-paste", "ODE-Drag", "SDE-Drag", "truth"}. The truth moves the object
    whose centre is nearest the source by target - source; it is left out when that move breaks the world's rules
    (the moved object would leave the image or touch another: then no valid scene answers the drag)."""
    image = render(scene)
    settings = dict(t0=t0, steps=max(1, round(intervals * t0)), radius=radius, seed=seed)
    out = {"input": image}
    sde = sde_drag(model, image, [source], [target], frames=False, progress=False, **settings)
    ode = ode_drag(model, image, [source], [target], frames=False, progress=False, **settings)
    gen = torch.Generator().manual_seed(seed)
    pasted = paste_only(model.encode(image[None]), sde.substeps, sde.settings["radius_used"], generator=gen)
    out |= {"copy-paste": model.decode(pasted)[0], "ODE-Drag": model.decode(ode.latent)[0],
            "SDE-Drag": model.decode(sde.latent)[0]}
    i = min(range(len(scene.shapes)), key=lambda k: math.hypot(scene.shapes[k].x - source[0],
                                                               scene.shapes[k].y - source[1]))
    try:
        out["truth"] = render(moved(scene, i, target[0] - source[0], target[1] - source[1]))
    except ValueError:
        pass
    return {name: (im, parse(im)) for name, im in out.items()}
