"""python -m sdelab reproduce image-gap --model shapes: the drag's gap and the judge's validity along the chains, on a
random-weight pixel model of the shapes model's shape (no trained weights needed)."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from sdelab.__main__ import main
from sdelab.data.shapes import drag_cases, random_scenes, render_batch
from sdelab.eval.c2st import c2st
from sdelab.eval.frechet import frechet_distance
from sdelab.models.pixel import PixelDiffusion, build_scheduler, build_unet, load_pixel_model
from sdelab.reproduce import image_gap as gap_module
from sdelab.reproduce.image_gap import CURVES, SHAPES_EDITS, ScenesPCA, image_gap_shapes, shapes_valid
from sdelab.sampling import denoise, forward_chain
from sdelab.schedules import time_grid


@pytest.fixture(scope="module")
def random_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("shapes-random")
    torch.manual_seed(0)
    PixelDiffusion(build_unet(32, 3, (16, 32)), build_scheduler("scaled_linear", 0.00085, 0.012),
                   "random").save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def small(random_model):
    # 3 steps from t0 = 0.6 on SD's schedule (600, 400, 200 -> 0 ... ), checkpoints at 600, 200 and 0
    return image_gap_shapes(random_model, n=12, intervals=5, count=3, reps=10, progress=False)


def test_every_curve_edit_and_checkpoint_with_validity_beside_the_floor(small):
    assert {(r.sampler, r.edit, r.seed, r.t) for r in small.rows} == {
        (c, e, 0, t) for c in CURVES for e in SHAPES_EDITS for t in (600, 200, 0)}
    keys = {"fd_pca", "c2st", "valid", "fd_pca_floor", "c2st_floor", "valid_floor"}
    for r in small.rows:
        assert set(r.scores) == keys
        assert all(e.low <= e.high for e in r.scores.values()), r
        assert all(0 <= v <= 1 for k in ("valid", "valid_floor") for v in dataclasses.astuple(r.scores[k]))
    s = small.settings
    assert (s["world"], s["steps"], s["checkpoints"], s["drag"]["radius"]) == ("shapes", 3, [600, 200, 0], 2)
    table = gap_module.markdown(small)
    assert "valid at t=0" in table and "floor (unedited forward chain)" in table


def test_validity_of_the_floor_and_of_the_unedited_chains_outputs(small, random_model):
    rows = {(r.sampler, r.edit, r.t): r.scores for r in small.rows}
    cases = drag_cases(12, seed=0)
    clean = shapes_valid(cases.images).mean()
    assert clean == 1.0  # generator scenes are valid
    assert rows["ode", "none", 0]["valid_floor"].value == clean  # the floor at the data level: the clean scenes
    # Cycle-SDE without an edit retraces the forward chain, whose end is the clean scene: valid like the floor
    assert rows["cycle-sde", "none", 0]["valid"].value == 1.0
    # the ODE's outputs, recomputed: the same forward chain (seed 4 * 0), eta = 0 from its top, judged
    model = load_pixel_model(random_model)
    grid = time_grid(model.schedule, 3, 0.6)
    x0 = model.encode(cases.images)
    chain = forward_chain(model.schedule, x0, grid, generator=torch.Generator().manual_seed(0))
    outputs = denoise(model.eps_model(), model.schedule, chain[0], grid, eta=0.0)
    assert rows["ode", "none", 0]["valid"].value == shapes_valid(model.decode(outputs)).mean()
    # at t0 the three samplers start from one edited population: the same statistics
    for curve in ("sde", "cycle-sde"):
        assert rows[curve, "drag", 600] == rows["ode", "drag", 600]


def test_the_scenes_pca_tells_scenes_from_brightened_scenes_not_from_other_scenes():
    pca = ScenesPCA.fit(scenes=300)
    a, b = (pca.features(render_batch(random_scenes(200, seed=s)))["fd_pca"] for s in (5, 6))
    assert a.shape == (200, 32)
    assert abs(c2st(a, b)[0] - 0.5) < 0.1
    images = render_batch(random_scenes(200, seed=6)) + 0.1  # (200, 3, 32, 32) every pixel brighter
    brighter = pca.features(images)["fd_pca"]
    assert c2st(a, brighter)[0] > 0.9 and frechet_distance(brighter, a) > 4 * frechet_distance(b, a)
    assert np.array_equal(ScenesPCA.fit(scenes=300).features(images)["fd_pca"], brighter)  # seeded


def test_cli_runs_the_shapes_world_and_rejects_what_it_does_not_have(capsys, tmp_path, random_model, monkeypatch):
    monkeypatch.setitem(gap_module.WORLDS, "shapes", dataclasses.replace(gap_module.WORLDS["shapes"],
                                                                        model=str(random_model)))
    argv = ["reproduce", "image-gap", "--model", "shapes", "--n", "10", "--intervals", "4", "--checkpoints", "2",
            "--bootstrap", "5", "--json", "--figures", str(tmp_path)]
    assert main(argv) == 0
    assert (tmp_path / "image_gap_shapes.png").is_file()
    out = json.loads(capsys.readouterr().out)
    assert {(r["sampler"], r["edit"], r["t"]) for r in out["rows"]} == {
        (c, e, t) for c in CURVES for e in SHAPES_EDITS for t in (600, 0)}
    assert out["settings"]["seeds"] == [0] and out["settings"]["edits"] == ["none", "drag"]
    for argv, message in ((["--edit", "contrast"], "edits must be a non-empty selection of ('none', 'drag')"),
                          (["--n", "3"], "n must lie in [5, 1000]")):
        assert main(["reproduce", "image-gap", "--model", "shapes", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]
