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
- Measures, with 95% bootstrap intervals (``sdelab.reproduce.scoring``): "target", the fraction the judge labels
  as the target class (the paper's CLIP score); "fd" / "fd_mlp", Frechet distances to the training digits (its
  FID); "distance", the mean |output - input| over the image (its LPIPS); "change_outside", the mean |output -
  input| outside the DiffEdit mask (0 for DiffEdit by construction: a check; SDEdit changes it).
- The claim: "differences", each sampler minus the ODE for the same edit and t0 (DiffEdit: Cycle-SDE; SDEdit: SDE
  and Cycle-SDE; the null edit: Cycle-SDE) in FD, target fraction and distance, with paired bootstrap intervals.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from tqdm.auto import tqdm

from sdelab.data.digits import digits_dataset
from sdelab.edit.i2i import diffedit_mask, edit_steps
from sdelab.edit.inversion import cycle_noises, invert, reconstruct
from sdelab.models.digits_quality import DigitsJudge
from sdelab.models.pixel import load_digits_model
from sdelab.reproduce.processes import process_map
from sdelab.reproduce.scoring import (
    bootstrap_mean,
    cell,
    features,
    flat,
    paired_difference,
    summarise,
    training_features,
)
from sdelab.samplers import SAMPLERS

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


def score(judge: DigitsJudge, reference: dict, inputs: torch.Tensor, outputs: torch.Tensor, targets: np.ndarray,
          mask: torch.Tensor, seed: int = 0, reps: int = 200) -> tuple[dict, dict]:
    """Every measure of one set of edits (n, 1, 16, 16) in [0, 1] of ``inputs`` towards the classes ``targets``;
    ``mask`` (True = DiffEdit's editable region). Also returns the outputs' features and per-image "target"."""
    x_in, x_out = flat(inputs), flat(outputs)
    outside = ~mask.reshape(len(mask), -1).numpy()
    per_image = {
        "target": (judge.classifier.predict(x_out) == targets).astype(float),
        "distance": np.abs(x_out - x_in).mean(1),
        "change_outside": (np.abs(x_out - x_in) * outside).sum(1) / np.maximum(outside.sum(1), 1),
    }
    feats = features(judge, x_out)
    return summarise(per_image, feats, reference, seed, reps), feats | {k: per_image[k] for k in ("target",
                                                                                                 "distance")}


def against(a: dict, b: dict, reference: dict, seed: int = 0, reps: int = 200) -> dict:
    """a - b for two edits of the same inputs (``score``'s features): Frechet distances with a paired bootstrap,
    the per-image "target" and "distance" as mean differences with their bootstrap intervals."""
    diff = paired_difference({k: a[k] for k in ("fd", "fd_mlp")}, {k: b[k] for k in ("fd", "fd_mlp")}, reference,
                             seed, reps)
    rng = np.random.default_rng(seed)
    for key in ("target", "distance"):
        gain = a[key] - b[key]
        diff[key] = float(gain.mean())
        diff["ci"][key] = bootstrap_mean(gain, rng, reps)
    return diff


