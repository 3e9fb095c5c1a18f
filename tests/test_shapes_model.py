"""The shipped shapes model: weights on Stable Diffusion's schedule, the interface, retraining, sample quality."""

import json
import socket

import pytest
import torch

from sdelab.__main__ import main
from sdelab.data.shapes import random_scenes, render_batch
from sdelab.eval.shapes import ShapesReference, blurred, laws, total_variation
from sdelab.models import PixelDiffusion, load_pixel_model, load_shapes_model
from sdelab.models.pixel import shipped, weights_path
from sdelab.recipes import RECIPES
from sdelab.reproduce.shapes_quality import ShapesQualityRow, markdown, reproduce_shapes_quality, score
from sdelab.reproduce.shapes_quality import main as quality_main
from sdelab.schedules import VPSchedule


@pytest.fixture(scope="module")
def model():
    return load_shapes_model()


REFERENCE_FIT = ShapesReference.fit  # the full-size fit, replaced by a small one where only the plumbing is tested


def small_reference(seed: int = 0) -> ShapesReference:
    return REFERENCE_FIT(seed, fit_scenes=300, reference_scenes=300, law_scenes=300)


@pytest.fixture(scope="module")
def reference():
    return small_reference()


def test_shipped_weights_are_small_load_offline_and_record_their_training(monkeypatch):
    files = {p.name: p.stat().st_size for p in weights_path("shapes").iterdir()}
    assert {"config.json", "diffusion_pytorch_model.safetensors", "scheduler_config.json", "sdelab_config.json",
            "training_log.json"} <= set(files)
    assert sum(files.values()) < 6e6 and "shapes" in shipped()
    log = json.loads((weights_path("shapes") / "training_log.json").read_text())
    assert log["recipe"] == json.loads(json.dumps(vars(RECIPES["shapes"])))  # the recipe as it stands trained them
    assert log["seconds"] > 0 and log["machine"] and log["finished"]

    def no_network(*args, **kwargs):
        raise OSError("loading the shipped shapes model must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    assert isinstance(load_shapes_model(), PixelDiffusion)


def test_the_shapes_model_is_unconditional_rgb_on_stable_diffusions_schedule(model):
    assert not model.conditional and model.latent_shape(2) == (2, 3, 32, 32)
    assert model.name == RECIPES["shapes"].name and load_pixel_model("shapes").name == model.name
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2  # SD's scaled-linear betas
    assert torch.allclose(model.schedule.alphas_cumprod.double(), torch.cumprod(1 - betas, 0), rtol=1e-6)
    assert torch.allclose(model.schedule.alphas_cumprod, VPSchedule.stable_diffusion().alphas_cumprod)
    assert model.schedule.alphas_cumprod[600].sqrt().item() == pytest.approx(0.40, abs=0.005)  # t0 = 0.6 keeps 0.40


def test_eps_and_a_tiny_sample_run_end_to_end(model):
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    eps = model.eps(x, torch.tensor([999, 300]))
    assert eps.shape == x.shape and torch.isfinite(eps).all()
    # at the last level x_T is nearly pure noise: a trained model's eps is close to it
    assert torch.nn.functional.cosine_similarity(model.eps(x, 999).flatten(), x.flatten(), dim=0) > 0.9
    a, b = (model.sample(2, steps=3, eta=1.0, generator=torch.Generator().manual_seed(1), progress=False)
            for _ in range(2))
    assert a.shape == (2, 3, 32, 32) and 0 <= a.min() and a.max() <= 1 and torch.equal(a, b)


def test_train_shapes_tiny_run_uses_the_recipe(tmp_path):
    args = ["train", "shapes", "--steps", "2", "--batch-size", "4", "--widths", "8", "16", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    trained = load_shapes_model(tmp_path / "a")
    assert trained.latent_shape(1) == (1, 3, 32, 32) and not trained.conditional
    assert torch.allclose(trained.schedule.alphas_cumprod, VPSchedule.stable_diffusion().alphas_cumprod)


def test_laws_and_total_variation():
    scenes = random_scenes(50, seed=0)
    got = laws(scenes)
    assert got["count"].shape == (9,) and got["kind"].shape == (3,) and got["colour"].shape == (8,)
    assert all(p.sum() == pytest.approx(1) for p in got.values()) and got["count"][0] == 0
    assert total_variation(got["kind"], got["kind"]) == 0
    assert total_variation([1, 0], [0, 1]) == 1


def test_quality_scores_real_scenes_above_blurred_scenes_and_noise(reference):
    real = reference.real_scenes(100)
    assert not any(torch.equal(real[0], r) for r in render_batch(random_scenes(300, seed=2)))  # not the reference
    noise = torch.rand(100, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    rows = {name: score(reference, name, x, reps=20, seed=0)
            for name, x in (("real", real), ("blurred", blurred(real, 0.7)), ("noise", noise))}
    assert rows["real"].valid.value == 1 and rows["blurred"].valid.value < 0.3 and rows["noise"].valid.value == 0
    assert rows["real"].objects[3] == 0 and rows["noise"].tv_count > 0.9
    assert rows["real"].tv_kind < 0.2 and rows["real"].tv_colour < 0.25
    # the PCA's leading components are smooth: a slight blur barely moves them (the judge sees it), noise does
    assert max(rows["real"].fd_pca.value, rows["blurred"].fd_pca.value) < rows["noise"].fd_pca.value / 2
    assert rows["real"].fd_pca.low <= rows["real"].fd_pca.high
    with pytest.raises(ValueError, match="images must have shape"):
        reference.features(torch.zeros(4, 1, 32, 32))
    with pytest.raises(ValueError, match="fit_scenes must be >= 2"):
        ShapesReference.fit(fit_scenes=1)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        blurred(real, 0)


def test_the_quality_table_runs_end_to_end_on_a_tiny_n(model, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(ShapesReference, "fit", small_reference)
    result = reproduce_shapes_quality(model, n=4, steps=(2,), reps=5, keep=True)
    assert [r.images for r in result.rows] == ["real scenes", "blurred real scenes (sigma 0.7 px)",
                                               "DDIM eta=0, 2 steps", "DDPM eta=1, 2 steps"]
    assert all(isinstance(r, ShapesQualityRow) and r.n == 4 for r in result.rows)
    assert set(result.examples) == {"real scenes", "DDIM eta=0, 2 steps", "DDPM eta=1, 2 steps"}
    text = markdown(result)
    assert text.count("\n| ") == 5 and "| real scenes | 4 | 1.000 [1.000, 1.000] |" in text
    assert quality_main(["--n", "4", "--steps", "2", "--bootstrap", "5", "--figures", str(tmp_path)]) == 0
    assert "| DDPM eta=1, 2 steps | 4 |" in capsys.readouterr().out and (tmp_path / "shapes_samples.png").is_file()
    with pytest.raises(ValueError, match="n must be >= 2"):
        reproduce_shapes_quality(model, n=1)
