"""The paper's inpainting claim (its Table 2) measured on the shipped digits model: SDE (DDPM) inpaintings are more
realistic than ODE (DDIM) ones, at every step count and mask size.

Setup (``python -m sdelab reproduce inpainting``):
- Inputs: the 450 held-out digits, each with a "small" and a "large" mask covering exactly round(0.2 * 256) = 51
  and round(0.4 * 256) = 102 of its 256 pixels (the paper's mask ratios 0.2 and 0.4), drawn by ``stroke_masks``.
- Samplers: ``sdelab.edit.inpaint.inpaint_latents`` with eta = 0 (ODE) and eta = 1 (SDE) on ``time_grid`` with
  25, 50 and 100 steps from t = T; the same seed for both, so they share the fixed noise of the known region.
- Scores (``sdelab.eval``), each with a 95% bootstrap interval over the images: Frechet distances to the 1347
  training digits in the judge's PCA ("fd_pca") and hidden-unit ("fd_mlp") features; "class_kept", the fraction the
  judge labels as it labels the uncorrupted input; "confident", the fraction it labels with probability > 0.9;
  "change_outside", the mean |output - input| over the known region (0 by construction: a check).
- Reference rows: the inputs themselves ("input") and the known region with the hole left blank ("blank").
- The claim itself: ``differences``, SDE - ODE per mask and step count with paired bootstrap intervals (the same
  resampled inputs for both samplers); an FD below 0 = the SDE's inpaintings are more realistic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from sdelab.data.digits import digits_dataset, stroke_masks
from sdelab.edit.inpaint import inpaint_latents
from sdelab.eval.bootstrap import Estimate, compare, summarise
from sdelab.eval.judge import CONFIDENT, DigitsJudge, flat
from sdelab.eval.tables import cell, label, markdown_table
from sdelab.models.pixel import load_digits_model
from sdelab.reproduce.processes import process_map
from sdelab.samplers import SAMPLERS
from sdelab.schedules import time_grid

MASKS = {"small": 0.2, "large": 0.4}  # mask name -> fraction of the image it covers
SAMPLER_NAMES = ("ode", "sde")


@dataclass(frozen=True)
class InpaintingRow:
    """The scores of one set of inpaintings (or of a reference set: sampler "input" or "blank")."""

    sampler: str
    mask: str | None
    steps: int | None
    scores: dict[str, Estimate]  # fd_pca, fd_mlp, class_kept, confident, change_outside


@dataclass(frozen=True)
class InpaintingDifference:
    """SDE - ODE at one mask and step count, paired image by image."""

    mask: str
    steps: int
    sde_minus_ode: dict[str, Estimate]  # the scores of InpaintingRow


@dataclass
class InpaintingResult:
    rows: list[InpaintingRow]
    differences: list[InpaintingDifference]
    settings: dict
    examples: dict | None = None  # the first inputs, masks and outputs, for the figures


def measures(judge: DigitsJudge, inputs: torch.Tensor, outputs: torch.Tensor,
             masks: torch.Tensor) -> tuple[dict, dict]:
    """Per-image measures (n,) and judge features of one set of inpaintings (n, 1, 16, 16) in [0, 1] of ``inputs``
    with ``masks`` (True = filled)."""
    x_in, x_out = flat(inputs), flat(outputs)
    prob = judge.probabilities(outputs)  # (n, 10)
    known = ~masks.reshape(len(masks), -1).numpy()
    per_image = {
        "class_kept": (prob.argmax(1) == judge.probabilities(inputs).argmax(1)).astype(float),
        "confident": (prob.max(1) > CONFIDENT).astype(float),
        "change_outside": (np.abs(x_out - x_in) * known).sum(1) / known.sum(1),
    }
    return per_image, judge.features(outputs)


def _inputs(n: int, seed: int) -> tuple:
    """The model, the first n held-out digits (n, 1, 16, 16), their masks by name, and both masks' inputs in one
    batch: x0 once per mask (len(MASKS) * n, 1, 16, 16) with each mask's pixels."""
    model = load_digits_model()
    images = digits_dataset(split="test")
    if not 1 <= n <= len(images):
        raise ValueError(f"n must lie in [1, {len(images)}], got {n}")
    images = images[:n]
    masks = {name: stroke_masks(n, fraction, seed=seed + i) for i, (name, fraction) in enumerate(MASKS.items())}
    x0 = model.encode(images)
    return model, images, masks, torch.cat([x0] * len(masks)), torch.cat(list(masks.values()))


def fills(model, batch_x0: torch.Tensor, batch_mask: torch.Tensor, name: str, steps: int, seed: int,
          progress: bool = False) -> torch.Tensor:
    """One sampler's inpaintings of the batch on ``steps`` steps from t = T, decoded (same shape as batch_x0); its
    noise from a generator seeded with ``seed``."""
    gen = torch.Generator(device=model.device).manual_seed(seed)
    grid = time_grid(model.schedule, steps)
    return model.decode(inpaint_latents(model, batch_x0, batch_mask, eta=SAMPLERS[name].eta, grid=grid,
                                        generator=gen, progress=progress))


def _fills_job(n: int, seed: int, name: str, steps: int) -> torch.Tensor:
    """``fills`` in a worker process, which builds its own model and inputs."""
    model, _, _, batch_x0, batch_mask = _inputs(n, seed)
    return fills(model, batch_x0, batch_mask, name, steps, seed)


