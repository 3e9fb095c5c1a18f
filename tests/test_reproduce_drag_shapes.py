"""reproduce drag --model shapes: the measures against the true edited image, on known cases, and a tiny run."""

import math

import numpy as np
import pytest
import torch

from sdelab.__main__ import main
from sdelab.data.shapes import band_masks, drag_cases
from sdelab.models.pixel import PixelDiffusion, build_scheduler, build_unet
from sdelab.reproduce.drag_shapes import (
    MASKS,
    MEASURES,
    RADII,
    copy_radii,
    markdown,
    measures,
    object_radii,
    reproduce_drag_shapes,
)


@pytest.fixture(scope="module")
def cases():
    return drag_cases(12, seed=3)


@pytest.fixture(scope="module")
def band(cases):
    return band_masks(cases, torch.as_tensor(object_radii(cases) + 1.5))


def test_the_truth_scores_a_perfect_drag_and_the_input_none(cases, band):
    truth, unedited = measures(cases, cases.truth, band), measures(cases, cases.images, band)
    assert np.allclose(truth["drag_error"], 0, atol=0.3) and truth["success"].all() and truth["valid"].all()
    assert truth["others_kept"].all() and np.allclose(truth["ghost"], 0) and (truth["psnr_truth"] >= 99).all()
    lengths = (cases.target - cases.source).double().norm(dim=1).numpy()
    assert np.allclose(unedited["drag_error"], lengths, atol=0.3) and not unedited["success"].any()
    assert unedited["valid"].all() and (unedited["ghost"] > 0.2).all()  # the object still at its old place
    assert np.allclose(unedited["change_outside"], 0)


def test_a_ghost_and_a_lost_object_are_seen(cases, band):
    ghost = 0.5 * cases.images + 0.5 * cases.truth  # half of the object left behind, half moved
    m = measures(cases, ghost, band)
    assert not m["valid"].any() and (m["ghost"] > 0.1).all() and not m["success"].any()
    background = torch.full_like(cases.images, 0.5)
    lost = measures(cases, background, band)
    alone = np.array([len(s.shapes) == 1 for s in cases.scenes])  # no other object to keep
    assert lost["lost"].all() and np.isnan(lost["drag_error"]).all() and (lost["others_kept"] == alone).all()
    assert not alone.all()


def test_the_covering_radius_covers_the_object(cases):
    radii = copy_radii(cases, "cover")
    assert (radii >= object_radii(cases) + 0.5).all() and (copy_radii(cases, "default") == 2).all()


def test_a_tiny_run_reports_every_method_setting_and_comparison(tmp_path):
    torch.manual_seed(0)
    model = PixelDiffusion(build_unet(32, 3, (16, 32)), build_scheduler("scaled_linear", 0.00085, 0.012), "random")
    model.save_pretrained(tmp_path)
    result = reproduce_drag_shapes(tmp_path, n=3, t0s=(0.2,), intervals=5, reps=10, workers=1)
    keys = {(r.method, r.mask, r.radius, r.t0) for r in result.rows}
    expected = {("input", None, None, None), ("truth", None, None, None)}
    expected |= {("copy-paste", m, r, None) for m in MASKS for r in RADII}
    expected |= {(e, m, r, 0.2) for e in ("ode-drag", "sde-drag") for m in MASKS for r in RADII}
    assert keys == expected and len(result.comparisons) == len(MASKS) * len(RADII)
    assert all(set(r.scores) == set(MEASURES) for r in result.rows)
    band_rows = [r for r in result.rows if r.mask == "band"]
    assert all(r.scores["change_outside"].value < 1e-6 for r in band_rows)  # the band mask keeps the outside
    assert set(result.examples) >= {"input", "truth", "copy-paste", "sde-drag t0=0.2", "ode-drag t0=0.2"}
    table = markdown(result)
    assert "true edited image" in table and table.count("| sde-drag |") == len(MASKS) * len(RADII)
    assert not math.isnan(result.rows[0].scores["psnr_truth"].value)


def test_bad_input_for_the_shapes_run_exits_2(capsys):
    assert main(["reproduce", "drag", "--model", "shapes", "--save", "x"]) == 2
    assert "--save and --load are the digits run's" in capsys.readouterr().err
    with pytest.raises(ValueError, match="t0 must lie in"):
        reproduce_drag_shapes("shapes", n=2, t0s=(1.5,))