def reproduce_i2i(n: int = 450, t0s=T0S, steps: int = 50, guidance: float = 2.0, seed: int = 0, reps: int = 200,
                  weights=None, workers: int = 1, progress: bool = True, keep: int = 0) -> dict:
    """The table's rows (one per edit, sampler and t0, and the input), the differences to the ODE and the settings.

    weights: the conditional model's folder (default: the shipped one). workers: processes for the t0s (one
    thread each; call it under ``if __name__ == "__main__":`` in a script). keep: also return the first ``keep``
    inputs, masks and outputs under "examples".
    """
    if not all(0 < t <= 1 for t in t0s):
        raise ValueError(f"t0 values must lie in (0, 1], got {list(t0s)}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    start = time.perf_counter()
    model, images, labels, x0, source, target = _inputs(n, weights)
    judge = DigitsJudge.fit()
    reference = training_features(judge)
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
    rows = [{"edit": "input", "sampler": None, "t0": None}
            | score(judge, reference, images, images, targets, mask, seed, reps)[0]]
    examples = {"input": images[:keep], "mask": mask[:keep], "source": labels[:keep], "target": targets[:keep]}
    differences = []
    for t0 in t0s:
        edited, feats = outputs[t0], {}
        for edit, samplers in EDITS.items():
            for name in samplers:
                row, feats[edit, name] = score(judge, reference, images, edited[edit, name], aims[edit], mask, seed,
                                               reps)
                rows.append({"edit": edit, "sampler": name, "t0": t0} | row)
                examples[f"{edit}_{name}_{t0}"] = edited[edit, name][:keep]
        for edit, samplers in EDITS.items():
            for name in samplers[1:]:  # against the ODE, on the same inputs
                differences.append({"edit": edit, "sampler": name, "t0": t0}
                                   | against(feats[edit, name], feats[edit, "ode"], reference, seed, reps))
    settings = dict(model=model.name, n=n, t0=list(t0s), steps=steps, steps_run=[edit_steps(steps, t) for t in t0s],
                    guidance=guidance, inversion_guidance=1.0, class_map=f"k -> (k + {SHIFT}) mod 10",
                    mask_fraction=float(mask.float().mean()), mask=dict(strength=0.5, maps=10, ratio=3.0),
                    seed=seed, bootstrap=reps, workers=workers, threads=1 if workers > 1 else torch.get_num_threads(),
                    seconds=round(time.perf_counter() - start, 1))
    result = {"rows": rows, "differences": differences, "settings": settings}
    if keep:
        result["examples"] = examples
    return result


def markdown(result: dict) -> str:
    """The rows as a markdown table, then the differences to the ODE (paired, 95% intervals). The null edit's
    "judged as target" is its own (source) class."""
    head = ("| edit | sampler | t0 | judged as target | FD-PCA | FD-MLP | distance to input | change outside mask |\n"
            "|---|---|---|---|---|---|---|---|")
    lines = [f"| {LABELS[r['edit']]} | {SAMPLERS[r['sampler']].label if r['sampler'] else ''} | {r['t0'] or ''} | "
             f"{cell(r, 'target')} | {cell(r, 'fd')} | {cell(r, 'fd_mlp')} | {cell(r, 'distance', 3)} | "
             f"{r['change_outside']:.3f} |" for r in result["rows"]]
    diff = ["", "| edit | sampler - ODE | t0 | FD-PCA | FD-MLP | judged as target | distance to input |",
            "|---|---|---|---|---|---|---|"]
    diff += [f"| {LABELS[d['edit']]} | {SAMPLERS[d['sampler']].label} - ODE | {d['t0']} | {cell(d, 'fd')} | "
             f"{cell(d, 'fd_mlp')} | {cell(d, 'target')} | {cell(d, 'distance', 3)} |" for d in result["differences"]]
    return "\n".join([head, *lines, *diff])


# ---- figures -------------------------------------------------------------------------------------------------
COLORS = {"ode": "C3", "sde": "C2", "cycle-sde": "C0"}


def curves_figure(result: dict):
    """DiffEdit: FD and the target fraction against t0; SDEdit: FD against the distance to the input over t0."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for name in EDITS["diffedit"]:
        rows = [r for r in result["rows"] if r["edit"] == "diffedit" and r["sampler"] == name]
        t0, label = [r["t0"] for r in rows], f"DiffEdit, {SAMPLERS[name].label}"
        for ax, key in zip(axes[:2], ("fd", "target"), strict=True):
            y = [r[key] for r in rows]
            ax.errorbar(t0, y, yerr=np.abs(np.array([r["ci"][key] for r in rows]).T - y), fmt="o-",
                        color=COLORS[name], capsize=2, label=label)
    axes[0].set(xlabel="t0 (encode ratio)", ylabel="FD-PCA to the training digits (lower: realistic)",
                title="DiffEdit: realism")
    axes[1].set(xlabel="t0 (encode ratio)", ylabel="fraction judged as the target class",
                title="DiffEdit: edit success")
    for name in EDITS["sdedit"]:
        rows = [r for r in result["rows"] if r["edit"] == "sdedit" and r["sampler"] == name]
        axes[2].plot([r["distance"] for r in rows], [r["fd"] for r in rows], "o-", color=COLORS[name],
                     label=f"SDEdit, {SAMPLERS[name].label}")
        for r in rows:
            axes[2].annotate(f"{r['t0']}", (r["distance"], r["fd"]), fontsize=7, xytext=(3, 3),
                             textcoords="offset points", color=COLORS[name])
    axes[2].set(xlabel="mean |output - input| (lower: faithful)", ylabel="FD-PCA (lower: realistic)",
                title="SDEdit: realism against faithfulness (labels: t0)")
    for ax in axes:
        ax.legend(fontsize=8)
    s = result["settings"]
    fig.suptitle(f"Image-to-image on the class-conditional digits model, k -> k + {SHIFT} (mod 10), "
                 f"cfg {s['guidance']:g}, {s['steps']} steps", fontsize=11)
    fig.tight_layout()
    return fig


def examples_figure(examples: dict, t0s, k: int = 6):
    """For k digits: the input with its DiffEdit mask, then DiffEdit's ODE and Cycle-SDE edits at each t0."""
    from sdelab.plotting import digit_columns

    k = min(k, len(examples["input"]))
    columns = [("input", examples["input"]), ("DiffEdit mask", examples["mask"].float())]
    for t0 in t0s:
        columns += [(f"ODE\nt0={t0}", examples[f"diffedit_ode_{t0}"]),
                    (f"Cycle-SDE\nt0={t0}", examples[f"diffedit_cycle-sde_{t0}"])]
    fig, axes = digit_columns(columns, k, cell=(1.05, 1.15), pad=0.5)
    for i in range(k):
        axes[i, 0].set_ylabel(f"{int(examples['source'][i])} -> {int(examples['target'][i])}", fontsize=8)
    fig.tight_layout(pad=0.3)
    return fig