def reproduce_inpainting(n: int = 450, steps=(25, 50, 100), seed: int = 0, reps: int = 200, workers: int = 1,
                         progress: bool = True, keep: int = 0) -> InpaintingResult:
    """The table's rows (one per sampler, mask and step count, and the reference rows), the SDE - ODE differences
    and the settings. Every interval resamples the n inputs under ``seed`` (``sdelab.eval.bootstrap``).

    workers: processes for the (sampler, step count) runs, one thread each (call it under
    ``if __name__ == "__main__":`` in a script); each run seeds its own noise, so the table is the one-process
    table. keep: also return the first ``keep`` inputs, masks and outputs as ``examples`` (for the figures).
    """
    if not all(isinstance(s, int) and s >= 1 for s in steps):
        raise ValueError(f"steps must be positive integers, got {list(steps)}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    start = time.perf_counter()
    model, images, masks, batch_x0, batch_mask = _inputs(n, seed)
    runs = sorted(((name, k) for k in steps for name in SAMPLER_NAMES), key=lambda run: -run[1])  # longest first
    if workers == 1:
        outputs = [fills(model, batch_x0, batch_mask, name, k, seed, progress) for name, k in runs]
    else:
        outputs = process_map(_fills_job, [(n, seed, name, k) for name, k in runs], workers)
    outputs = dict(zip(runs, outputs, strict=True))
    judge = DigitsJudge.fit()
    references = judge.references(digits_dataset(split="train"))
    nothing = torch.zeros_like(images, dtype=torch.bool)

    def row(sampler: str, mask: str | None, k: int | None, m: tuple[dict, dict]) -> InpaintingRow:
        return InpaintingRow(sampler, mask, k, summarise(*m, references, reps, seed))

    rows = [row("input", None, None, measures(judge, images, images, nothing))]
    examples = {"input": images[:keep], **{f"mask_{m}": masks[m][:keep] for m in MASKS}}
    for name, mask in masks.items():
        blank = torch.where(mask, torch.zeros_like(images), images)
        rows.append(row("blank", name, None, measures(judge, images, blank, mask)))
    differences = []
    for k in steps:
        m = {}
        for name in SAMPLER_NAMES:
            for i, (mask_name, mask) in enumerate(masks.items()):
                filled = outputs[name, k][i * n:(i + 1) * n]
                m[name, mask_name] = measures(judge, images, filled, mask)
                rows.append(row(name, mask_name, k, m[name, mask_name]))
                examples[f"{name}_{mask_name}_{k}"] = filled[:keep]
        for mask_name in masks:
            differences.append(InpaintingDifference(mask_name, k, compare(m["sde", mask_name], m["ode", mask_name],
                                                                          references, reps, seed)))
    coverage = {name: float(m.float().mean()) for name, m in masks.items()}
    ink = images.flatten(1).sum(1)  # (n,)
    ink_removed = {name: float(((images * m).flatten(1).sum(1) / ink).mean()) for name, m in masks.items()}
    settings = dict(model=model.name, n=n, steps=list(steps), masks=MASKS, coverage=coverage,
                    ink_removed=ink_removed, reference="the 1347 training digits", seed=seed, bootstrap=reps,
                    workers=workers, threads=1 if workers > 1 else torch.get_num_threads(),
                    seconds=round(time.perf_counter() - start, 1))
    return InpaintingResult(rows, differences, settings, examples if keep else None)


# the paper's Table 2 (SD 1.5 on Places, FID; 25 / 50 / 100 steps), for the tables beside ours
PAPER_FID = {("ode", "small"): (5.84, 5.86, 5.86), ("sde", "small"): (5.18, 4.97, 4.91),
             ("ode", "large"): (17.73, 17.57, 17.50), ("sde", "large"): (16.43, 15.48, 15.27)}
PAPER_STEPS = (25, 50, 100)


def caption(settings: dict) -> str:
    """What every inpainting table measures, against which reference set, with which intervals."""
    return (f"*Digits DDPM, the first {settings['n']} held-out digits. FD-PCA / FD-MLP: Frechet distances to "
            f"{settings['reference']} in the judge's 32-component PCA of the training pixels / its 64 hidden units; "
            f"95% bootstrap intervals over the images ({settings['bootstrap']} resamples; Frechet intervals "
            "bias-corrected; differences paired).*")


def markdown(result: InpaintingResult) -> str:
    """The rows, with the paper's FID (Places, SD 1.5) beside ours where it has one, then the SDE - ODE
    differences."""
    rows = []
    for r in result.rows:
        paper = PAPER_FID.get((r.sampler, r.mask))
        s = r.scores
        rows.append([label(r.mask), r.sampler, label(r.steps), cell(s["fd_pca"]), cell(s["fd_mlp"]),
                     cell(s["class_kept"]), cell(s["confident"], interval=False),
                     cell(s["change_outside"], 3, interval=False),
                     f"{paper[PAPER_STEPS.index(r.steps)]:.2f}" if paper and r.steps in PAPER_STEPS else ""])
    table = markdown_table(["mask", "sampler", "steps", "FD-PCA", "FD-MLP", "class kept", "confident",
                            "change outside", "paper's FID (Places, SD 1.5)"], rows, caption(result.settings))
    diff = markdown_table(["mask", "steps", "FD-PCA: SDE - ODE", "FD-MLP: SDE - ODE", "class kept: SDE - ODE"],
                          [[d.mask, str(d.steps), cell(d.sde_minus_ode["fd_pca"], signed=True),
                            cell(d.sde_minus_ode["fd_mlp"], signed=True),
                            cell(d.sde_minus_ode["class_kept"], signed=True)] for d in result.differences],
                          "SDE - ODE, paired image by image (below 0 in FD: the SDE is more realistic).")
    return f"{table}\n\n{diff}"
