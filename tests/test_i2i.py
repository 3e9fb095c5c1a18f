"""sdelab.edit.i2i: SDEdit and DiffEdit with ODE, SDE and Cycle-SDE reduce to their definitions; bad input."""

import pytest
import torch
from conftest import DEVICE

from sdelab.data.digits import PROMPTS, SIZE, digits_dataset
from sdelab.edit.i2i import diffedit, diffedit_mask, edit_steps, sdedit, translate
from sdelab.models import load_digits_model
from sdelab.models.pixel import PixelDiffusion, build_scheduler, build_unet
from sdelab.sampling import ddim_invert, denoise, forward_chain
from sdelab.schedules import time_grid


@pytest.fixture(scope="module")
def cond():
    """A class-conditional digits model with random weights: the reductions hold for any eps."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = build_unet(SIZE, 1, (8, 16), classes=len(PROMPTS))
    return PixelDiffusion(unet, build_scheduler("linear", 1e-4, 0.02), "random", PROMPTS).to(DEVICE, torch.float64)


@pytest.fixture(scope="module")
def x0(cond):
    return cond.encode(digits_dataset(split="test")[:4].double())


SOURCE, TARGET = ["0", "1", "2", "3"], ["3", "4", "5", "6"]


def test_edit_steps_and_t0_range():
    assert edit_steps(50, 0.3) == 15 and edit_steps(50, 0.8) == 40 and edit_steps(3, 0.1) == 1
    for t0 in (0.0, 1.2, -0.5):
        with pytest.raises(ValueError, match="t0 must lie in"):
            edit_steps(50, t0)


def test_cycle_sde_with_target_equal_to_source_returns_the_input(cond, x0):
    for guidance in (1.0, 3.0):
        gen = torch.Generator(device=x0.device).manual_seed(0)
        out = translate(cond, x0, SOURCE, SOURCE, method="cycle-sde", t0=0.6, steps=20, guidance=guidance,
                        inversion_guidance=guidance, generator=gen)
        assert (out - x0).abs().max() < 1e-10
    # with another target the same call edits
    out = translate(cond, x0, SOURCE, TARGET, method="cycle-sde", t0=0.6, steps=20, guidance=3.0,
                    generator=torch.Generator(device=x0.device).manual_seed(0))
    assert (out - x0).abs().max() > 1e-2


def test_ode_is_ddim_inversion_under_the_source_then_ddim_under_the_target(cond, x0):
    grid = time_grid(cond.schedule, 10, 0.5)
    inverted = ddim_invert(cond.eps_model(SOURCE), cond.schedule, x0, grid)
    expected = denoise(cond.eps_model(TARGET, 2.0), cond.schedule, inverted[0], grid, eta=0.0)
    out = translate(cond, x0, SOURCE, TARGET, method="ode", t0=0.5, steps=20, guidance=2.0)
    assert torch.equal(out, expected)


def test_sde_is_sdedit_noising_then_ddpm_with_fresh_noise(cond, x0):
    grid = time_grid(cond.schedule, 10, 0.5)
    gen = torch.Generator(device=x0.device).manual_seed(7)
    chain = forward_chain(cond.schedule, x0, grid, generator=gen)  # marginal at t0: q(x_t0 | x0)
    expected = denoise(cond.eps_model(TARGET, 2.0), cond.schedule, chain[0], grid, eta=1.0, generator=gen)
    out = sdedit(cond, x0, TARGET, method="sde", t0=0.5, steps=20, source=SOURCE, guidance=2.0,
                 generator=torch.Generator(device=x0.device).manual_seed(7))
    assert torch.equal(out, expected)
    other = sdedit(cond, x0, TARGET, method="sde", t0=0.5, steps=20, guidance=2.0,
                   generator=torch.Generator(device=x0.device).manual_seed(8))
    assert not torch.allclose(out, other)  # fresh noise: another seed, another edit


def test_diffedit_mask_and_masked_edit(cond, x0):
    gen = torch.Generator(device=x0.device).manual_seed(0)
    mask = diffedit_mask(cond, x0, SOURCE, TARGET, guidance=3.0, generator=gen)
    assert mask.shape == (4, 1, 16, 16) and mask.dtype == torch.bool
    assert 0 < mask.float().mean() < 1
    # the same condition twice: no difference, an empty mask, and DiffEdit returns the input exactly
    same = diffedit_mask(cond, x0, SOURCE, SOURCE, guidance=3.0, generator=gen)
    assert not same.any()
    for method in ("ode", "sde", "cycle-sde"):
        out, used = diffedit(cond, x0, SOURCE, TARGET, method=method, t0=0.5, steps=20, guidance=3.0, mask=mask,
                             generator=torch.Generator(device=x0.device).manual_seed(1))
        assert used is mask
        outside = ~mask.expand_as(x0)
        assert torch.equal(out[outside], x0[outside])  # the mask keeps everything outside it
        assert (out - x0)[~outside].abs().mean() > 1e-3


def test_diffedit_mask_follows_the_eps_difference(cond, x0):
    # a threshold at half the clipped bound: the mask is the set where the averaged |eps difference| is largest
    gen = torch.Generator(device=x0.device).manual_seed(0)
    mask = diffedit_mask(cond, x0, SOURCE, TARGET, guidance=3.0, maps=1, ratio=1.0, generator=gen)
    gen = torch.Generator(device=x0.device).manual_seed(0)
    t = time_grid(cond.schedule, 1, 0.5)[0]
    x_t = cond.schedule.alpha(t) * x0 + cond.schedule.sigma(t) * torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    diff = (cond.eps(x_t, t, TARGET, 3.0) - cond.eps(x_t, t, SOURCE, 3.0)).abs().mean(1, keepdim=True)
    assert torch.equal(mask, diff > 0.5 * diff.mean((1, 2, 3), keepdim=True))


def test_bad_input(cond, x0):
    with pytest.raises(ValueError, match="t0 must lie in"):
        sdedit(cond, x0, TARGET, t0=1.5)
    with pytest.raises(ValueError, match="t0 must lie in"):
        diffedit(cond, x0, SOURCE, TARGET, t0=0.0, mask=torch.ones(4, 1, 16, 16, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask"):
        diffedit(cond, x0, SOURCE, TARGET, mask=torch.ones(4, 1, 8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="prompt must be one of the class prompts"):
        sdedit(cond, x0, ["3", "4", "x", "6"])
    with pytest.raises(ValueError, match="method must be one of"):
        translate(cond, x0, SOURCE, TARGET, method="ddim", t0=0.5)
    with pytest.raises(ValueError, match="maps must be"):
        diffedit_mask(cond, x0, SOURCE, TARGET, maps=0)
    digits = load_digits_model()  # unconditional: no prompt
    with pytest.raises(ValueError, match="prompt must be None"):
        sdedit(digits, digits.encode(digits_dataset(split="test")[:1]), "3")
