"""The reproductions' figures, apart from the experiments that compute them: each takes an experiment's typed result
(``sdelab.reproduce.drag``, ``inpainting``, ``i2i``, ``image_gap``, ``quality``) and returns a matplotlib figure."""

from __future__ import annotations

import textwrap

import numpy as np
import torch
import torch.nn.functional as F

from sdelab.eval.bootstrap import Estimate
from sdelab.plotting import COLOURS, DIGIT_CMAP, difference_plot, digit_columns, show_mask
from sdelab.samplers import SAMPLERS


def _masks_column(axes, column: int, masks) -> None:
    """Redraw column ``column`` of a ``digit_columns`` grid as masks (white = editable: ``show_mask``), title kept."""
    title = axes[0, column].get_title()
    for i, ax in enumerate(axes[:, column]):
        ax.clear()
        show_mask(ax, masks[i, 0])
    axes[0, column].set_title(title, fontsize=8)


def _errors(estimates: list[Estimate]) -> np.ndarray:
    """Error bars (2, k) of matplotlib's errorbar: the distances from each value down to low and up to high."""
    return np.abs(np.array([[e.low, e.high] for e in estimates]).T - [e.value for e in estimates])


# ---- drag (sdelab.reproduce.drag) -------------------------------------------------------------------------------
EDITOR_LABELS = {"ode-drag": "ODE-Drag", "sde-drag": "SDE-Drag"}  # the methods' keys as the paper names the editors


def drag_tradeoff_figure(result):
    """Realism (FD-PCA to the training digits) against drag accuracy (mean distance, ink transfer), per mask."""
    import matplotlib.pyplot as plt

    from sdelab.reproduce.drag import MASKS

    colors = {m: COLOURS[m] for m in ["input", "copy-paste", "ode-drag", "sde-drag"]}
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.2), sharey="row")
    for col, mask in enumerate(MASKS):
        for row, (measure, label) in enumerate([("mean_distance", "mean distance to the target (px), lower = moved"),
                                                ("transfer", "ink transfer to the target window, higher = moved")]):
            ax = axes[row, col]
            for method, color in colors.items():
                rows = [r for r in result.rows if r.method == method and r.mask == mask]
                xs, ys = [r.scores[measure] for r in rows], [r.scores["fd_pca"] for r in rows]
                ax.errorbar([e.value for e in xs], [e.value for e in ys], xerr=_errors(xs), yerr=_errors(ys),
                            fmt="o-" if len(rows) > 1 else "s", color=color,
                            capsize=2, label=EDITOR_LABELS.get(method, method))
                for r, x, y in zip(rows, xs, ys, strict=True):
                    if r.t0 is not None:
                        ax.annotate(f"t0={r.t0}", (x.value, y.value), fontsize=7, xytext=(3, 3),
                                    textcoords="offset points", color=color)
            ax.set(xlabel=label, ylabel="FD-PCA to training digits (lower: realistic)" if col == 0 else "",
                   title=f"mask: {mask}")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Drag on the digits model: realism against drag accuracy (95% bootstrap intervals)\nt0 on the "
                 "digits' own schedule, noisier than the same t0 on SD's (compare by signal: schedules.matched_t0)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def drag_examples_figure(arrays: dict[str, dict[str, np.ndarray]], source: np.ndarray, target: np.ndarray, k: int = 6):
    """Inputs with their drag arrows, then copy-paste and each t0's ODE-Drag and SDE-Drag outputs, for k images.

    arrays: {t0 label: npz arrays of run ``--save``}; every t0 shares the inputs and the copy-paste.
    """
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
# ---- inpainting (sdelab.reproduce.inpainting) -------------------------------------------------------------------
def inpainting_fd_figure(result):
    """FD-PCA (ours) and the paper's FID against the step count, per mask, SDE and ODE."""
    import matplotlib.pyplot as plt

    from sdelab.reproduce.inpainting import MASKS, PAPER_FID, PAPER_STEPS, SAMPLER_NAMES

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    colors = COLOURS
    for name in MASKS:
        style = "-" if name == "small" else "--"
        for sampler in SAMPLER_NAMES:
            rows = [r for r in result.rows if r.sampler == sampler and r.mask == name]
            fd = [r.scores["fd_pca"] for r in rows]
            axes[0].errorbar([r.steps for r in rows], [e.value for e in fd], yerr=_errors(fd), fmt="o" + style,
                             color=colors[sampler], capsize=2,
                             label=f"{SAMPLERS[sampler].label}, {name} mask")
            axes[1].plot(PAPER_STEPS, PAPER_FID[sampler, name], "o" + style, color=colors[sampler],
                         label=f"{SAMPLERS[sampler].label}, {name} mask")
    axes[0].set(xscale="log", xlabel="steps", ylabel="FD-PCA to the training digits (lower: realistic)",
                title=f"ours: digits DDPM, {result.settings['n']} held-out digits")
    axes[1].set(xscale="log", xlabel="steps", ylabel="FID (lower: realistic)",
                title="the paper's Table 2: SD 1.5 on Places")
    for ax in axes:
        ax.minorticks_off()
        ax.set_xticks(PAPER_STEPS, [str(k) for k in PAPER_STEPS])
        ax.legend(fontsize=7)
    fig.suptitle("Inpainting: SDE (DDPM) against ODE (DDIM), 95% bootstrap intervals", fontsize=11)
    fig.tight_layout()
    return fig


