"""The paper's inpainting claim (its Table 2) measured on the shipped digits model: SDE (DDPM) inpaintings are more
realistic than ODE (DDIM) ones, at every step count and mask size.

Setup (``python -m sdelab reproduce inpainting``):
- Inputs: the 450 held-out digits, each with a "small" and a "large" mask covering exactly round(0.2 * 256) = 51
  and round(0.4 * 256) = 102 of its 256 pixels (the paper's mask ratios 0.2 and 0.4), drawn by ``stroke_masks``.
- Samplers: ``sdelab.edit.inpaint.inpaint_latents`` with eta = 0 (ODE) and eta = 1 (SDE) on ``time_grid`` with
  25, 50 and 100 steps from t = T; the same seed for both, so they share the fixed noise of the known region.
- Measures, each with a 95% bootstrap interval (``sdelab.reproduce.scoring``): Frechet distances to the training
  digits in the judge's PCA ("fd") and hidden-unit ("fd_mlp") features; "class_kept", the fraction the judge
  labels as it labels the uncorrupted input; "confident", the fraction it labels with probability > 0.9;
  "change_outside", the mean |output - input| over the known region (0 by construction: a check).
- Reference rows: the inputs themselves ("input") and the known region with the hole left blank ("blank").
- The claim itself: "differences", FD(SDE) - FD(ODE) per mask and step count with a paired bootstrap interval
  (the same resampled inputs for both samplers); below 0 = the SDE's inpaintings are more realistic.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from sdelab.data.digits import digits_dataset, stroke_masks
from sdelab.edit.inpaint import inpaint_latents
from sdelab.models.digits_quality import CONFIDENT, DigitsJudge
from sdelab.models.pixel import load_digits_model
from sdelab.reproduce.processes import process_map
from sdelab.reproduce.scoring import cell, features, flat, paired_difference, summarise, training_features
from sdelab.samplers import SAMPLERS
from sdelab.schedules import time_grid

MASKS = {"small": 0.2, "large": 0.4}  # mask name -> fraction of the image it covers
SAMPLER_NAMES = ("ode", "sde")


def score(judge: DigitsJudge, reference: dict, inputs: torch.Tensor, outputs: torch.Tensor, masks: torch.Tensor,
          seed: int = 0, reps: int = 200) -> tuple[dict, dict]:
    """Every measure of one set of inpaintings (n, 1, 16, 16) in [0, 1] of ``inputs`` with ``masks`` (True = filled),
    and the outputs' features (for paired differences)."""
    x_in, x_out = flat(inputs), flat(outputs)
    prob = judge.classifier.predict_proba(x_out)  # (n, 10)
    known = ~masks.reshape(len(masks), -1).numpy()
    per_image = {
        "class_kept": (prob.argmax(1) == judge.classifier.predict(x_in)).astype(float),
        "confident": (prob.max(1) > CONFIDENT).astype(float),
        "change_outside": (np.abs(x_out - x_in) * known).sum(1) / known.sum(1),
    }
    feats = features(judge, x_out)
    return summarise(per_image, feats, reference, seed, reps), feats


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
                         progress: bool = True, keep: int = 0) -> dict:
    """The table's rows (one per sampler, mask and step count, and the reference rows) and the settings.

    workers: processes for the (sampler, step count) runs, one thread each (call it under
    ``if __name__ == "__main__":`` in a script); each run seeds its own noise, so the table is the one-process
    table. keep: also return the first ``keep`` inputs, masks and outputs under "examples" (for figures).
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
    reference = training_features(judge)
    nothing = torch.zeros_like(images, dtype=torch.bool)
    rows = [{"sampler": "input", "mask": None, "steps": None} | score(judge, reference, images, images, nothing,
                                                                      seed, reps)[0]]
    examples = {"input": images[:keep], **{f"mask_{m}": masks[m][:keep] for m in MASKS}}
    for name, mask in masks.items():
        blank = torch.where(mask, torch.zeros_like(images), images)
        rows.append({"sampler": "blank", "mask": name, "steps": None} | score(judge, reference, images, blank, mask,
                                                                              seed, reps)[0])
    differences = []
    for k in steps:
        feats = {}
        for name in SAMPLER_NAMES:
            for i, (mask_name, mask) in enumerate(masks.items()):
                filled = outputs[name, k][i * n:(i + 1) * n]
                row, feats[name, mask_name] = score(judge, reference, images, filled, mask, seed, reps)
                rows.append({"sampler": name, "mask": mask_name, "steps": k} | row)
                examples[f"{name}_{mask_name}_{k}"] = filled[:keep]
        for mask_name in masks:
            differences.append({"mask": mask_name, "steps": k} | paired_difference(
                feats["sde", mask_name], feats["ode", mask_name], reference, seed, reps))
    coverage = {name: float(m.float().mean()) for name, m in masks.items()}
    ink = images.flatten(1).sum(1)  # (n,)
    ink_removed = {name: float(((images * m).flatten(1).sum(1) / ink).mean()) for name, m in masks.items()}
    settings = dict(model=model.name, n=n, steps=list(steps), masks=MASKS, coverage=coverage,
                    ink_removed=ink_removed, seed=seed, bootstrap=reps, workers=workers,
                    threads=1 if workers > 1 else torch.get_num_threads(),
                    seconds=round(time.perf_counter() - start, 1))
    result = {"rows": rows, "differences": differences, "settings": settings}
    if keep:
        result["examples"] = examples
    return result


# the paper's Table 2 (SD 1.5 on Places, FID; 25 / 50 / 100 steps), for the tables beside ours
PAPER_FID = {("ode", "small"): (5.84, 5.86, 5.86), ("sde", "small"): (5.18, 4.97, 4.91),
             ("ode", "large"): (17.73, 17.57, 17.50), ("sde", "large"): (16.43, 15.48, 15.27)}
PAPER_STEPS = (25, 50, 100)


def markdown(result: dict) -> str:
    """The rows as a markdown table, with the paper's FID (Places, SD 1.5) beside ours where it has one."""
    head = ("| mask | sampler | steps | FD-PCA | FD-MLP | class kept | confident | change outside | paper's FID "
            "(Places, SD 1.5) |\n|---|---|---|---|---|---|---|---|---|")
    lines = []
    for r in result["rows"]:
        paper = PAPER_FID.get((r["sampler"], r["mask"]))
        paper = f"{paper[PAPER_STEPS.index(r['steps'])]:.2f}" if paper and r["steps"] in PAPER_STEPS else ""
        lines.append(f"| {r['mask'] or ''} | {r['sampler']} | {r['steps'] or ''} | {cell(r, 'fd')} | "
                     f"{cell(r, 'fd_mlp')} | {cell(r, 'class_kept')} | {r['confident']:.2f} | "
                     f"{r['change_outside']:.3f} | {paper} |")
    diff = ["", "| mask | steps | FD-PCA: SDE - ODE | FD-MLP: SDE - ODE |", "|---|---|---|---|"]
    diff += [f"| {d['mask']} | {d['steps']} | {cell(d, 'fd')} | {cell(d, 'fd_mlp')} |" for d in result["differences"]]
    return "\n".join([head, *lines, *diff])


