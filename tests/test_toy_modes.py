"""Mode weights and their KL (a data-processing lower bound), the exact between/within split, and the mode drag."""

import numpy as np
import pytest
import torch
from scipy.special import ndtr

from sdelab.schedules import time_grid
from sdelab.toy.editing import mode_drag
from sdelab.toy.exact import exact_chain, kl_on_grid, log_density, split_kl, x_grid
from sdelab.toy.gmm import GaussianMixture, bimodal_1d, ring_2d
from sdelab.toy.modes import categorical_kl, mode_kl, mode_weights, nearest_mode, noised_centers


def test_nearest_mode_and_weights_of_known_points():
    centers = np.array([[-2.0], [2.0]])
    x = np.array([[-3.0], [-0.1], [0.1], [5.0]])
    assert nearest_mode(x, centers).tolist() == [0, 0, 1, 1]
    assert mode_weights(x[:3], centers).tolist() == pytest.approx([2 / 3, 1 / 3])


def test_categorical_kl_known_values():
    assert categorical_kl([0.5, 0.5], [0.5, 0.5]) == 0
    assert categorical_kl([0.75, 0.25], [0.5, 0.5]) == pytest.approx(0.75 * np.log(1.5) + 0.25 * np.log(0.5))
    assert categorical_kl([0.0, 1.0], [0.5, 0.5]) == pytest.approx(np.log(2))  # 0 log 0 = 0
    assert categorical_kl([0.5, 0.5], [1.0, 0.0]) == float("inf")


def test_mode_kl_matches_its_exact_value_and_bounds_the_true_kl():
    # P = 0.75 N(-2) + 0.25 N(2), Q = q_0: the mode KL tends to KL(0.75, 0.25 || 0.5, 0.5) <= KL(P || Q)
    gen = torch.Generator().manual_seed(0)
    p = GaussianMixture.isotropic([0.75, 0.25], [-2.0, 2.0], [0.5, 0.5])
    q = bimodal_1d()
    x, y = p.sample(40_000, gen), q.sample(40_000, gen)
    est, low, high = mode_kl(x, y, q.means)
    right = 0.75 * ndtr(-4) + 0.25 * ndtr(4)  # P's mass nearest to +2, i.e. above 0
    exact = categorical_kl([1 - right, right], [0.5, 0.5])
    assert low < exact < high and high - low < 0.02
    grid = x_grid(2000)
    assert exact <= kl_on_grid(log_density(p, grid), log_density(q, grid), grid) + 1e-9


def test_mode_kl_of_equal_laws_has_the_stated_small_bias():
    # E[plug-in] ~ (K - 1)(1/n + 1/m)/2 for P = Q: K = 8, n = m = 2000 gives 3.5e-3
    q = ring_2d()
    gen = torch.Generator().manual_seed(1)
    estimates = [mode_kl(q.sample(2000, gen), q.sample(2000, gen), q.means, n_boot=2)[0] for _ in range(40)]
    assert np.mean(estimates) == pytest.approx(7 * (2 / 2000) / 2, rel=0.35)


def test_split_kl_adds_up_and_matches_the_mode_weights():
    x = x_grid(2000)
    p = GaussianMixture.isotropic([0.25, 0.5, 0.25], [-2.0, 2.0, 3.0], [0.5, 0.5, 0.5])
    q = bimodal_1d()
    lp, lq = log_density(p, x), log_density(q, x)
    between, within = split_kl(lp, lq, x)
    right = 0.25 * ndtr(-4) + 0.5 * ndtr(4) + 0.25 * ndtr(6)  # p's mass above the cut at 0
    assert between == pytest.approx(categorical_kl([1 - right, right], [0.5, 0.5]), abs=1e-7)
    assert within > 0 and between + within == pytest.approx(kl_on_grid(lp, lq, x))
    # only the weights differ: nothing within, up to the tails that cross the cut (Phi(-4) of each mode)
    w = GaussianMixture.isotropic([0.3, 0.7], [-2.0, 2.0], [0.5, 0.5])
    assert split_kl(log_density(w, x), lq, x)[1] == pytest.approx(0, abs=1e-5)


