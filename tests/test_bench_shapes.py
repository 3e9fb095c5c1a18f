"""The shapes DragBench set with ground truth: its layout and determinism, the loader's gt_image.png, the
ground-truth measures on hand-made outputs, Mean Distance's features on a pixel model's UNet2DModel, the model
names of the commands, and the round trip bench-data -> bench -> bench-metrics with a random-weight pixel model."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import UNet2DModel
from PIL import Image
from scipy.stats import spearmanr

from sdelab.__main__ import main
from sdelab.bench.data import load_dragbench
from sdelab.bench.metrics import latent_features, mean_distance
from sdelab.bench.runner import measure_outputs
from sdelab.bench.shapes_set import BAND_MARGIN, write_shapes_bench
from sdelab.bench.truth import agreement, truth_metrics
from sdelab.cli.models import load_model
from sdelab.data.shapes import Scene, Shape, drag_cases, render
from sdelab.models.pixel import PixelDiffusion, build_scheduler, build_unet, shipped
from sdelab.models.stable_diffusion import StableDiffusion

FILES = ["gt_image.png", "mask.png", "origin_image.png", "prompt.json"]


def random_pixel_model(widths=(16, 32)) -> PixelDiffusion:
    """A random-weight unconditional 32 x 32 RGB pixel model on Stable Diffusion's schedule (the shapes model's
    kind, smaller)."""
    torch.manual_seed(0)
    return PixelDiffusion(build_unet(32, 3, widths), build_scheduler("scaled_linear", 0.00085, 0.012), "random-pixel")


def pil(image: torch.Tensor) -> Image.Image:
    """(3, S, S) in [0, 1] -> RGB PIL, as the set writes it."""
    return Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def psnr(a: Image.Image, b: Image.Image) -> float:
    mse = ((np.asarray(a, float) - np.asarray(b, float)) ** 2).mean()
    return 10 * math.log10(255**2 / mse)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def shapes_set(tmp_path_factory):
    return write_shapes_bench(tmp_path_factory.mktemp("shapes") / "set", n=6, seed=3)


@pytest.fixture(scope="module")
def model():
    return random_pixel_model()


# ---- the set -------------------------------------------------------------------------------------------------------
def test_the_set_is_dragbench_s_with_ground_truth(shapes_set):
    cases = drag_cases(6, seed=3)
    assert sorted(p.name for p in shapes_set.iterdir()) == ["000", "001", "002", "003", "004", "005",
                                                             "shapes_bench.json"]
    for k in range(6):
        folder = shapes_set / f"{k:03d}"
        assert sorted(p.name for p in folder.iterdir()) == FILES
        meta = json.loads((folder / "prompt.json").read_text())
        assert meta == {"source": [cases.source[k].tolist()], "target": [cases.target[k].tolist()], "prompt": ""}
        with Image.open(folder / "origin_image.png") as im, Image.open(folder / "gt_image.png") as gt:
            assert im.mode == gt.mode == "RGB" and im.size == gt.size == (32, 32)
            for png, exact in ((im, cases.images[k]), (gt, cases.truth[k])):  # 8-bit rounding of the render
                assert np.abs(np.asarray(png, float) / 255 - exact.permute(1, 2, 0).numpy()).max() <= 0.5 / 255 + 1e-6
        with Image.open(folder / "mask.png") as m:
            mask = np.asarray(m)
        assert m.mode == "L" and set(np.unique(mask)) == {0, 255}
        # the band holds the dragged object at both ends: every pixel it covers there is editable
        obj, moved = cases.scenes[k].shapes[int(cases.index[k])], cases.truth_scenes[k].shapes[int(cases.index[k])]
        for shape in (obj, moved):
            yy, xx = np.indices((32, 32))
            near = np.hypot(xx - shape.x, yy - shape.y) <= shape.radius + 0.5
            assert (mask[near] == 255).all()
        far = np.hypot(xx - obj.x, yy - obj.y) > obj.radius + BAND_MARGIN + math.dist(cases.source[k].tolist(),
                                                                                     cases.target[k].tolist()) + 1
        assert (mask[far] == 0).all()


def test_the_set_is_byte_identical_for_a_seed_and_refuses_a_folder_holding_another(shapes_set, tmp_path):
    again = write_shapes_bench(tmp_path / "again", n=6, seed=3)
    assert tree(again) == tree(shapes_set)
    (again / "002" / "gt_image.png").unlink()  # an interrupted set: the same command completes it
    write_shapes_bench(again, n=6, seed=3)
    assert tree(again) == tree(shapes_set)
    other = tree(write_shapes_bench(tmp_path / "other", n=6, seed=4))
    assert other.keys() == tree(shapes_set).keys() and other["000/origin_image.png"] != tree(shapes_set)[
        "000/origin_image.png"]
    with pytest.raises(ValueError, match=r"holds something other than this set \(n=5, seed=3\)"):
        write_shapes_bench(again, n=5, seed=3)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="out .* holds something other"):
        write_shapes_bench(tmp_path / "busy", n=2)
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="n must be an integer >= 1"):
            write_shapes_bench(tmp_path / "bad", n=bad)


def test_the_loader_reads_the_ground_truth(shapes_set, tmp_path):
    bench = load_dragbench(shapes_set)
    assert bench.layout == "dragbench-s" and bench.skipped == [] and len(bench.samples) == 6
    for s in bench.samples:
        assert s.truth_path == shapes_set / s.id / "gt_image.png" and s.mask is not None and s.prompt == ""
        assert np.array_equal(np.asarray(s.truth()), np.asarray(Image.open(s.truth_path)))
    fixtures = load_dragbench(Path(__file__).parent / "fixtures" / "dragbench_s")
    assert all(s.truth_path is None and s.truth() is None for s in fixtures.samples)  # the public layout has none
    broken = write_shapes_bench(tmp_path / "broken", n=2, seed=3)
    Image.new("RGB", (16, 16)).save(broken / "001" / "gt_image.png")
    assert load_dragbench(broken).skipped == [("001", "gt_image.png has size (height, width) = (16, 16), the "
                                                      "image (32, 32)")]


# ---- the ground-truth measures --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def case():
    """One drag: (input, truth, the input scene, the dragged object's index, target) as PIL images and numbers."""
    cases = drag_cases(1, seed=7)
    return (pil(cases.images[0]), pil(cases.truth[0]), cases.scenes[0], int(cases.index[0]),
            tuple(cases.target[0].tolist()), tuple(cases.source[0].tolist()))


def test_the_truth_scores_no_error_and_success_and_the_input_the_drag_length(case):
    image, truth, scene, i, target, source = case
    perfect = truth_metrics(truth, truth, [target])
    assert perfect == dict(drag_error=pytest.approx(0, abs=0.05), success=True, valid=True, psnr_truth=math.inf)
    unmoved = truth_metrics(image, truth, [target])
    assert unmoved["drag_error"] == pytest.approx(math.dist(source, target), abs=0.1)
    assert unmoved["success"] is False and unmoved["valid"] is True  # a clean scene, but the drag did not happen
    assert unmoved["psnr_truth"] == pytest.approx(psnr(image, truth)) and 10 < unmoved["psnr_truth"] < 40


def test_a_ghost_a_lost_object_and_a_changed_kind_fail(case):
    image, truth, scene, i, target, source = case
    ghost = pil((torch.from_numpy(np.asarray(truth, np.float32) / 255).permute(2, 0, 1) + render(scene)) / 2)
    scored = truth_metrics(ghost, truth, [target])  # half the object at each end
    assert scored["valid"] is False and scored["success"] is False
    obj = scene.shapes[i]
    others = tuple(s for k, s in enumerate(scene.shapes) if k != i)
    lost = truth_metrics(pil(render(Scene(others))) if others else pil(render(Scene((), 32))), truth, [target])
    assert lost["drag_error"] is None and lost["success"] is False
    kind = next(k for k in ("disc", "square", "triangle") if k != obj.kind)
    swapped = Scene(others + (Shape(kind, obj.colour, target[0], target[1], obj.size),))
    scored = truth_metrics(pil(render(swapped)), truth, [target])
    assert scored["drag_error"] < 0.3 and scored["valid"] is True and scored["success"] is False  # kind not kept


def test_a_truth_that_is_no_shapes_scene_gives_only_the_psnr(case):
    image, truth, *_ = case
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    scored = truth_metrics(image, noise, [(5, 5)])
    assert scored["drag_error"] is scored["success"] is scored["valid"] is None
    assert scored["psnr_truth"] == pytest.approx(psnr(image, noise))
    assert truth_metrics(image, truth, [(0, 0)])["success"] is None  # no object of the truth at that target


def test_agreement_is_scipys_spearman_over_the_pairs_with_both():
    md, err = [1.0, 2.0, 3.5, 3.0, None, 7.0], [0.1, 0.5, 2.0, 2.5, 3.0, None]
    rho, p = spearmanr([1.0, 2.0, 3.5, 3.0], [0.1, 0.5, 2.0, 2.5])
    assert agreement(md, err) == dict(spearman=pytest.approx(rho), p_value=pytest.approx(p), n=4)
    assert agreement([1, 2, 3, 4], [4, 3, 2, 1])["spearman"] == pytest.approx(-1)
    assert agreement([1, 2], [1, 2]) == dict(spearman=None, p_value=None, n=2)
    assert agreement([1, 1, 1], [1, 2, 3])["spearman"] is None  # a constant side has no ranking


# ---- Mean Distance on a pixel model's UNet2DModel -------------------------------------------------------------------
def test_dift_features_hook_a_unet2dmodel_and_its_skip_blocks(model):
    x0 = model.encode(torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    feats = latent_features(model, x0, None, generator=gen())
    assert feats.shape == (1, 16, 32, 32)  # up-block 1 of widths (16, 32): full resolution, 16 channels
    assert torch.equal(feats, latent_features(model, x0, None, generator=gen()))
    assert latent_features(model, x0, None, up_block=0, generator=gen()).shape == (1, 32, 32, 32)
    skip = UNet2DModel(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(32, 64), layers_per_block=1,
                       down_block_types=("SkipDownBlock2D", "AttnSkipDownBlock2D"),
                       up_block_types=("AttnSkipUpBlock2D", "SkipUpBlock2D"), attention_head_dim=8)
    skip_model = PixelDiffusion(skip, model.scheduler, "skip")  # up blocks return (hidden states, skip image)
    feats = latent_features(skip_model, torch.zeros(1, 3, 16, 16), None, generator=gen())
    assert feats.shape == (1, 32, 16, 16)


def test_mean_distance_on_a_pixel_model_scores_an_unedited_output_as_the_drag_length(model, case):
    image, truth, scene, i, target, source = case
    assert mean_distance(model, image, image.copy(), [source], [target], "") == [pytest.approx(math.dist(source,
                                                                                                         target))]
    with pytest.raises(ValueError, match="prompt must be None or ''"):
        model.eps(torch.zeros(1, 3, 32, 32), 10, prompt="a disc")  # no text conditioning for an unconditional model
    gray = PixelDiffusion(build_unet(32, 1, (16, 32)), model.scheduler, "gray")  # a one-channel model, as the digits
    assert mean_distance(gray, image, image.copy(), [source], [target], "") == [pytest.approx(math.dist(source,
                                                                                                        target))]


def test_measured_on_its_inputs_and_truths_the_set_scores_as_it_must(model, shapes_set, tmp_path):
    bench = load_dragbench(shapes_set)
    for name, field in (("inputs", "origin_image.png"), ("truths", "gt_image.png")):
        for s in bench.samples:
            (tmp_path / name).mkdir(exist_ok=True)
            (tmp_path / name / f"{s.id}.png").write_bytes((shapes_set / s.id / field).read_bytes())
    inputs = measure_outputs(model, bench, tmp_path / "inputs", progress=False, log=lambda m: None)
    lengths = [math.dist(s.sources[0], s.targets[0]) for s in bench.samples]
    for row, length in zip(inputs["rows"], lengths, strict=True):
        assert row["mean_distance"] == pytest.approx(length)  # same noise: every handle stays where it was
        assert row["drag_error"] == pytest.approx(length, abs=0.1) and row["success"] is False
    assert inputs["summary"]["success"] == 0 and inputs["summary"]["valid"] == 1
    assert inputs["summary"]["agreement"]["spearman"] > 0.9 and inputs["summary"]["agreement"]["n"] == 6
    truths = measure_outputs(model, bench, tmp_path / "truths", progress=False, log=lambda m: None)["summary"]
    assert truths["success"] == 1 and truths["drag_error"] < 0.05 and truths["psnr_truth"] == math.inf
    assert truths["objects_lost"] == 0 and truths["truth_samples"] == 6


# ---- the commands ---------------------------------------------------------------------------------------------------
def test_model_names(tmp_path, model):
    assert isinstance(load_model("digits"), PixelDiffusion) and isinstance(load_model("tiny"), StableDiffusion)
    model.save_pretrained(tmp_path / "pixel")
    assert load_model(str(tmp_path / "pixel")).name == "random-pixel"
    with pytest.raises(ValueError, match="model must be 'tiny', a shipped pixel model"):
        load_model("no-such-model")
    assert "shapes" in shipped() and load_model("shapes").size == 32


def test_command_line_round_trip_bench_data_bench_bench_metrics(tmp_path, model, capsys):
    data, run, weights = tmp_path / "data", tmp_path / "run", tmp_path / "pixel"
    model.save_pretrained(weights)
    assert main(["bench-data", "shapes", "--out", str(data), "--n", "3", "--seed", "5"]) == 0
    assert main(["bench", "--data", str(data), "--model", str(weights), "--steps", "2", "--device", "cpu",
                 "--out", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "| SDE-Drag | 3 | 3 |" in printed and "| SDE-Drag | 3 |" in printed.split("against the ground truth")[1]
    results = json.loads((run / "results.json").read_text())
    assert results["settings"]["lora_steps"] == 0  # a pixel model drags without LoRA by default
    assert all(isinstance(r["success"], bool) and r["psnr_truth"] > 0 for r in results["rows"])
    assert results["summary"]["truth_samples"] == 3 and results["summary"]["agreement"]["n"] <= 3
    assert (run / "results.csv").read_text().splitlines()[0].endswith("drag_error,success,valid,psnr_truth")
    assert main(["bench-metrics", "--data", str(data), "--outputs", str(run), "--model", str(weights)]) == 0
    assert "Spearman (Mean Distance, drag error)" in capsys.readouterr().out
    measured = json.loads((run / "metrics.json").read_text())
    keys = ("mean_distance", "drag_error", "success", "valid", "psnr_truth")
    assert [[r[k] for k in keys] for r in measured["rows"]] == [[r[k] for k in keys] for r in results["rows"]]


@pytest.mark.parametrize("argv, message", [
    (["bench-data", "shapes", "--n", "0"], "bench-data: error: n must be an integer >= 1"),
    (["bench", "--model", "no-such-model", "--steps", "2", "--device", "cpu"], "bench: error: model must be 'tiny'"),
    (["bench-metrics", "--model", "no-such-model"], "bench-metrics: error: model must be 'tiny'"),
])
def test_bad_input_exits_with_status_2_and_one_line(tmp_path, capsys, argv, message):
    write_shapes_bench(tmp_path / "data", n=1)
    extra = {"bench-data": ["--out", str(tmp_path / "new")],
             "bench": ["--data", str(tmp_path / "data"), "--out", str(tmp_path / "run")],
             "bench-metrics": ["--data", str(tmp_path / "data"), "--outputs", str(tmp_path / "data")]}[argv[0]]
    assert main(argv + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.strip().splitlines()) == 1, err
