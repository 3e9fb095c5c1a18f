"""python -m sdelab reproduce image-gap: the statistics on known cases, the edits, the null check, bad input."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from sdelab.__main__ import main
from sdelab.cli.reproduce_image_gap import EDITS as CLI_EDITS
from sdelab.data.digits import digits_dataset, drag_cases
from sdelab.edit.drag import copy_paste
from sdelab.eval.c2st import c2st
from sdelab.eval.frechet import frechet_distance
from sdelab.eval.judge import DigitsJudge
from sdelab.models.pixel import load_digits_model
from sdelab.reproduce.image_gap import CURVES, EDITS, checkpoints, edit, features, gap, image_gap
from sdelab.sampling import CycleNoise, StoredNoise, cycle_sde_noises, denoise, forward_chain
from sdelab.schedules import time_grid


# ---- the statistics ----------------------------------------------------------------------------------------------
def test_c2st_is_chance_on_one_population_and_near_one_on_different_ones():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 400, 16))
    accuracy, correct = c2st(a, b)
    assert abs(accuracy - 0.5) < 0.06 and correct.shape == (800,) and correct.mean() == accuracy
    assert c2st(a, a + 2.0)[0] > 0.99  # a mean shift
    # equal means, wider spread: only the squared features can see it (a classifier on x alone stays near 0.5)
    assert c2st(a, 1.5 * rng.normal(size=(400, 16)))[0] > 0.85


def test_c2st_on_digits_features():
    train = 2 * digits_dataset(split="train") - 1  # (1347, 1, 16, 16) in the model's scale
    f = features(DigitsJudge.fit(), train)[np.random.default_rng(0).permutation(len(train))]
    assert f.shape == (1347, 32)
    assert abs(c2st(f[:600], f[600:1200])[0] - 0.5) < 0.06  # two draws of the training digits
    assert c2st(f[:600], 1.3 * f[600:1200])[0] > 0.9  # the contrast edit on clean digits


def test_frechet_distance_known_cases_and_the_gap_intervals():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(300, 8))
    assert abs(frechet_distance(a, a)) < 1e-9  # identical sets
    shift = rng.normal(size=8)
    assert frechet_distance(a, a + shift) == pytest.approx((shift**2).sum(), rel=1e-6)  # equal covariances
    same = gap(a, a, reps=50)
    assert abs(same["fd_pca"].value) < 1e-9 and same["fd_pca"].low <= same["fd_pca"].value <= same["fd_pca"].high
    far = gap(a + 1.0, rng.normal(size=(600, 8)), reps=50)
    for name in ("fd_pca", "c2st"):
        e = far[name]
        assert e.low <= e.value <= e.high and e.high - e.low > 0
    assert far["fd_pca"].value == pytest.approx(8, rel=0.25) and far["c2st"].value > 0.9


# ---- the edits ---------------------------------------------------------------------------------------------------
def test_edits_do_what_their_names_say():
    x = torch.randn(6, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    none = edit("none", x)
    assert torch.equal(none, x) and none is not x
    assert torch.allclose(edit("contrast", x), 1.3 * x)
    assert torch.equal(edit("shift", x)[..., 2:], x[..., :-2]) and torch.equal(edit("shift", x)[..., :2], x[..., -2:])
    # a Gaussian blur of sigma 1 px keeps 1 / (4 pi sigma^2) of white noise's variance (away from the border)
    noise = torch.randn(200, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    assert edit("blur", noise)[..., 4:12, 4:12].var().item() == pytest.approx(1 / (4 * math.pi), rel=0.1)
    cases = drag_cases(6, radius=2, seed=0)
    dragged = edit("drag", x, cases, seed=3)
    gen = torch.Generator().manual_seed(3)
    assert torch.equal(dragged, copy_paste(x, cases.source[:, None], cases.target[:, None], 2, 1.1, 0.3, gen))
    for b, ((sx, sy), (tx, ty)) in enumerate(zip(cases.source.tolist(), cases.target.tolist(), strict=True)):
        assert torch.allclose(dragged[b, :, ty - 2:ty + 2, tx - 2:tx + 2], 1.1 * x[b, :, sy - 2:sy + 2, sx - 2:sx + 2])


def test_cycle_sde_noises_computed_once_are_the_replayed_ones():
    # the experiment computes the Eq. 8 noises once for every edit; replay computes them on the fly: the same chain
    model, x0 = load_digits_model(), 2 * digits_dataset(split="test")[:4] - 1
    grid = time_grid(model.schedule, 5, 0.6)
    chain = forward_chain(model.schedule, x0, grid, generator=torch.Generator().manual_seed(0))
    start, eps = edit("contrast", chain[0]), model.eps_model()
    noises = cycle_sde_noises(eps, model.schedule, chain, grid)
    once = denoise(eps, model.schedule, start, grid, eta=1.0, noise=StoredNoise(noises))
    replayed = denoise(eps, model.schedule, start, grid, eta=1.0, noise=CycleNoise(model.schedule, chain, grid))
    assert torch.allclose(once, replayed, atol=1e-5) and not torch.allclose(once, chain[-1], atol=1e-2)


# ---- the experiment at a small size ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    # t0 = 0.3 keeps the grid as fine as the full run's (about 17 timesteps a step) at a third of its cost: with much
    # coarser grids the SDE's own discretisation error becomes detectable (C2ST 0.62 at 12 steps from t0 = 0.6)
    return image_gap(n=100, t0=0.3, intervals=60, edits=("none", "contrast"), seeds=(0,), count=3, reps=40,
                     progress=False)


def _near_floor(r: dict) -> bool:
    """Both statistics within the width of the floor's 95% interval of the floor (the floor: the unedited digits)."""
    s = r.scores
    return all(abs(s[name].value - s[f"{name}_floor"].value) <= s[f"{name}_floor"].high - s[f"{name}_floor"].low
               for name in ("fd_pca", "c2st"))


