"""The paper's image-to-image claim (its section 5.2) measured on the class-conditional digits model: DiffEdit with
Cycle-SDE gives more realistic edits than DiffEdit with DDIM inversion, at every encode ratio t0; and SDEdit's
realism-faithfulness curves of ODE (DDIM inversion), SDE (fresh noise) and Cycle-SDE.

Setup (``python -m sdelab reproduce i2i``):
- Inputs: the 450 held-out digits (``n``: the first n); each is edited from its class k (the source condition,
  prompt "k") to the class (k + 3) mod 10 (the target condition).
- DiffEdit (as ``sdelab.edit.i2i.diffedit``): one mask per digit from ``diffedit_mask`` (strength 0.5, 10 noise
  draws, ratio 3), then ODE = DDIM inversion under the source and DDIM under the target; SDE = Cycle-SDE with the
  source condition for the Eq. 8 noises and the target backwards; the mask applied after every step.
- SDEdit (as ``sdelab.edit.i2i.sdedit``), no mask: ODE (DDIM inversion), SDE (fresh noise), Cycle-SDE.
- The null edit: SDEdit with the target equal to the source (each digit "edited" into its own class), ODE and
  Cycle-SDE: how far each sampler moves the input by itself; its "target" is the source class.
- Settings: the paper's 50 steps over the whole diffusion (round(50 t0) from t0), t0 in 0.3, 0.4, ..., 0.8;
  classifier-free guidance ``guidance`` backwards and for the mask; the inversion and the Eq. 8 noises without
  guidance (1). The default guidance 2 is the smallest of 1, 2, 3, 5, 7.5 at which the model's own samples are
  judged as the digit asked for 99% of the time (100 DDIM samples, 20 steps: 0.94 at 1, 1.00 from 2; their
  FD-PCA grows with the guidance, 0.79 at 1, 0.93 at 2, 2.78 at the paper's 7.5, which suits SD, not this model).
- One inversion per sampler and t0 serves all three edits (``edits_at``): the edits differ only in the backward
  condition and the mask, and Cycle-SDE's Eq. 8 noises depend on neither (``cycle_noises``). ``workers`` > 1
  runs the t0s in that many processes; every t0 seeds its own noise, so the table is the one-process table.
- Scores (``sdelab.eval``), with 95% bootstrap intervals over the images: "target", the fraction the judge labels
  as the target class (the paper's CLIP score); "fd_pca" / "fd_mlp", Frechet distances to the 1347 training digits
  in the judge's features (its FID); "distance", the mean |output - input| over the image (its LPIPS);
  "change_outside", the mean |output - input| outside the DiffEdit mask (0 for DiffEdit by construction: a check;
  SDEdit changes it).
- The claim: ``differences``, each sampler minus the ODE for the same edit and t0 (DiffEdit: Cycle-SDE; SDEdit: SDE
  and Cycle-SDE; the null edit: Cycle-SDE) in every score, with paired bootstrap intervals.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from sdelab.data.digits import digits_dataset
from sdelab.edit.i2i import diffedit_mask, edit_steps
from sdelab.edit.inversion import cycle_noises, invert, reconstruct
from sdelab.eval.bootstrap import Estimate, compare, summarise
from sdelab.eval.judge import DigitsJudge, flat
from sdelab.eval.tables import cell, label, markdown_table
from sdelab.models.pixel import load_digits_model
from sdelab.reproduce.processes import process_map
from sdelab.samplers import SAMPLERS
from sdelab.schedules import check_t0

T0S = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
SHIFT = 3  # the fixed class map k -> (k + SHIFT) mod 10
EDITS = {"diffedit": ("ode", "cycle-sde"), "sdedit": ("ode", "sde", "cycle-sde"), "null": ("ode", "cycle-sde")}
LABELS = {"input": "input", "diffedit": "DiffEdit", "sdedit": "SDEdit", "null": "null edit (k -> k)"}


def edits_at(model, x0: torch.Tensor, source: list[str], target: list[str], mask: torch.Tensor, t0: float,
             steps: int, guidance: float, seed: int) -> dict[tuple[str, str], torch.Tensor]:
    """Every (edit, sampler) of EDITS at one t0, decoded (n, 1, 16, 16): one inversion per sampler under the source
    (guidance 1), reconstructed under the target inside DiffEdit's ``mask`` ("diffedit"), under the target without
    it ("sdedit") and under the source without it ("null"). Each sampler's noise comes from a generator seeded with
    ``seed``: the outputs are those of ``diffedit`` / ``sdedit`` (Cycle-SDE's up to float rounding)."""
    backward = {"diffedit": (target, mask), "sdedit": (target, None), "null": (source, None)}
    outputs = {}
    for name in SAMPLERS:
        gen = torch.Generator(device=model.device).manual_seed(seed)
        inv = invert(model, x0, edit_steps(steps, t0), t0, name, prompt=source, generator=gen, progress=False)
        noises = cycle_noises(model, inv) if SAMPLERS[name].replay else None
        for edit, (prompt, m) in backward.items():
            if name in EDITS[edit]:
                out = reconstruct(model, inv, prompt=prompt, guidance=guidance, mask=m, noises=noises, generator=gen,
                                  progress=False)
                outputs[edit, name] = model.decode(out)
    return outputs


def _inputs(n: int, weights) -> tuple:
    """The model, the first n held-out digits (n, 1, 16, 16), their labels, latents and both conditions."""
    model = load_digits_model(weights, conditional=True)
    images, labels = digits_dataset(split="test", return_labels=True)
    if not 1 <= n <= len(images):
        raise ValueError(f"n must lie in [1, {len(images)}], got {n}")
    images, labels = images[:n], labels[:n]
    source, target = [str(int(k)) for k in labels], [str(int(k + SHIFT) % 10) for k in labels]
    return model, images, labels, model.encode(images), source, target


def _edits_job(n: int, weights, mask: torch.Tensor, t0: float, steps: int, guidance: float,
               seed: int) -> dict[tuple[str, str], torch.Tensor]:
    """``edits_at`` for one t0 in a worker process, which loads its own model and inputs."""
    model, _, _, x0, source, target = _inputs(n, weights)
    return edits_at(model, x0, source, target, mask, t0, steps, guidance, seed)


@dataclass(frozen=True)
class I2IRow:
    """The scores of one set of edits (edit "input": the inputs themselves)."""

    edit: str
    sampler: str | None
    t0: float | None
    scores: dict[str, Estimate]  # target, fd_pca, fd_mlp, distance, change_outside


@dataclass(frozen=True)
class I2IDifference:
    """A sampler minus the ODE for one edit and t0, paired image by image."""

    edit: str
    sampler: str
    t0: float
    minus_ode: dict[str, Estimate]  # the scores of I2IRow


@dataclass
class I2IResult:
    rows: list[I2IRow]
    differences: list[I2IDifference]
    settings: dict
    examples: dict | None = None  # the first inputs, masks and outputs, for the figures


def measures(judge: DigitsJudge, inputs: torch.Tensor, outputs: torch.Tensor, targets: np.ndarray,
             mask: torch.Tensor) -> tuple[dict, dict]:
    """Per-image measures (n,) and judge features of one set of edits (n, 1, 16, 16) in [0, 1] of ``inputs`` towards
    the classes ``targets``; ``mask`` (True = DiffEdit's editable region)."""
    x_in, x_out = flat(inputs), flat(outputs)
    outside = ~mask.reshape(len(mask), -1).numpy()
    per_image = {
        "target": (judge.probabilities(outputs).argmax(1) == targets).astype(float),
        "distance": np.abs(x_out - x_in).mean(1),
        "change_outside": (np.abs(x_out - x_in) * outside).sum(1) / np.maximum(outside.sum(1), 1),
    }
    return per_image, judge.features(outputs)


def reproduce_i2i(n: int = 450, t0s=T0S, steps: int = 50, guidance: float = 2.0, seed: int = 0, reps: int = 200,
                  weights=None, workers: int = 1, progress: bool = True, keep: int = 0) -> I2IResult:
    """The table's rows (one per edit, sampler and t0, and the input), the differences to the ODE and the settings.
    Every interval resamples the n inputs under ``seed`` (``sdelab.eval.bootstrap``).

    weights: the conditional model's folder (default: the shipped one). workers: processes for the t0s (one
    thread each; call it under ``if __name__ == "__main__":`` in a script). keep: also return the first ``keep``
    inputs, masks and outputs as ``examples``.
    """
    for t0 in t0s:
        check_t0(t0)
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    start = time.perf_counter()
    model, images, labels, x0, source, target = _inputs(n, weights)
    judge = DigitsJudge.fit()
    references = judge.references(digits_dataset(split="train"))
    gen = torch.Generator(device=model.device).manual_seed(seed)
    mask = diffedit_mask(model, x0, source, target, guidance=guidance, generator=gen)  # (n, 1, 16, 16)
    if workers == 1:
        outputs = {t0: edits_at(model, x0, source, target, mask, t0, steps, guidance, seed)
                   for t0 in tqdm(t0s, desc="t0", disable=not progress)}
    else:  # the largest t0 (the most steps) first
        longest_first = sorted(set(t0s), reverse=True)
        jobs = [(n, weights, mask, t0, steps, guidance, seed) for t0 in longest_first]
        outputs = dict(zip(longest_first, process_map(_edits_job, jobs, workers), strict=True))
    targets = ((labels + SHIFT) % 10).numpy()
    aims = {"diffedit": targets, "sdedit": targets, "null": labels.numpy()}  # the class each edit asks for
    m = measures(judge, images, images, targets, mask)
    rows = [I2IRow("input", None, None, summarise(*m, references, reps, seed))]
    examples = {"input": images[:keep], "mask": mask[:keep], "source": labels[:keep], "target": targets[:keep]}
    differences = []
    for t0 in t0s:
        m = {}
        for edit, samplers in EDITS.items():
            for name in samplers:
                m[edit, name] = measures(judge, images, outputs[t0][edit, name], aims[edit], mask)
                rows.append(I2IRow(edit, name, t0, summarise(*m[edit, name], references, reps, seed)))
                examples[f"{edit}_{name}_{t0}"] = outputs[t0][edit, name][:keep]
        for edit, samplers in EDITS.items():
            for name in samplers[1:]:  # against the ODE, on the same inputs
                differences.append(I2IDifference(edit, name, t0, compare(m[edit, name], m[edit, "ode"], references,
                                                                         reps, seed)))
    settings = dict(model=model.name, n=n, t0=list(t0s), steps=steps, steps_run=[edit_steps(steps, t) for t in t0s],
                    guidance=guidance, inversion_guidance=1.0, class_map=f"k -> (k + {SHIFT}) mod 10",
                    mask_fraction=float(mask.float().mean()), mask=dict(strength=0.5, maps=10, ratio=3.0),
                    reference="the 1347 training digits", seed=seed, bootstrap=reps, workers=workers,
                    threads=1 if workers > 1 else torch.get_num_threads(),
                    seconds=round(time.perf_counter() - start, 1))
    return I2IResult(rows, differences, settings, examples if keep else None)


def caption(settings: dict) -> str:
    """What every image-to-image table measures, against which reference set, with which intervals."""
    return (f"*Class-conditional digits DDPM, the first {settings['n']} held-out digits, k -> (k + {SHIFT}) mod 10, "
            f"cfg {settings['guidance']:g}. FD-PCA / FD-MLP: Frechet distances to {settings['reference']} in the "
            "judge's 32-component PCA of the training pixels / its 64 hidden units; distance: mean |output - input|; "
            f"95% bootstrap intervals over the images ({settings['bootstrap']} resamples; Frechet intervals "
            "bias-corrected; differences paired). The null edit's target is its own (source) class.*")


def markdown(result: I2IResult) -> str:
    """The rows, then the differences to the ODE."""
    def name(sampler):
        return SAMPLERS[sampler].label if sampler else ""

    rows = [[LABELS[r.edit], name(r.sampler), label(r.t0), cell(r.scores["target"]), cell(r.scores["fd_pca"]),
             cell(r.scores["fd_mlp"]), cell(r.scores["distance"], 3), cell(r.scores["change_outside"], 3,
                                                                            interval=False)] for r in result.rows]
    table = markdown_table(["edit", "sampler", "t0", "judged as target", "FD-PCA", "FD-MLP", "distance to input",
                            "change outside mask"], rows, caption(result.settings))
    diff = [[LABELS[d.edit], f"{name(d.sampler)} - ODE", label(d.t0)]
            + [cell(d.minus_ode[k], 3 if k == "distance" else 2, signed=True)
               for k in ("fd_pca", "fd_mlp", "target", "distance")] for d in result.differences]
    diff = markdown_table(["edit", "sampler - ODE", "t0", "FD-PCA", "FD-MLP", "judged as target", "distance to input"],
                          diff, "Each sampler minus the ODE for the same edit and t0, paired image by image.")
    return f"{table}\n\n{diff}"