def test_one_scene_is_dragged_by_every_method_beside_its_truth(tmp_path, cases):
    from sdelab.models.pixel import load_pixel_model
    from sdelab.reproduce.drag_shapes import drag_scene

    torch.manual_seed(0)
    PixelDiffusion(build_unet(32, 3, (16, 32)), build_scheduler("scaled_linear", 0.00085, 0.012), "random") \
        .save_pretrained(tmp_path)
    model = load_pixel_model(tmp_path)
    scene, source, target = cases.scenes[0], cases.source[0].tolist(), cases.target[0].tolist()
    shown = drag_scene(model, scene, source, target, t0=0.2, intervals=5)
    assert list(shown) == ["input", "copy-paste", "ODE-Drag", "SDE-Drag", "truth"]
    assert torch.allclose(shown["truth"][0], cases.truth[0]) and shown["truth"][1].valid
    assert all(im.shape == (3, 32, 32) for im, _ in shown.values())
    away = drag_scene(model, scene, source, [31, 31], t0=0.2, intervals=5)  # off the canvas: no valid answer
    assert "truth" not in away


def test_the_result_reads_back_from_its_json(tmp_path):
    import json

    from sdelab.reproduce.drag_shapes import ShapesDragResult
    from sdelab.reproduce.results import to_json

    torch.manual_seed(0)
    PixelDiffusion(build_unet(32, 3, (16, 32)), build_scheduler("scaled_linear", 0.00085, 0.012), "random") \
        .save_pretrained(tmp_path)
    result = reproduce_drag_shapes(tmp_path, n=2, t0s=(0.2,), intervals=2, reps=5, workers=1)
    back = ShapesDragResult.from_json(json.loads(json.dumps(to_json(result))))
    assert markdown(back) == markdown(result) and "examples" not in to_json(result)


def test_the_shipped_result_answers_by_setting_and_its_figures_draw_the_paired_differences():
    import json
    from importlib.resources import files

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sdelab.reproduce.drag_shapes import ShapesDragResult
    from sdelab.reproduce.figures import shapes_differences_figure

    result = ShapesDragResult.from_json(json.loads((files("sdelab") / "data" / "drag_shapes.json").read_text()))
    row = next(r for r in result.rows if (r.method, r.mask, r.radius, r.t0) == ("sde-drag", "band", "cover", 0.4))
    assert result.score("sde-drag", "valid", "band", "cover", 0.4) == row.scores["valid"]
    assert result.score("truth", "success").value == 1.0
    c = next(c for c in result.comparisons if (c.mask, c.radius, c.t0) == ("none", "default", 0.8))
    assert result.difference("ghost", "none", "default", 0.8) == c.sde_minus_ode["ghost"]
    with pytest.raises(ValueError, match="no row"):
        result.score("sde-drag", "valid", "none", "cover", 0.5)
    with pytest.raises(ValueError, match="no comparison"):
        result.difference("valid", "band", "wide", 0.2)
    fig = shapes_differences_figure(result, ("success", "valid"))
    assert len(fig.axes) == 2 * len(MASKS)
    ax = fig.axes[0]  # success, no mask: one row per window and t0, each point at its paired difference
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [f"{r} window, t0={t}" for r in RADII for t in result.settings["t0"]]
    points = [line.get_xdata()[0] for line in ax.lines if line.get_marker() == "o"]
    assert points == pytest.approx([result.difference("success", "none", r, t).value for r in RADII
                                    for t in result.settings["t0"]])
    plt.close(fig)


def test_one_scene_figure_titles_each_method_in_its_colour_and_says_when_no_truth_exists(tmp_path, cases):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.colors import to_hex

    from sdelab.data.shapes import parse
    from sdelab.plotting import COLOURS
    from sdelab.reproduce.figures import shapes_scene_figure

    image = cases.images[0]
    shown = {name: (image, parse(image)) for name in ("input", "copy-paste", "ODE-Drag", "SDE-Drag")}
    fig = shapes_scene_figure(shown, cases.source[0].tolist(), cases.target[0].tolist(), title="t")
    titles = {ax.get_title().split("\n")[0]: to_hex(ax.title.get_color()) for ax in fig.axes}
    assert titles["ODE-Drag"] == to_hex(COLOURS["ode-drag"]) and titles["SDE-Drag"] == to_hex(COLOURS["sde-drag"])
    assert titles["truth"] == to_hex(COLOURS["truth"]) and "no valid scene" in fig.axes[-1].texts[0].get_text()
