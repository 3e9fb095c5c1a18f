"""The shipped digits DDPM: weights, the DiffusionModel interface, exact Cycle-SDE, sample quality, retraining."""

import json
import socket
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from sdelab.__main__ import main
from sdelab.data.digits import digits_dataset
from sdelab.eval.frechet import frechet_distance
from sdelab.eval.judge import DigitsJudge
from sdelab.models import DiffusionModel, PixelDiffusion, load_digits_model, load_pixel_model
from sdelab.models.pixel import CONFIG_NAME, shipped, weights_path
from sdelab.recipes import RECIPES
from sdelab.reproduce.quality import score
from sdelab.sampling import CycleNoise, denoise, forward_chain
from sdelab.schedules import VPSchedule, time_grid
from sdelab.train import initial_model, warmup_fraction


@pytest.fixture(scope="module")
def model():
    return load_digits_model()


@pytest.fixture(scope="module")
def judge():
    return DigitsJudge.fit()


def test_shipped_weights_are_small_and_load_offline(monkeypatch):
    files = {p.name: p.stat().st_size for p in weights_path("digits").iterdir()}
    assert {"config.json", "diffusion_pytorch_model.safetensors", "scheduler_config.json"} <= set(files)
    assert sum(files.values()) < 5e6

    def no_network(*args, **kwargs):
        raise OSError("loading the shipped digits model must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    assert isinstance(load_digits_model(), PixelDiffusion)


@pytest.mark.parametrize("name", ["digits", "digits_cond"])
def test_shipped_weights_give_the_eps_recorded_before_the_pixel_family(name):
    # sums of eps on fixed inputs in float64, recorded with the former digits-only model class (DigitsDiffusion)
    recorded = {"digits": (None, 1.0, 121.2237764875469, 641.6067970314799),
                "digits_cond": (["7", "", "2"], 2.5, 164.4396775779213, 700.3619565070837)}
    prompt, guidance, total, absolute = recorded[name]
    model = load_pixel_model(name, dtype=torch.float64)
    assert set(shipped()) >= {"digits", "digits_cond"} and (weights_path(name) / CONFIG_NAME).is_file()
    x = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(0)).double()
    t = torch.tensor(500) if prompt is None else 400
    eps = model.eps(x, t, prompt, guidance)
    assert eps.sum().item() == pytest.approx(total, abs=1e-9) and eps.abs().sum().item() == pytest.approx(absolute,
                                                                                                           abs=1e-9)


def test_a_pixel_model_is_weights_and_a_schedule(tmp_path, gen):
    """Any pixel-space UNet2DModel: size, channels, classes and schedule come from the saved folder, not from code."""
    from sdelab.models.pixel import build_scheduler, build_unet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = build_unet(32, 3, (8, 16, 16), classes=2)
    rgb = PixelDiffusion(unet, build_scheduler("scaled_linear", 0.00085, 0.012), "rgb-test", ["disc", "square"])
    rgb.save_pretrained(tmp_path)
    loaded = load_pixel_model(tmp_path, dtype=torch.float64)
    assert loaded.name == "rgb-test" and loaded.prompts == ("disc", "square") and loaded.conditional
    assert loaded.latent_shape(2) == (2, 3, 32, 32) and loaded.image_channels == 3
    assert torch.allclose(loaded.schedule.alphas_cumprod, VPSchedule.stable_diffusion().alphas_cumprod)
    images = torch.rand(2, 3, 32, 32, generator=gen, dtype=torch.float64)
    assert torch.equal(loaded.decode(loaded.encode(images)), images)
    x = torch.randn(2, 3, 32, 32, generator=gen, dtype=torch.float64)
    eps_c, eps_u = loaded.eps(x, 300, "disc"), loaded.eps(x, 300, None)
    assert torch.allclose(loaded.eps(x, 300, "disc", 2.0), 2 * eps_c - eps_u, atol=1e-12)
    with pytest.raises(ValueError, match="prompt must be one of the class prompts"):
        loaded.eps(x, 300, "triangle")
    with pytest.raises(ValueError, match="images must have shape"):
        loaded.encode(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="prompts must name every class embedding"):
        PixelDiffusion(unet, build_scheduler("linear", 1e-4, 0.02), "bad", ["disc"])
    with pytest.raises(ValueError, match="name_or_path"):
        load_pixel_model(tmp_path / "missing")
    with pytest.raises(ValueError, match="beta_schedule"):
        build_scheduler("cosine", 0.0, 1.0)


def test_digits_dataset():
    images, labels = digits_dataset(split="train", return_labels=True)
    test = digits_dataset(split="test")
    assert images.shape == (1347, 1, 16, 16) and test.shape == (450, 1, 16, 16) and labels.shape == (1347,)
    assert images.dtype == torch.float32 and 0 <= images.min() and images.max() <= 1
    assert images.mean() < 0.5  # ink = 1 on a background of 0
    assert set(labels.tolist()) == set(range(10))
    with pytest.raises(ValueError, match="split"):
        digits_dataset(split="validation")