def test_sde_removes_the_within_part_faster_than_the_between_part(sd_schedule):
    # the t0 trade-off of notebook 04: the drag's artefact (within) fades before the edit (between) does
    q0, x = bimodal_1d(), x_grid(600)
    edited = GaussianMixture.isotropic([0.25, 0.5, 0.25], [-2.0, 2.0, 3.0], [0.5, 0.5, 0.5])
    grid = time_grid(sd_schedule, 40, 0.3)
    start = edited.marginal(sd_schedule.alpha(grid[0]), sd_schedule.sigma(grid[0]))
    ode, sde = (exact_chain(q0, start, sd_schedule, grid, eta, x=x) for eta in (0.0, 1.0))
    b_ode, w_ode = split_kl(ode.log_p_edit[-1], ode.log_p[-1], x)
    b_sde, w_sde = split_kl(sde.log_p_edit[-1], sde.log_p[-1], x)
    assert w_sde < 0.5 * w_ode and b_sde > 0.9 * b_ode


def test_mode_drag_of_cycle_sde_keeps_untouched_samples_and_sde_does_not(sd_schedule):
    q0 = ring_2d()
    runs = {name: mode_drag(q0, sd_schedule, name, 4, 0, t0=0.4, steps=20, n=800,
                            generator=torch.Generator().manual_seed(0)) for name in ("ode", "sde", "cycle-sde")}
    assert runs["cycle-sde"].content_kept == 1.0
    assert runs["sde"].content_kept < 0.8
    for r in runs.values():
        assert 0.05 < r.moved.double().mean() < 0.25  # one mode of eight
        assert 0 <= r.edit_kept <= 1
    # the edit is the content's shift seen at t0: the moved samples' mean moves by alpha_t0 * (4, 0)
    r = runs["cycle-sde"]
    alpha = sd_schedule.alpha(time_grid(sd_schedule, 20, 0.4)[0]).item()
    assert r.x_t0[r.moved].mean(0)[0] - (alpha * r.x0[r.moved]).mean(0)[0] == pytest.approx(4 * alpha, abs=0.15)


def test_small_t0_keeps_the_edit_and_cycle_sde_undoes_it_at_large_t0(sd_schedule):
    small = mode_drag(ring_2d(), sd_schedule, "cycle-sde", 4, 0, t0=0.05, steps=10, n=800,
                      generator=torch.Generator().manual_seed(0))
    assert small.edit_kept > 0.95 and small.edit_undone < 0.05
    # at high noise the replayed noises lead a dragged sample back along its stored chain, to the source mode
    large = mode_drag(ring_2d(), sd_schedule, "cycle-sde", 4, 0, t0=0.8, steps=20, n=800,
                      generator=torch.Generator().manual_seed(0))
    assert large.edit_undone > 0.5 and large.edit_kept < 0.1


def test_noised_centers(sd_schedule):
    q0 = ring_2d()
    assert torch.allclose(noised_centers(q0, sd_schedule, 0), sd_schedule.alpha(torch.tensor(0)).item() * q0.means)


@pytest.mark.parametrize("kwargs, match", [
    (dict(source=8), "source"), (dict(target=-1), "target"), (dict(target=4), "differ"), (dict(n=2), "n must"),
    (dict(t0=0.0), "t0"), (dict(sampler_name="ddim"), "sampler")])
def test_mode_drag_bad_arguments(kwargs, match, sd_schedule):
    args = dict(sampler_name="sde", source=4, target=0, t0=0.5, steps=5, n=100) | kwargs
    with pytest.raises(ValueError, match=match):
        mode_drag(ring_2d(), sd_schedule, args.pop("sampler_name"), args.pop("source"), args.pop("target"),
                  generator=torch.Generator().manual_seed(0), **args)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="sum to 1"):
        categorical_kl([0.5, 0.6], [0.5, 0.5])
    with pytest.raises(ValueError, match="one length"):
        categorical_kl([1.0], [0.5, 0.5])
    with pytest.raises(ValueError, match="dimension"):
        nearest_mode(np.zeros((3, 2)), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="n_boot"):
        mode_kl(np.zeros((10, 1)), np.ones((10, 1)), [[0.0]], n_boot=1)
    with pytest.raises(ValueError, match="at least 4"):
        mode_kl(np.zeros((2, 1)), np.ones((10, 1)), [[0.0]])