def inpainting_examples_figure(examples: dict[str, torch.Tensor], steps: int, k: int = 8):
    """For k digits: the input, each mask (white = the hole to fill) and the ODE and SDE inpaintings at ``steps``."""
    from sdelab.reproduce.inpainting import MASKS

    columns = [("input", examples["input"])]
    for name in MASKS:
        columns += [(f"{name} mask\n(white: hole)", examples[f"mask_{name}"].float()),
                    (f"ODE\n{name}", examples[f"ode_{name}_{steps}"]),
                    (f"SDE\n{name}", examples[f"sde_{name}_{steps}"])]
    k = min(k, len(examples["input"]))
    fig, axes = digit_columns(columns, k, cell=(1.1, 1.1))
    for j, (title, images) in enumerate(columns):
        if "mask" in title:
            _masks_column(axes, j, images)
        for sampler in ("ODE", "SDE"):
            if title.startswith(sampler):
                axes[0, j].title.set_color(COLOURS[sampler.lower()])
    fig.tight_layout(pad=0.3)
    return fig


def inpainting_differences_figure(result):
    """The claim itself: SDE - ODE per mask and step count, paired image by image, with 95% intervals against 0
    (``difference_plot``), for FD-PCA and for the fraction of digits whose class is kept."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 0.5 + 0.32 * len(result.differences)), sharey=True)
    for ax, (key, label) in zip(axes, [("fd_pca", "FD-PCA: SDE - ODE (below 0: the SDE is more realistic)"),
                                       ("class_kept", "class kept: SDE - ODE (above 0: the SDE keeps more)")],
                                strict=True):
        difference_plot(ax, {f"{d.mask} mask, {d.steps} steps": d.sde_minus_ode[key] for d in result.differences},
                        label, colour=COLOURS["sde"])
    fig.suptitle("Inpainting: SDE - ODE on the same digits, masks and noise (paired 95% bootstrap intervals)",
                 fontsize=10)
    fig.tight_layout()
    return fig
# ---- image-to-image (sdelab.reproduce.i2i) -----------------------------------------------------------------------


def i2i_curves_figure(result):
    """DiffEdit: FD-PCA and the target fraction against t0; SDEdit: FD-PCA against the distance to the input."""
    import matplotlib.pyplot as plt

    from sdelab.reproduce.i2i import EDITS, SHIFT

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for name in EDITS["diffedit"]:
        rows = [r for r in result.rows if r.edit == "diffedit" and r.sampler == name]
        t0, label = [r.t0 for r in rows], f"DiffEdit, {SAMPLERS[name].label}"
        for ax, key in zip(axes[:2], ("fd_pca", "target"), strict=True):
            y = [r.scores[key] for r in rows]
            ax.errorbar(t0, [e.value for e in y], yerr=_errors(y), fmt="o-", color=COLOURS[name], capsize=2,
                        label=label)
    axes[0].set(xlabel="t0 (encode ratio)", ylabel="FD-PCA to the training digits (lower: realistic)",
                title="DiffEdit: realism")
    axes[1].set(xlabel="t0 (encode ratio)", ylabel="fraction judged as the target class",
                title="DiffEdit: edit success")
    for name in EDITS["sdedit"]:
        rows = [r for r in result.rows if r.edit == "sdedit" and r.sampler == name]
        xy = [(r.scores["distance"].value, r.scores["fd_pca"].value) for r in rows]
        axes[2].plot(*zip(*xy, strict=True), "o-", color=COLOURS[name], label=f"SDEdit, {SAMPLERS[name].label}")
        for r, point in zip(rows, xy, strict=True):
            axes[2].annotate(f"{r.t0}", point, fontsize=7, xytext=(3, 3), textcoords="offset points",
                             color=COLOURS[name])
    axes[2].set(xlabel="mean |output - input| (lower: faithful)", ylabel="FD-PCA (lower: realistic)",
                title="SDEdit: realism against faithfulness (labels: t0)")
    for ax in axes:
        ax.legend(fontsize=8)
    s = result.settings
    fig.suptitle(f"Image-to-image on the class-conditional digits model, k -> k + {SHIFT} (mod 10), "
                 f"cfg {s['guidance']:g}, {s['steps']} steps", fontsize=11)
    fig.tight_layout()
    return fig


def i2i_examples_figure(examples: dict, t0s, k: int = 6):
    """For k digits: the input with its DiffEdit mask (white = editable), then DiffEdit's ODE and Cycle-SDE edits at
    each t0."""
    k = min(k, len(examples["input"]))
    columns = [("input", examples["input"]), ("DiffEdit mask\n(white: edited)", examples["mask"].float())]
    for t0 in t0s:
        columns += [(f"ODE\nt0={t0}", examples[f"diffedit_ode_{t0}"]),
                    (f"Cycle-SDE\nt0={t0}", examples[f"diffedit_cycle-sde_{t0}"])]
    fig, axes = digit_columns(columns, k, cell=(1.05, 1.15), pad=0.5)
    _masks_column(axes, 1, examples["mask"])
    for j, (title, _) in enumerate(columns[2:], start=2):
        axes[0, j].title.set_color(COLOURS["ode" if title.startswith("ODE") else "cycle-sde"])
    for i in range(k):
        axes[i, 0].set_ylabel(f"{int(examples['source'][i])} -> {int(examples['target'][i])}", fontsize=8)
    fig.tight_layout(pad=0.3)
    return fig


def i2i_differences_figure(result, levels: dict | None = None):
    """The claims themselves: each sampler minus the ODE, paired image by image, with 95% intervals against 0
    (``difference_plot``): one column per edit and sampler, one row per measure (FD-PCA, judged as target,
    distance to the input). levels: {t0: label}, e.g. the Stable Diffusion t0 with the same signal, added to the rows'
    names."""
    import matplotlib.pyplot as plt

    from sdelab.reproduce.i2i import LABELS

    pairs = list(dict.fromkeys((d.edit, d.sampler) for d in result.differences))
    measures = [("fd_pca", "FD-PCA (below 0: more realistic)"), ("target", "judged as target (above 0: edits more)"),
                ("distance", "distance to input (below 0: more faithful)")]
    t0s = sorted({d.t0 for d in result.differences})
    height = 1.0 + len(measures) * (0.5 + 0.3 * len(t0s))
    fig, axes = plt.subplots(len(measures), len(pairs), figsize=(3.3 * len(pairs) + 0.8, height),
                             sharey=True, squeeze=False)
    for col, (edit, sampler) in enumerate(pairs):
        rows = {d.t0: d.minus_ode for d in result.differences if (d.edit, d.sampler) == (edit, sampler)}
        for row, (key, label) in enumerate(measures):
            ax = axes[row, col]
            names = {f"t0={t0}" + (f" ({levels[t0]})" if levels and t0 in levels else ""): rows[t0][key] for t0 in t0s}
            difference_plot(ax, names, label if col == 0 else label.split(" (")[0], colour=COLOURS[sampler])
            ax.xaxis.label.set_fontsize(8)
            ax.tick_params(labelsize=7)
        axes[0, col].set_title(f"{LABELS[edit]}: {SAMPLERS[sampler].label} - ODE", fontsize=9,
                               color=COLOURS[sampler])
    fig.suptitle("Image-to-image: each sampler minus the ODE on the same digits (paired 95% bootstrap intervals)",
                 fontsize=10)
    fig.tight_layout()
    return fig

# ---- the theorems on images (sdelab.reproduce.image_gap) ---------------------------------------------------------
GAP_LABELS = {name: s.label for name, s in SAMPLERS.items()} | {"ode-inversion": "ODE, DDIM-inverted start"}


def gap_figure(result, edits=None):
    """FD (log scale) and C2ST against t for every curve, one column per edit, and in a world with a judge (the
    shapes) first a row of the validity rate; the grey band is the noise floor (the unedited population). Lines: means
    over the seeds; bands: the seeds' widest 95% bootstrap intervals. Sampling runs left to right (t0 -> 0)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    from sdelab.reproduce.image_gap import CURVES, summary

    s = summary(result)
    st = result.settings
    edits = list(st["edits"] if edits is None else edits)
    ts = st["checkpoints"]
    stats = (["valid"] if "valid" in st else []) + ["fd_pca", "c2st"]
    digits = st.get("world", "digits") == "digits"
    fig, axes = plt.subplots(len(stats), len(edits), figsize=(3.3 * len(edits) + 0.6, 3.2 * len(stats)), sharex=True,
                             squeeze=False)
    for col, name in enumerate(edits):
        for row, stat in enumerate(stats):
            ax = axes[row, col]
            floor = [s["ode", name, t][f"{stat}_floor"] for t in ts]
            ax.fill_between(ts, [e.low for e in floor], [e.high for e in floor], color="0.6", alpha=0.35, lw=0)
            ax.plot(ts, [e.value for e in floor], color="0.4", lw=1, label="floor (unedited)")
            for curve in CURVES:
                entries = [s[curve, name, t][stat] for t in ts]
                ax.fill_between(ts, [e.low for e in entries], [e.high for e in entries], color=COLOURS[curve],
                                alpha=0.2, lw=0)
                ax.plot(ts, [e.value for e in entries], "o-", ms=2.5, color=COLOURS[curve],
                        label=GAP_LABELS[curve])
            if row == 0:
                ax.set(title=f"edit: {name}")
            if stat == "fd_pca":
                ax.set(yscale="log")
                ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
                ax.yaxis.set_minor_formatter(NullFormatter())
            elif stat == "c2st":
                ax.axhline(0.5, color="k", lw=0.5, ls=":")
                ax.set(xlabel="t (timestep; sampling runs left to right)", ylim=(0.4, 1.01))
            else:
                ax.set(ylim=(-0.02, 1.02))
    axes[0, 0].invert_xaxis()  # shared by every panel
    labels = {"valid": "valid (judge on decoded x0_hat)",
              "fd_pca": "FD-PCA to q_t (training digits noised)" if digits else "FD-PCA to q_t (scenes noised)",
              "c2st": "C2ST accuracy vs q_t (0.5 = same)"}
    for row, stat in enumerate(stats):
        axes[row, 0].set_ylabel(labels[stat])
    axes[0, 0].legend(fontsize=7)
    model = "the digits DDPM" if digits else f"the shapes model ({st['model']})"
    title = (f"The edit's gap along the chains on {model} (n={st['n']}, t0={st['t0']}, {st['steps']} steps, seeds "
             f"{st['seeds']}; mean over seeds, bands = widest 95% bootstrap interval)")
    fig.suptitle(textwrap.fill(title, int(11 * fig.get_figwidth())), fontsize=10)  # one line where it fits
    fig.tight_layout()
    return fig


