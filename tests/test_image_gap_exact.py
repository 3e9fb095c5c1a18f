"""Notebook 10's helpers: the exact 1-D analogues of the image edits, and the figures beside them in the course's
colours."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from sdelab.eval.bootstrap import Estimate  # noqa: E402
from sdelab.models.pixel import load_digits_model  # noqa: E402
from sdelab.plotting import COLOURS  # noqa: E402
from sdelab.reproduce.figures import exact_vs_image_figure, states_figure  # noqa: E402
from sdelab.reproduce.image_gap import GapResult, GapRow, exact_analogues  # noqa: E402
from sdelab.schedules import time_grid  # noqa: E402


def _exact():
    schedule = load_digits_model().schedule
    return exact_analogues(schedule, time_grid(schedule, 12, 0.6), x_points=400)


def test_exact_analogues_ode_keeps_the_kl_and_the_sde_lowers_it():
    exact = _exact()
    assert set(exact) == {(name, eta) for name in ("contrast", "shift", "blur") for eta in (0.0, 1.0)}
    for name in ("contrast", "shift", "blur"):
        ode, sde = exact[name, 0.0], exact[name, 1.0]
        assert ode.kl[0] > 0.01 and ode.kl[0] == sde.kl[0]  # the same edited start, off q_t0
        assert np.allclose(ode.kl, ode.kl[0], rtol=0.02)  # Theorem 3.2: the flow keeps the KL
        assert sde.kl[-1] < 0.5 * sde.kl[0]  # Theorem 3.1: the SDE lowers it


def _result(ts=(600, 0)):
    rows = []
    for curve in ("ode", "sde", "cycle-sde", "ode-inversion"):
        for name in ("contrast", "shift", "blur"):
            for t in ts:
                e = Estimate(0.6, 0.55, 0.65)
                rows.append(GapRow(curve, name, 0, t, {"fd_pca": e, "c2st": e, "fd_pca_floor": e, "c2st_floor": e}))
    return GapResult(rows, {"checkpoints": list(ts)})


def test_exact_vs_image_figure_draws_each_sampler_in_its_colour():
    fig = exact_vs_image_figure(_exact(), _result())
    axes = np.array(fig.axes).reshape(2, 3)
    top = [to_rgba(line.get_color()) for line in axes[0, 0].get_lines()]
    bottom = [to_rgba(line.get_color()) for line in axes[1, 0].get_lines()]
    assert top == [to_rgba(COLOURS["ode"]), to_rgba(COLOURS["sde"])]
    assert bottom[1:] == [to_rgba(COLOURS[c]) for c in ("ode", "sde", "cycle-sde")]
    assert axes[0, 0].get_xlim()[0] > axes[0, 0].get_xlim()[1]  # t0 on the left


def test_states_figure_draws_ink_dark_and_titles_in_the_samplers_colours():
    model = load_digits_model()
    x = torch.full((2, 1, 16, 16), -1.0)  # blank paper
    x[:, :, 4:12, 7:9] = 1.0  # one stroke of ink
    fig = states_figure([("input", "input", x), ("ODE", "ode", x), ("SDE", "sde", x)], model, k=2)
    axes = np.array(fig.axes).reshape(2, 3)
    assert [to_rgba(ax.title.get_color()) for ax in axes[0]] == [to_rgba(COLOURS[c]) for c in ("input", "ode", "sde")]
    rgba = axes[0, 1].get_images()[0].to_rgba(axes[0, 1].get_images()[0].get_array())
    assert rgba[8, 8, :3].max() < 0.2 and rgba[0, 0, :3].min() > 0.8  # ink dark, paper white


def test_roughness_sees_speckle_not_smooth_ink():
    from sdelab.reproduce.image_gap import roughness

    flat = torch.zeros(3, 1, 16, 16)
    assert roughness(flat) == 0.0
    ramp = torch.linspace(-1, 1, 16).expand(3, 1, 16, 16)  # a smooth gradient along the columns only
    assert abs(roughness(ramp) - (2 / 15) ** 2 / 2) < 1e-7
    noise = flat + 0.3 * torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    assert abs(roughness(noise) - 2 * 0.3**2) < 0.03  # two independent pixels
    assert roughness(noise) > 10 * roughness(ramp)
