"""The class-conditional digits DDPM: prompts as class labels, classifier-free guidance, label dropout, samples."""

import socket

import pytest
import torch

from sdelab.__main__ import main
from sdelab.data.digits import PROMPTS, SIZE
from sdelab.eval.judge import DigitsJudge
from sdelab.models import PixelDiffusion, load_digits_model
from sdelab.models.pixel import build_scheduler, build_unet, weights_path
from sdelab.models.training import eps_mse_loss


@pytest.fixture(scope="module")
def cond():
    return load_digits_model(conditional=True)


@pytest.fixture(scope="module")
def random_cond():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = build_unet(SIZE, 1, (8, 16), classes=len(PROMPTS))
    return PixelDiffusion(unet, build_scheduler("linear", 1e-4, 0.02), "random", PROMPTS).to(dtype=torch.float64)


NULL_CLASS = 10  # the embedding after the ten digits' prompts


def test_prompts_are_class_labels(random_cond):
    class_labels = random_cond.class_labels
    assert random_cond.null_class == NULL_CLASS
    assert class_labels("3", 2).tolist() == [3, 3]
    assert class_labels(None, 1).tolist() == [NULL_CLASS] and class_labels("", 1).tolist() == [NULL_CLASS]
    assert class_labels(["0", "", "9"], 3).tolist() == [0, NULL_CLASS, 9]
    assert class_labels(["1", "2"], 4).tolist() == [1, 2, 1, 2]  # stacked copies of the batch repeat the prompts
    for bad in ("a three", "10", " 3", "-1", 3):
        with pytest.raises(ValueError, match="prompt must be one of the class prompts"):
            class_labels(bad, 1)
    with pytest.raises(ValueError, match="prompt must be one prompt or a sequence"):
        class_labels(["1", "2", "3"], 4)


def test_classifier_free_guidance_is_one_batched_call(random_cond, gen):
    x = torch.randn(3, 1, 16, 16, generator=gen, dtype=torch.float64)
    eps_c, eps_u = random_cond.eps(x, 400, "7"), random_cond.eps(x, 400, None)
    assert not torch.allclose(eps_c, eps_u)  # the class changes the prediction
    assert torch.allclose(random_cond.eps(x, 400, "7", guidance=3.0), eps_u + 3.0 * (eps_c - eps_u), atol=1e-12)
    calls = []
    hook = random_cond.unet.register_forward_pre_hook(lambda module, args: calls.append(len(args[0])))
    random_cond.eps(x, 400, "7", guidance=3.0)
    hook.remove()
    assert calls == [6]  # uncond and cond in one call on the doubled batch
    per_sample = random_cond.eps(x, 400, ["7", "", "2"])
    assert torch.allclose(per_sample[0], eps_c[0]) and torch.allclose(per_sample[1], eps_u[1])


def test_network_eps_takes_one_prompt_per_sample_and_trains(random_cond, gen):
    x0 = torch.rand(4, 1, 16, 16, generator=gen, dtype=torch.float64) * 2 - 1
    t, noise = torch.tensor([10, 200, 500, 900]), torch.randn(4, 1, 16, 16, generator=gen, dtype=torch.float64)
    loss = eps_mse_loss(random_cond, x0, t, noise, ["1", "", "3", "4"])
    loss.backward()
    grads = random_cond.unet.class_embedding.weight.grad
    assert grads[[1, NULL_CLASS, 3, 4]].abs().sum(1).gt(0).all() and grads[[0, 2, 5]].abs().sum() == 0
    random_cond.unet.zero_grad(set_to_none=True)


def test_unknown_class_and_unconditional_prompt_raise(random_cond):
    x = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    with pytest.raises(ValueError, match="prompt must be one of the class prompts"):
        random_cond.eps(x, 10, prompt="a seven")
    unconditional = load_digits_model()
    assert not unconditional.conditional and random_cond.conditional
    with pytest.raises(ValueError, match="prompt must be None"):
        unconditional.eps(torch.zeros(1, 1, 16, 16), 10, prompt="7")


def test_shipped_conditional_weights_load_offline(monkeypatch):
    files = {p.name: p.stat().st_size for p in weights_path("digits_cond").iterdir()}
    assert {"config.json", "diffusion_pytorch_model.safetensors", "scheduler_config.json"} <= set(files)
    assert sum(files.values()) < 5e6

    def no_network(*args, **kwargs):
        raise OSError("loading the shipped digits model must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    model = load_digits_model(conditional=True)
    assert model.conditional and model.unet.config.num_class_embeds == NULL_CLASS + 1


def test_samples_are_judged_as_the_digit_asked_for(cond):
    # measured with the shipped weights, 100 DDIM samples (10 per digit) at 20 steps, cfg 2, seeds 0-3: judged as
    # asked 1.00 each time; the same draws with the null class (prompt None) match those labels 0.05-0.08
    judge = DigitsJudge.fit()
    asked = torch.arange(100) % 10
    gen = torch.Generator().manual_seed(0)
    samples = cond.sample(100, steps=20, eta=0.0, generator=gen, prompt=[str(int(k)) for k in asked],
                          guidance=2.0, progress=False)
    null = cond.sample(100, steps=20, eta=0.0, generator=torch.Generator().manual_seed(0), progress=False)
    assert judge.verdicts(samples, asked)["as_asked"] >= 0.9
    assert judge.verdicts(null, asked)["as_asked"] <= 0.3


def test_train_digits_conditional_tiny_run(tmp_path, capsys):
    out = tmp_path / "digits_cond"
    state = torch.random.get_rng_state()
    assert main(["train", "digits-cond", "--out", str(out), "--steps", "2", "--batch-size", "8", "--widths", "8",
                 "16", "--quiet"]) == 0
    assert torch.equal(torch.random.get_rng_state(), state)
    model = load_digits_model(out)
    assert model.conditional and model.prompts == PROMPTS and model.name == "digits-ddpm-cond"
    assert model.sample(2, steps=2, prompt="4", guidance=2.0, progress=False).shape == (2, 1, 16, 16)
    assert main(["train", "digits-cond", "--out", str(out), "--steps", "1", "--p-uncond", "1.5", "--quiet"]) == 2
    assert "p_uncond must lie in [0, 1)" in capsys.readouterr().err
