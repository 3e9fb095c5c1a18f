"""python -m sdelab toy-kl: exact ODE/SDE curves, Monte-Carlo Cycle-SDE, output formats and errors."""

import json

import numpy as np
import pytest
import torch
from scipy import stats

from sdelab.__main__ import main
from sdelab.toy.gmm import bimodal_1d
from sdelab.toy.priors import mismatched_prior
from sdelab.toy.toy_kl import quantile_edit, toy_kl


def run_json(capsys, *args) -> dict:
    assert main(["toy-kl", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("sampler", ["ode", "sde"])
def test_json_exact_curves(sampler, capsys):
    out = run_json(capsys, "--sampler", sampler, "--prior", "skewed", "--steps", "30", "--points", "800")
    t, kl = np.array(out["t"]), np.array(out["kl"])
    assert len(t) == len(kl) == 31 and t[0] == 600 and t[-1] == 0 and (np.diff(t) < 0).all()
    if sampler == "ode":
        assert np.abs(kl / kl[0] - 1).max() < 1e-6  # Thm 3.2: flat
    else:
        assert (np.diff(kl) < 0).all() and kl[-1] < 0.5 * kl[0]  # Thm 3.1: decreasing


def test_json_cycle_sde_is_monte_carlo_with_a_band(capsys):
    args = ("--sampler", "cycle-sde", "--prior", "narrow", "--steps", "20", "--samples", "2000", "--checkpoints", "3")
    out = run_json(capsys, *args)
    t, kl = np.array(out["t"]), np.array(out["kl"])
    assert t.tolist() == [600, 300, 0] and len(kl) == len(out["low"]) == len(out["high"]) == 3
    assert (np.array(out["low"]) <= kl).all() and (kl <= np.array(out["high"])).all()
    exact = toy_kl("sde", "narrow", 20, points=800)["kl"]
    assert abs(kl[0] - exact[0]) < 0.1  # at t0 both estimate KL(prior || q_t0) = 0.54
    assert kl[-1] < 0.5 * kl[0]  # Thm 3.3: Cycle-SDE contracts too


def test_table_output(capsys):
    assert main(["toy-kl", "--sampler", "sde", "--prior", "shifted", "--steps", "4", "--points", "400"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "exact" in lines[0] and lines[1].split() == ["t", "KL"]
    rows = [line.split() for line in lines[2:]]
    assert [int(r[0]) for r in rows] == [600, 450, 300, 150, 0]
    assert np.allclose([float(r[1]) for r in rows], toy_kl("sde", "shifted", 4, points=400)["kl"], atol=1e-8)


def test_quantile_edit_maps_q_t0_onto_the_prior(sd_schedule, gen):
    t = torch.tensor(600)
    q_t0 = bimodal_1d().marginal(sd_schedule.alpha(t), sd_schedule.sigma(t))
    x = q_t0.sample(5000, gen)
    edited = quantile_edit(q_t0, mismatched_prior("skewed"))(x)
    assert stats.kstest(edited[:, 0].numpy(), "norm", args=(0.7, 0.8)).pvalue > 0.01
    order = torch.argsort(x[:, 0])
    assert (torch.diff(edited[order, 0]) >= 0).all()  # monotone: the edit keeps the order of the samples
    assert stats.kstest(x[:, 0].numpy(), "norm", args=(0.7, 0.8)).pvalue < 1e-6  # and the test has power


@pytest.mark.parametrize("kwargs, name", [
    (dict(sampler="euler", prior="shifted"), "sampler"),
    (dict(sampler="ode", prior="wide"), "prior"),
    (dict(sampler="ode", prior="shifted", steps=700), "steps"),
    (dict(sampler="ode", prior="shifted", steps=0), "steps"),
    (dict(sampler="ode", prior="shifted", t0=1.5), "t0"),
])
def test_bad_arguments_raise_value_error(kwargs, name):
    with pytest.raises(ValueError, match=name):
        toy_kl(**kwargs)


@pytest.mark.parametrize("args, name", [
    (["--sampler", "ode", "--prior", "shifted", "--steps", "0"], "--steps"),
    (["--sampler", "ode", "--prior", "shifted", "--t0", "0"], "--t0"),
    (["--sampler", "odes", "--prior", "shifted"], "--sampler"),
    (["--sampler", "ode", "--prior", "flat"], "--prior"),
])
def test_bad_command_lines_exit_with_a_usage_error(args, name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["toy-kl", *args])
    assert exit_info.value.code == 2 and name in capsys.readouterr().err


def test_impossible_combination_exits_with_the_reason():
    with pytest.raises(SystemExit, match="steps=700 is too many"):
        main(["toy-kl", "--sampler", "sde", "--prior", "shifted", "--steps", "700"])