def exact_vs_image_figure(exact: dict, result):
    """Top: the exact KL(p~_t || p_t) of ``exact_analogues`` (ODE and SDE) for each 1-D analogue; bottom: the C2ST of
    the matching image edit for the ODE, the SDE and Cycle-SDE, beside the floor (grey). Columns: the edits of
    ``exact`` ({(edit, eta): ExactChain}); sampling runs left to right (t0 -> 0)."""
    import matplotlib.pyplot as plt

    from sdelab.reproduce.image_gap import summary

    s, ts = summary(result), result.settings["checkpoints"]
    names = list(dict.fromkeys(name for name, _ in exact))
    fig, axes = plt.subplots(2, len(names), figsize=(13 / 3 * len(names), 6.2), sharex=True, squeeze=False)
    for j, name in enumerate(names):
        for eta, curve in [(0.0, "ode"), (1.0, "sde")]:
            chain = exact[name, eta]
            axes[0, j].plot(chain.t, chain.kl, color=COLOURS[curve], label=f"{SAMPLERS[curve].label} (exact)")
        axes[0, j].set(yscale="log", title=f"1-D analogue of '{name}'",
                       ylabel="KL(p~_t || p_t), exact" if j == 0 else "")
        axes[1, j].plot(ts, [s["ode", name, t]["c2st_floor"].value for t in ts], color="0.5", lw=3, alpha=0.5,
                        label="floor (unedited)")
        for curve in ("ode", "sde", "cycle-sde"):
            axes[1, j].plot(ts, [s[curve, name, t]["c2st"].value for t in ts], "o-", ms=3, color=COLOURS[curve],
                            label=GAP_LABELS[curve])
        axes[1, j].set(title=f"digits: '{name}'", xlabel="t (timestep)", ylim=(0.4, 1.01),
                       ylabel="C2ST accuracy vs q_t" if j == 0 else "")
    for ax in axes[:, 0]:
        ax.legend(fontsize=8)
    axes[0, 0].invert_xaxis()  # shared by every panel
    fig.tight_layout()
    return fig