def test_null_no_edit_stays_at_the_noise_floor_for_every_sampler(small):
    rows = [r for r in small.rows if r.edit == "none" and r.sampler in ("ode", "sde", "cycle-sde")]
    assert {r.t for r in rows} == {300, 150, 0} and len(rows) == 9
    for r in rows:
        assert _near_floor(r), r
    for r in rows:  # Cycle-SDE without an edit retraces the forward chain: the floor's own population
        if r.sampler == "cycle-sde":
            assert r.scores["fd_pca"].value == pytest.approx(r.scores["fd_pca_floor"].value, rel=1e-4)


def test_the_same_check_sees_the_contrast_edit_and_the_ode_keeps_it(small):
    rows = {(r.sampler, r.t): r for r in small.rows if r.edit == "contrast"}
    c2st_of = {key: r.scores["c2st"].value for key, r in rows.items()}
    for sampler in ("ode", "sde", "cycle-sde"):
        assert not _near_floor(rows[sampler, 300]) and c2st_of[sampler, 300] > 0.7
        # one edited start, paired statistics
        assert rows[sampler, 300] == dataclasses.replace(rows["ode", 300], sampler=sampler)
    assert c2st_of["ode", 0] > max(c2st_of["sde", 0], c2st_of["cycle-sde", 0]) + 0.1


def test_cli_json_rows_settings_figure_and_bad_input(capsys, tmp_path):
    argv = ["reproduce", "image-gap", "--n", "20", "--intervals", "5", "--seed", "0", "--repeats", "2", "--edit",
            "none", "drag", "--checkpoints", "2", "--bootstrap", "5", "--workers", "1", "--json",
            "--figures", str(tmp_path)]
    assert main(argv) == 0
    assert (tmp_path / "image_gap_digits.png").is_file()
    out = json.loads(capsys.readouterr().out)
    assert {(r["sampler"], r["edit"], r["seed"], r["t"]) for r in out["rows"]} == {
        (c, e, s, t) for c in CURVES for e in ("none", "drag") for s in (0, 1) for t in (600, 0)}
    keys = {"sampler", "edit", "seed", "t", "scores"}
    assert all(set(r) == keys and set(r["scores"]) == {"fd_pca", "c2st", "fd_pca_floor", "c2st_floor"}
               for r in out["rows"])
    assert out["settings"]["steps"] == 3 and out["settings"]["checkpoints"] == [600, 0]
    assert main(["reproduce", "image-gap", "--n", "451", "--json"]) == 2
    assert "n must lie in [5, 450]" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["reproduce", "image-gap", "--edit", "rotate"])
    assert exit_.value.code == 2
    assert CLI_EDITS == EDITS  # the front end lists the edits without importing torch


def test_bad_input_names_the_argument():
    x, a = torch.zeros(2, 1, 16, 16), np.zeros((10, 3))
    with pytest.raises(ValueError, match="edit must be one of"):
        edit("rotate", x)
    with pytest.raises(ValueError, match="the drag edit needs one drag per image"):
        edit("drag", x)
    with pytest.raises(ValueError, match="a and b must be"):
        c2st(a, np.zeros((11, 3)))
    with pytest.raises(ValueError, match="folds must lie in"):
        c2st(a, a, folds=11)
    with pytest.raises(ValueError, match="reference must be"):
        gap(a, a[:5])
    with pytest.raises(ValueError, match="checkpoints must be >= 2"):
        checkpoints(10, 1)
    with pytest.raises(ValueError, match="edits must be"):
        image_gap(edits=("rotate",))
    with pytest.raises(ValueError, match="t0 must lie in"):
        image_gap(t0=0.0)