# ---- figures -------------------------------------------------------------------------------------------------
def fd_figure(result: dict):
    """FD-PCA (ours) and the paper's FID against the step count, per mask, SDE and ODE."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    colors = {"ode": "C3", "sde": "C0"}
    for name in MASKS:
        style = "-" if name == "small" else "--"
        for sampler in SAMPLER_NAMES:
            rows = [r for r in result["rows"] if r["sampler"] == sampler and r["mask"] == name]
            ks, fd = [r["steps"] for r in rows], [r["fd"] for r in rows]
            err = np.abs(np.array([r["ci"]["fd"] for r in rows]).T - fd)
            axes[0].errorbar(ks, fd, yerr=err, fmt="o" + style, color=colors[sampler], capsize=2,
                             label=f"{SAMPLERS[sampler].label}, {name} mask")
            axes[1].plot(PAPER_STEPS, PAPER_FID[sampler, name], "o" + style, color=colors[sampler],
                         label=f"{SAMPLERS[sampler].label}, {name} mask")
    axes[0].set(xscale="log", xlabel="steps", ylabel="FD-PCA to the training digits (lower: realistic)",
                title=f"ours: digits DDPM, {result['settings']['n']} held-out digits")
    axes[1].set(xscale="log", xlabel="steps", ylabel="FID (lower: realistic)",
                title="the paper's Table 2: SD 1.5 on Places")
    for ax in axes:
        ax.minorticks_off()
        ax.set_xticks(PAPER_STEPS, [str(k) for k in PAPER_STEPS])
        ax.legend(fontsize=7)
    fig.suptitle("Inpainting: SDE (DDPM) against ODE (DDIM), 95% bootstrap intervals", fontsize=11)
    fig.tight_layout()
    return fig


def examples_figure(examples: dict[str, torch.Tensor], steps: int, k: int = 8):
    """For k digits: the input, each mask over it, and the ODE and SDE inpaintings at ``steps``."""
    from sdelab.plotting import digit_columns

    columns = [("input", examples["input"])]
    for name in MASKS:
        mask = examples[f"mask_{name}"].float()
        shown = examples["input"] * (1 - mask) + 0.5 * mask  # the hole in grey
        columns += [(f"{name} mask", shown), (f"ODE\n{name}", examples[f"ode_{name}_{steps}"]),
                    (f"SDE\n{name}", examples[f"sde_{name}_{steps}"])]
    k = min(k, len(examples["input"]))
    fig, _ = digit_columns(columns, k, cell=(1.1, 1.1))
    fig.tight_layout(pad=0.3)
    return fig
