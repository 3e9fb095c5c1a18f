"""The engine's shared shape: one signature and one callback for every sampler, add_noise, the model
interface (name, latent_dtype, to, conditional, LoRA scale), per-step ramps, and a light command line."""

import inspect
import subprocess
import sys
import time

import pytest
import torch
from diffusers import DDPMScheduler

from sdelab.models import load_digits_model, tiny_stable_diffusion
from sdelab.models.base import cosine_ramp, linear_ramp
from sdelab.models.lora import lora_layers
from sdelab.samplers import SAMPLERS
from sdelab.sampling import (
    CycleNoise,
    add_noise,
    cycle_sde_noises,
    ddim_invert,
    denoise,
    forward_chain,
    predict_x0,
    probability_flow_heun,
    reverse_sde_euler_maruyama,
)
from sdelab.schedules import time_grid
from sdelab.toy.gmm import bimodal_1d

SAMPLER_FUNCTIONS = [denoise, ddim_invert, cycle_sde_noises, reverse_sde_euler_maruyama, probability_flow_heun]


@pytest.mark.parametrize("fn", [*SAMPLER_FUNCTIONS, forward_chain], ids=lambda f: f.__name__)
def test_every_sampler_has_one_signature(fn):
    params = inspect.signature(fn).parameters
    positional = [p.name for p in params.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
    expected = {"forward_chain": ["schedule", "x", "grid"], "cycle_sde_noises": ["eps_model", "schedule", "chain",
                                                                                  "grid"]}
    assert positional == expected.get(fn.__name__, ["eps_model", "schedule", "x", "grid"])
    for name in ("callback", "progress"):
        assert params[name].kind is params[name].KEYWORD_ONLY
    if fn is not cycle_sde_noises:  # the noises are solved for, never drawn
        assert params["generator"].kind is params["generator"].KEYWORD_ONLY


def _steps(run):
    seen = []
    out = run(seen.append)
    return out, seen


def test_callbacks_receive_one_dict_with_the_step_and_its_prediction(sd_schedule, linear_schedule, gen):
    q = bimodal_1d()
    eps = q.eps_model(sd_schedule)
    grid = time_grid(sd_schedule, 6, 0.6)
    x0 = q.sample(50, gen)
    chain, up = _steps(lambda cb: forward_chain(sd_schedule, x0, grid, generator=gen, callback=cb))
    down_out, down = _steps(lambda cb: denoise(eps, sd_schedule, chain[0], grid, eta=1.0,
                                               noise=CycleNoise(sd_schedule, chain, grid), callback=cb))
    inverted, inv = _steps(lambda cb: ddim_invert(eps, sd_schedule, x0, grid, callback=cb))
    for steps in (up, down, inv):
        assert [set(s) for s in steps] == [{"i", "t", "x", "x0_hat"}] * 6
    assert [s["i"] for s in down] == list(range(6)) and [int(s["t"]) for s in down] == grid[1:].tolist()
    assert [s["i"] for s in up] == [s["i"] for s in inv] == list(range(5, -1, -1))
    assert torch.equal(down[-1]["x"], down_out) and torch.equal(inv[-1]["x"], inverted[0])
    # x0_hat is the prediction from the step's start, at the step's start time
    alpha, sigma = sd_schedule.alpha(grid), sd_schedule.sigma(grid)
    assert torch.allclose(down[2]["x0_hat"], predict_x0(chain[2], eps(chain[2], grid[2]), alpha[2], sigma[2]))
    assert torch.equal(up[0]["x0_hat"], x0)
    lin = time_grid(linear_schedule, 4)
    x_T = torch.randn(20, 1, generator=gen, dtype=torch.float64)
    for fn in (reverse_sde_euler_maruyama, probability_flow_heun):
        out, steps = _steps(lambda cb, fn=fn: fn(q.eps_model(linear_schedule), linear_schedule, x_T, lin,
                                                generator=gen, callback=cb))
        assert len(steps) == 4 and torch.equal(steps[-1]["x"], out) and steps[0]["x0_hat"].shape == x_T.shape


def test_add_noise_is_q_xt_given_x0_and_matches_diffusers(gen):
    model = load_digits_model()
    x0 = torch.rand(6, 1, 16, 16, generator=gen) * 2 - 1
    noise = torch.randn(x0.shape, generator=gen)
    t = torch.tensor([0, 10, 250, 500, 750, 999])
    ours = add_noise(x0, model.schedule, t, noise)
    ref = DDPMScheduler.from_config(model.scheduler.config).add_noise(x0, noise, t)
    assert torch.allclose(ours, ref, atol=1e-6)
    one = add_noise(x0, model.schedule, 500, noise)
    assert torch.allclose(one[3], ours[3]) and not torch.allclose(one[0], ours[0])
    with pytest.raises(ValueError, match="t must be one time or one per sample"):
        add_noise(x0, model.schedule, t[:2], noise)


def test_denoise_rejects_a_mask_that_is_not_bool(sd_schedule, gen):
    grid = time_grid(sd_schedule, 3, 0.5)
    x = torch.randn(1, 1, 4, 4, generator=gen, dtype=torch.float64)
    chain = forward_chain(sd_schedule, x, grid, generator=gen)
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        denoise(lambda x, t: x, sd_schedule, chain[0], grid, eta=1.0, chain=chain, mask=torch.full((4, 4), 0.3))


def test_ramps_run_from_the_data_end_to_t0():
    grid = time_grid(tiny_stable_diffusion().schedule, 120, 0.6)  # 600 ... 0
    guidance, lora = linear_ramp(grid, 1.0, 3.0), cosine_ramp(grid, 1.0, 0.5)
    assert [guidance(torch.tensor(t)) for t in (0, 300, 600)] == [1.0, 2.0, 3.0]
    assert [round(lora(torch.tensor(t)), 12) for t in (0, 300, 600)] == [1.0, 0.75, 0.5]


def test_model_interface_declares_name_dtype_device_and_conditioning():
    digits, sd = load_digits_model(), tiny_stable_diffusion()
    assert digits.name and sd.name and not digits.conditional and sd.conditional
    assert digits.latent_dtype == digits.dtype == torch.float32 and digits.pixels_per_latent == 1
    assert digits.to("cpu", torch.float64) is digits and digits.dtype == torch.float64
    x = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    assert digits.eps(x, 10, prompt="").dtype == torch.float64  # "" is no prompt
    with pytest.raises(ValueError, match="prompt must be None or ''"):
        digits.eps(x, 10, prompt="a three")
    with pytest.raises(ValueError, match="guidance must be 1.0"):
        digits.eps_model(None, guidance=lambda t: 2.0)


def test_half_precision_model_samples_float32_latents():
    model = tiny_stable_diffusion(dtype=torch.bfloat16)
    images = model.sample(1, steps=2, generator=torch.Generator().manual_seed(0), progress=False)
    assert images.dtype == torch.float32  # decode returns the latents' dtype: the noise was drawn in float32


def test_lora_scale_reaches_the_network_and_is_restored():
    from peft import LoraConfig

    model = tiny_stable_diffusion()
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    plain = model.eps(x, 500, "a cat")
    with pytest.raises(ValueError, match="lora_scale=0.5 needs a LoRA adapter"):
        model.eps(x, 500, "a cat", lora_scale=0.5)
    model.unet.add_adapter(LoraConfig(r=2, lora_alpha=2, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    for layer in lora_layers(model.unet):  # B starts at zero: give the adapter an effect
        torch.nn.init.normal_(layer.lora_B["default"].weight, std=0.5)
    assert torch.allclose(model.eps(x, 500, "a cat", lora_scale=0.0), plain, atol=1e-6)
    full, half = model.eps(x, 500, "a cat", lora_scale=1.0), model.eps(x, 500, "a cat", lora_scale=0.5)
    assert not torch.allclose(full, plain, atol=1e-3) and not torch.allclose(half, full, atol=1e-4)
    assert torch.equal(model.eps(x, 500, "a cat"), full)  # scale restored to 1 after each call
    per_step = model.eps_model("a cat", 1.0, lora_scale=lambda t: 0.0)
    assert torch.allclose(per_step(x, torch.tensor(500)), plain, atol=1e-6)


def test_the_command_line_answers_help_without_torch():
    code = ("import sys; from sdelab.__main__ import COMMANDS, main\n"
            "from sdelab.cli.reproduce import EXPERIMENTS\n"
            "argvs = [['--help']] + [[c, '--help'] for c in COMMANDS]\n"
            "argvs += [['reproduce', e, '--help'] for e in EXPERIMENTS]\n"
            "for argv in argvs:\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert time.perf_counter() - start < 5  # about 0.05 s; no torch import (~2 s) can hide in it


def test_sampler_vocabulary_is_one_table():
    assert list(SAMPLERS) == ["ode", "sde", "cycle-sde"]
    assert [(s.eta, s.replay) for s in SAMPLERS.values()] == [(0.0, False), (1.0, False), (1.0, True)]


def test_eps_takes_one_time_and_guidance_per_sample():
    model = tiny_stable_diffusion(dtype=torch.float64)
    x = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = torch.tensor([600, 300, 5])
    eps = model.eps_model("a cat", lambda s: 1 + float(s) / 300)  # per-step guidance: 3, 2, 1.02
    together = eps(x, t)
    one_by_one = torch.cat([eps(x[i: i + 1], t[i]) for i in range(3)])
    assert torch.allclose(together, one_by_one, atol=1e-12)


@pytest.mark.parametrize("name", ["tiny-sd", "digits", "digits-cond"])
def test_chain_noises_in_large_batches_give_the_same_reconstruction(name):
    """Cycle-SDE's stored-chain eps computed k steps per call before the backward pass: the same output, also
    under a guidance ramp, where one call holds samples at k times and so k guidances (one per sample)."""
    from sdelab.edit.inversion import invert, reconstruct

    if name == "digits":
        model, prompt, guidance = load_digits_model(dtype=torch.float64), None, 1.0
    else:
        model, prompt = ((load_digits_model(conditional=True, dtype=torch.float64), "3") if name == "digits-cond"
                         else (tiny_stable_diffusion(dtype=torch.float64), "a cat"))
        guidance = linear_ramp(time_grid(model.schedule, 12, 0.6), 1.0, 3.0)
    x0 = torch.randn(model.latent_shape(2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    inv = invert(model, x0, 12, 0.6, prompt=prompt, guidance=guidance, generator=torch.Generator().manual_seed(1),
                 progress=False)
    edited = inv.x_t0 + 0.3
    reference = reconstruct(model, inv, edited, progress=False)  # eps of the chain in each step's call
    for k in (1, 5, 12):
        assert torch.allclose(reconstruct(model, inv, edited, chain_batch=k, progress=False), reference, atol=1e-10)
    assert not torch.allclose(reference, x0, atol=1e-3)  # the edit made a difference to reconstruct


def test_a_per_step_lora_scale_cannot_be_batched_across_steps():
    from peft import LoraConfig

    model = tiny_stable_diffusion()
    model.unet.add_adapter(LoraConfig(r=2, lora_alpha=2, target_modules=["to_q"]))
    eps = model.eps_model("a cat", 1.0, lora_scale=cosine_ramp(torch.tensor([600, 0]), 1.0, 0.5))
    x = torch.randn(2, 4, 8, 8)
    with pytest.raises(ValueError, match="lora_scale varies over the batch's times"):
        eps(x, torch.tensor([600, 300]))
    assert eps(x, torch.tensor([300, 300])).shape == x.shape  # one time: fine
    with pytest.raises(ValueError, match="batch_steps"):
        cycle_sde_noises(eps, model.schedule, [x, x], torch.tensor([600, 0]), batch_steps=0)