def states_figure(columns: list[tuple[str, str, torch.Tensor]], model, k: int = 6):
    """k images per column, decoded from the model's scale and drawn ink dark (digits): ``columns`` is a list of
    (title, role, states (n, c, S, S)); a column's title takes its role's colour (``COLOURS``: a sampler, "input").
    The close looks of notebook 10. Returns the figure."""
    fig, axes = digit_columns([(title, model.decode(x)) for title, _, x in columns], k, cell=(1.05, 1.1), pad=0.6)
    for j, (_, role, _) in enumerate(columns):
        axes[0, j].title.set_color(COLOURS.get(role, "k"))
    fig.tight_layout(pad=0.3)
    return fig


# ---- sample quality (sdelab.reproduce.quality) -------------------------------------------------------------------
def samples_figure(grids: dict[str, torch.Tensor], cols: int = 8):
    """One panel per image set (n, 1, 16, 16), drawn as a grid of cols columns (ink black on white)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(grids), figsize=(2.4 * len(grids), 2.7))
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.07, top=0.9, wspace=0.06)
    for ax, (name, images) in zip(np.atleast_1d(axes), grids.items(), strict=True):
        rows = len(images) // cols
        tiles = F.pad(images[: rows * cols, 0].cpu(), (1, 1, 1, 1))  # (rows * cols, 18, 18): a blank border
        tiles = tiles.reshape(rows, cols, 18, 18).permute(0, 2, 1, 3).reshape(rows * 18, cols * 18)
        ax.imshow(tiles.numpy(), cmap=DIGIT_CMAP, vmin=0, vmax=1)
        ax.set_title(textwrap.fill(name, 26), fontsize=8)
        ax.axis("off")
    return fig


def shapes_drag_figure(result):
    """Realism (the judge's valid fraction) against the drag done (success) over t0, ODE-Drag and SDE-Drag, for every
    mask and copy radius; the input, the copy-paste and the ground truth as reference points."""
    import matplotlib.pyplot as plt

    from sdelab.reproduce.drag_shapes import MASKS, RADII

    colors = {m: COLOURS[m] for m in ["input", "copy-paste", "ode-drag", "sde-drag", "truth"]}
    fig, axes = plt.subplots(len(MASKS), len(RADII), figsize=(10, 7.6), sharex=True, sharey=True, squeeze=False)
    for (row, mask), (col, radius) in ((m, r) for m in enumerate(MASKS) for r in enumerate(RADII)):
        ax = axes[row, col]
        for method, color in colors.items():
            rows = [r for r in result.rows if r.method == method and r.mask in (mask, None)
                    and r.radius in (radius, None)]
            xs, ys = [r.scores["success"] for r in rows], [r.scores["valid"] for r in rows]
            ax.errorbar([e.value for e in xs], [e.value for e in ys], xerr=_errors(xs), yerr=_errors(ys),
                        fmt="o-" if len(rows) > 1 else "s", color=color, capsize=2,
                        label=EDITOR_LABELS.get(method, method))
            for r, x, y in zip(rows, xs, ys, strict=True):
                if r.t0 is not None:
                    ax.annotate(f"{r.t0}", (x.value, y.value), fontsize=7, xytext=(3, 3), textcoords="offset points",
                                color=color)
        ax.set(title=f"mask: {mask}, copy radius: {radius}", xlim=(-0.05, 1.05), ylim=(-0.05, 1.05),
               xlabel="success (object at the target, kind kept, valid)" if row == len(MASKS) - 1 else "",
               ylabel="valid scenes (realism)" if col == 0 else "")
    axes[0, 0].legend(fontsize=8, loc="center right")
    fig.suptitle("Drag on the shapes model: realism against the drag done, t0 marked (95% bootstrap intervals)",
                 fontsize=11)
    fig.tight_layout()
    return fig


def shapes_examples_figure(examples: dict[str, torch.Tensor]):
    """The first scenes: input, copy-paste, ODE-Drag and SDE-Drag at every t0, and the ground truth, in columns (the
    run's setting without a mask and with the default copy window), each title in its method's colour."""
    import matplotlib.pyplot as plt

    columns = list(examples)
    k = len(examples["input"])
    fig, axes = plt.subplots(k, len(columns), figsize=(1.05 * len(columns), 1.1 * k), squeeze=False)
    for col, name in enumerate(columns):
        for row in range(k):
            ax = axes[row, col]
            ax.imshow(examples[name][row].permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
            ax.set(xticks=[], yticks=[])
        method, _, rest = name.partition(" ")
        title = " ".join([EDITOR_LABELS.get(method, method), rest]).strip().replace(" t0", "\nt0")
        axes[0, col].set_title(title, fontsize=7, color=COLOURS.get(name.split(" ")[0], "k"))
    fig.suptitle("The first scenes of the run: no mask, the default copy window (half-size 2 px)", fontsize=9)
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))  # room for the suptitle
    return fig


SCENE_ROLES = {"input": "input", "copy-paste": "copy-paste", "ODE-Drag": "ode-drag", "SDE-Drag": "sde-drag",
               "truth": "truth"}


def shapes_scene_figure(shown: dict, source, target, title: str | None = None):
    """One drag of one scene (``sdelab.reproduce.drag_shapes.drag_scene``'s {name: (image, parse)}): every image in a
    row, titled with its name in the course's colour and the judge's verdict, the drag drawn on the input as an arrow.
    A drag whose truth is left out (no valid scene answers it) says so in the last panel."""
    import matplotlib.pyplot as plt

    names = [n for n in SCENE_ROLES if n in shown or n == "truth"]
    fig, axes = plt.subplots(1, len(names), figsize=(2.1 * len(names), 2.6))
    for ax, name in zip(axes, names, strict=True):
        ax.set(xticks=[], yticks=[])
        if name not in shown:
            ax.text(0.5, 0.5, "no valid scene\nanswers this drag", ha="center", va="center", fontsize=8)
            ax.set_title("truth", fontsize=9, color=COLOURS["truth"])
            continue
        image, read = shown[name]
        ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
        ax.set_title(f"{name}\n{'valid' if read.valid else 'invalid'}", fontsize=9, color=COLOURS[SCENE_ROLES[name]])
    axes[0].annotate("", xy=tuple(target), xytext=tuple(source), arrowprops=dict(arrowstyle="->", color="w", lw=1.5))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.25 / fig.get_figheight()) if title else (0, 0, 1, 1))  # room for the title
    return fig


def shapes_differences_figure(result, measures=("success", "valid")):
    """SDE-Drag minus ODE-Drag, paired scene by scene (``ShapesDragResult.comparisons``), with 95% intervals: one
    panel per measure and mask, one row per copy window and t0 (``sdelab.plotting.difference_plot``)."""
    import matplotlib.pyplot as plt

    from sdelab.reproduce.drag_shapes import MASKS

    fig, axes = plt.subplots(len(measures), len(MASKS), figsize=(10, 3.4 * len(measures)),
                             squeeze=False)
    for row, measure in enumerate(measures):
        for col, mask in enumerate(MASKS):
            diffs = {f"{c.radius} window, t0={c.t0}": c.sde_minus_ode[measure] for c in result.comparisons
                     if c.mask == mask}
            difference_plot(axes[row, col], diffs, f"SDE-Drag minus ODE-Drag: {measure}")
            axes[row, col].set_title(f"mask: {mask}", fontsize=10)
    fig.suptitle("Paired differences per scene, 95% bootstrap intervals: right of 0 favours SDE-Drag", fontsize=11)
    fig.tight_layout()
    return fig