def test_interface_shapes_and_dtypes(model, gen):
    assert isinstance(model, DiffusionModel)
    assert model.latent_shape(3) == (3, 1, 16, 16)
    assert model.schedule.discrete and model.schedule.num_train_timesteps == 1000
    images = digits_dataset(split="test")[:3]
    x0 = model.encode(images)
    assert x0.shape == (3, 1, 16, 16) and x0.min() >= -1 and x0.max() <= 1
    assert torch.allclose(model.decode(x0), images)
    eps = model.eps(torch.randn(3, 1, 16, 16, generator=gen), torch.tensor(500))
    assert eps.shape == (3, 1, 16, 16) and eps.dtype == torch.float32
    with pytest.raises(ValueError, match="images must have shape"):
        model.encode(torch.zeros(2, 3, 16, 16))


def test_float64_end_to_end(gen):
    model = load_digits_model(dtype=torch.float64)
    x = model.sample(2, steps=3, eta=1.0, generator=gen, progress=False)
    assert x.dtype == torch.float64 and x.shape == (2, 1, 16, 16)


def test_unconditional_model_refuses_prompt_and_guidance(model):
    x = torch.zeros(1, 1, 16, 16)
    with pytest.raises(ValueError, match="prompt must be None"):
        model.eps(x, 10, prompt="a seven")
    with pytest.raises(ValueError, match="guidance must be 1.0"):
        model.eps(x, 10, guidance=3.0)


def test_cycle_sde_reconstructs_digits_exactly(model, gen):
    x0 = model.encode(digits_dataset(split="test")[:4])
    grid = time_grid(model.schedule, steps=20, t0=0.6)
    chain = forward_chain(model.schedule, x0, grid, generator=gen)
    out = denoise(model.eps_model(), model.schedule, chain[0], grid, eta=1.0,
                  noise=CycleNoise(model.schedule, chain, grid))
    assert (out - x0).abs().max() <= 1e-5


def test_frechet_distance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 3))
    assert abs(frechet_distance(a, a)) < 1e-8
    # same covariance, mean shifted by (1, 2, 0): distance ~ 1 + 4
    assert frechet_distance(a, a + [1.0, 2.0, 0.0]) == pytest.approx(5.0, abs=1e-6)


def test_samples_look_like_digits(model, judge):
    # measured with the shipped weights, 64 DDIM samples at 20 steps, seeds 0-3: confident 0.63-0.78, 9-10 classes,
    # FD-PCA 1.05-1.43; uniform noise: confident 0-0.02, FD-PCA ~18.5
    gen = torch.Generator().manual_seed(0)
    samples = model.sample(64, steps=20, eta=0.0, generator=gen, progress=False)
    noise = torch.rand(64, 1, 16, 16, generator=gen)
    references = judge.references(digits_dataset(split="test"))  # the held-out digits
    got, ref = score(judge, references, "samples", samples), score(judge, references, "noise", noise)
    assert judge.test_accuracy > 0.95
    assert got.verdicts["confident"] >= 0.45 and ref.verdicts["confident"] <= 0.05
    assert got.verdicts["classes"] >= 7
    assert got.fd_pca < 4.0 < ref.fd_pca


def test_train_digits_tiny_run_loads_and_is_seeded(tmp_path):
    state = torch.random.get_rng_state()
    args = ["train", "digits", "--steps", "2", "--batch-size", "4", "--widths", "8", "16", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert torch.equal(torch.random.get_rng_state(), state)  # training seeds its own generators only
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert main([*args, "--out", str(tmp_path / "c"), "--seed", "1"]) == 0
    a, b, c = (load_file(tmp_path / d / "diffusion_pytorch_model.safetensors") for d in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)  # one seed, one model
    assert not all(torch.equal(a[k], c[k]) for k in a)
    model = load_digits_model(tmp_path / "a")
    assert list(model.unet.config.block_out_channels) == [8, 16] and model.name == "digits-ddpm"
    assert model.sample(2, steps=2, progress=False).shape == (2, 1, 16, 16)
    log = json.loads((tmp_path / "a" / "training_log.json").read_text())
    assert log["recipe"]["steps"] == 2 and log["recipe"]["beta_schedule"] == "linear" and log["seed"] == 0


def test_a_recipe_sets_the_schedule_of_the_model_it_trains():
    digits = initial_model(RECIPES["digits"])
    assert torch.allclose(digits.schedule.alphas_cumprod, load_digits_model().schedule.alphas_cumprod)
    sd_schedule = replace(RECIPES["digits"], beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    assert torch.allclose(initial_model(sd_schedule).schedule.alphas_cumprod,
                          VPSchedule.stable_diffusion().alphas_cumprod)


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 20, 21, 40, 200])
def test_any_step_count_gets_a_one_cycle_schedule_that_runs(steps):
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps,
                                                   pct_start=warmup_fraction(steps))
    for _ in range(steps):  # 20 steps with pct_start = 0.05 raised ZeroDivisionError here
        opt.step()
        schedule.step()
    assert warmup_fraction(4000) == warmup_fraction(7000) == 0.05  # the shipped recipes keep their schedule
