"""Theorems 3.1-3.3 by sampling: KL(p~_t || p_t) falls for SDE and Cycle-SDE, stays for the ODE.

Small but decisive sizes (fixed seeds): the edit shifts the noisy samples at t0 = 0.6 on Stable Diffusion's
schedule (by 1.5 in 1-D, by (1, 0) in 2-D), KL(p~_t0 || p_t0) ~ 0.3-0.7; the bands are 95% half-sampling bands.
"""

import pytest
import torch

from sdelab.samplers import SAMPLERS, sampler_at
from sdelab.toy.gmm import bimodal_1d, ring_2d
from sdelab.toy.montecarlo import kl_curve, sampler_kwargs, sweep
from sdelab.toy.priors import mismatched_prior, shift

SIZE = dict(n=3000, steps=30, t0=0.6, checkpoints=2)


def shift_2d(x, g):
    return shift(x, [1.0, 0.0])


def shift_1d(x, g):
    return shift(x, 1.5)


def curve(q0, schedule, edit, sampler, seed=0, **kwargs):
    return kl_curve(q0, schedule, edit, generator=torch.Generator().manual_seed(seed), **(SIZE | kwargs),
                    **sampler_kwargs(sampler))


def test_sde_contracts_and_ode_preserves_kl_in_2d(sd_schedule):
    ode = curve(ring_2d(), sd_schedule, shift_2d, "ode")
    sde = curve(ring_2d(), sd_schedule, shift_2d, "sde")
    assert sde.times.tolist() == [600, 0] and ode.sampler == "ode" and sde.sampler == "sde"
    assert sde.kl[0] > 0.25 and ode.kl[0] > 0.25
    assert sde.high[1] < sde.low[0]  # Thm 3.1: below the t0 value beyond the band
    assert ode.low[0] < ode.kl[1] < ode.high[0]  # Thm 3.2: within the band of the t0 value
    assert abs(ode.kl[1] - ode.kl[0]) < 0.5 * (sde.kl[0] - sde.kl[1])


@pytest.mark.parametrize("q0, edit", [(bimodal_1d(), shift_1d), (ring_2d(), shift_2d)], ids=["1d", "2d"])
def test_cycle_sde_contracts(q0, edit, sd_schedule):
    cycle = curve(q0, sd_schedule, edit, "cycle-sde")
    assert cycle.sampler == "cycle-sde"
    assert cycle.kl[0] > 0.25
    assert cycle.high[1] < cycle.low[0]  # Thm 3.3


def test_kl_at_zero_falls_as_eta_grows(sd_schedule):
    curves = sweep(bimodal_1d(), sd_schedule, shift_1d, "eta", [0.0, 0.5, 1.0], seed=3, **(SIZE | dict(n=5000)))
    assert [c.sampler for c in curves] == ["ode", "eta=0.5", "sde"]
    assert curves[0].kl[0] == curves[1].kl[0] == curves[2].kl[0]  # common random numbers: the same start
    for more_noise, less_noise in zip(curves[1:], curves[:-1], strict=True):
        assert more_noise.high[-1] < less_noise.low[-1]


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_without_an_edit_kl_is_zero_within_the_band(sampler, sd_schedule):
    c = curve(bimodal_1d(), sd_schedule, lambda x, g: x, sampler, checkpoints=3)
    assert len(c.times) == 3 and len(c.edited) == len(c.reference) == 3
    assert all(lo < 0 < hi for lo, hi in zip(c.low, c.high, strict=True))
    assert (c.high - c.low).max() < 0.15


def test_mismatched_prior_edit_and_exact_reference(sd_schedule):
    prior = mismatched_prior("shifted")
    c = curve(bimodal_1d(), sd_schedule, lambda x, g: prior.sample(len(x), g), "sde", reference="exact")
    assert c.edited[0].shape == (3000, 1)
    assert c.high[-1] < c.low[0]


def test_steps_and_t0_sweeps_return_one_curve_per_value(sd_schedule):
    by_steps = sweep(bimodal_1d(), sd_schedule, shift_1d, "steps", [5, 10], n=200, n_boot=5)
    by_t0 = sweep(bimodal_1d(), sd_schedule, shift_1d, "t0", [0.3, 0.6], n=200, steps=5, n_boot=5)
    assert [c.steps for c in by_steps] == [5, 10] and [c.t0 for c in by_t0] == [0.3, 0.6]
    assert [c.times[0].item() for c in by_t0] == [300, 600]


@pytest.mark.parametrize("kwargs, match", [
    (dict(eta=-0.1), "eta must lie in"),
    (dict(eta=1.5), "eta must lie in"),
    (dict(eta=0.0, cycle=True), "eta must be > 0 for Cycle-SDE"),
    (dict(n=1), "n must be"),
    (dict(checkpoints=1), "checkpoints must be"),
    (dict(checkpoints=12), "checkpoints must be"),
    (dict(reference="q_t"), "reference must be"),
    (dict(k=0), "k must be"),
    (dict(n=8), "x must hold at least 12"),
    (dict(steps=0), "steps must be a positive integer"),
    (dict(t0=1.5), "t0 must lie in"),
])
def test_bad_arguments_raise_value_error_naming_them(kwargs, match, sd_schedule):
    args = dict(generator=torch.Generator().manual_seed(0), steps=10, n=100, n_boot=3) | kwargs
    with pytest.raises(ValueError, match=match):
        kl_curve(bimodal_1d(), sd_schedule, shift_1d, **args)


def test_bad_edit_and_sweep_name_raise(sd_schedule):
    with pytest.raises(ValueError, match="edit must return the shape"):
        kl_curve(bimodal_1d(), sd_schedule, lambda x, g: x[:10], generator=torch.Generator(), steps=5, n=50,
                  checkpoints=2)
    with pytest.raises(ValueError, match="name must be"):
        sweep(bimodal_1d(), sd_schedule, shift_1d, "k", [1, 2])


def test_sampler_names():
    name = lambda eta, cycle=False: sampler_at(eta, cycle).name  # noqa: E731
    assert [name(0.0), name(1), name(0.25)] == ["ode", "sde", "eta=0.25"]
    assert [name(1.0, cycle=True), name(0.5, cycle=True)] == ["cycle-sde", "cycle-sde eta=0.5"]
    # one vocabulary
    assert [sampler_at(kw["eta"], kw["cycle"]).name for kw in map(sampler_kwargs, SAMPLERS)] == list(SAMPLERS)
    assert [sampler_at(0.0).label, sampler_at(0.5, True).label] == ["ODE", "Cycle-SDE eta = 0.5"]
    with pytest.raises(ValueError, match="sampler must be one of"):
        sampler_kwargs("ODE")
