import math

import pytest
import torch
from diffusers import DDIMScheduler

from sdelab.schedules import VPSchedule, time_grid


def test_stable_diffusion_alphas_equal_diffusers(sd_schedule):
    ref = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).alphas_cumprod
    t = torch.arange(1000)
    assert torch.equal(sd_schedule.alpha(t).pow(2).float(), ref)
    assert torch.allclose(sd_schedule.alpha(t) ** 2 + sd_schedule.sigma(t) ** 2, torch.ones(1000, dtype=torch.float64))


@pytest.mark.parametrize("make", [VPSchedule.linear, VPSchedule.cosine])
def test_continuous_f_and_g2_match_autograd(make):
    sched = make()
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64, requires_grad=True)
    log_alpha = torch.log(sched.alpha(t))
    (f,) = torch.autograd.grad(log_alpha.sum(), t)
    sigma2 = sched.sigma(t) ** 2
    (dsigma2,) = torch.autograd.grad(sigma2.sum(), t)
    assert torch.allclose(sched.f(t.detach()), f, rtol=1e-10)
    assert torch.allclose(sched.g2(t.detach()), dsigma2 - 2 * f * sigma2.detach(), rtol=1e-8)
    assert torch.allclose(sched.alpha(t) ** 2 + sigma2, torch.ones_like(sigma2))


def test_linear_schedule_closed_form(linear_schedule):
    # alpha_1 = exp(-(beta_max - beta_min)/4 - beta_min/2) for the VP-SDE of Song et al.
    assert linear_schedule.alpha(1.0).item() == pytest.approx(math.exp(-19.9 / 4 - 0.05))
    assert linear_schedule.alpha(torch.tensor([[0.0]])).shape == (1, 1)


def test_sde_drag_grid(sd_schedule):
    grid = time_grid(sd_schedule, steps=int(0.6 * 200), t0=0.6)
    assert len(grid) == 121 and grid[0] == 600 and grid[-1] == 0
    assert torch.equal(grid[:-1] - grid[1:], torch.full((120,), 5))
    full = time_grid(sd_schedule, steps=50)
    assert full[0] == 999 and full[1] == 980 and full[-1] == 0


def test_continuous_grid(linear_schedule):
    grid = time_grid(linear_schedule, steps=10, t0=0.5)
    assert grid[0] == 0.5 and grid[-1] == linear_schedule.t_min and len(grid) == 11


@pytest.mark.parametrize("kwargs, name", [(dict(steps=0), "steps"), (dict(steps=10, t0=0.0), "t0"),
                                          (dict(steps=10, t0=1.5), "t0"), (dict(steps=700, t0=0.6), "steps")])
def test_time_grid_rejects_bad_arguments(sd_schedule, kwargs, name):
    with pytest.raises(ValueError, match=name):
        time_grid(sd_schedule, **kwargs)


def test_schedule_rejects_bad_times_and_tables(sd_schedule, linear_schedule):
    with pytest.raises(ValueError, match="t must lie"):
        sd_schedule.alpha(torch.tensor(1000))
    with pytest.raises(ValueError, match="integer"):
        sd_schedule.alpha(torch.tensor(3.5))
    with pytest.raises(ValueError, match="t must lie"):
        linear_schedule.sigma(1.2)
    with pytest.raises(ValueError, match="continuous"):
        sd_schedule.g2(torch.tensor(10))
    with pytest.raises(ValueError, match="alphas_cumprod"):
        VPSchedule.from_alphas_cumprod(torch.tensor([0.5, 0.9]))
    with pytest.raises(ValueError, match="beta_min"):
        VPSchedule.linear(beta_min=1.0, beta_max=0.5)


@pytest.mark.parametrize("t0", [1.0, 0.6, 0.05])
def test_time_grid_says_the_largest_step_count_it_accepts(t0):
    sd = VPSchedule.stable_diffusion()
    with pytest.raises(ValueError, match="allowed at most") as err:
        time_grid(sd, steps=1000, t0=t0)
    most = int(str(err.value).rsplit(" ", 1)[1])
    assert len(time_grid(sd, steps=most, t0=t0)) == most + 1  # the number it names is accepted
    with pytest.raises(ValueError, match="allowed at most"):
        time_grid(sd, steps=most + 1, t0=t0)


def test_matched_t0_carries_a_noise_level_by_signal(sd_schedule):
    from sdelab.models.pixel import build_scheduler
    from sdelab.schedules import matched_t0

    digits = VPSchedule.from_alphas_cumprod(build_scheduler("linear", 1e-4, 0.02).alphas_cumprod, name="linear")
    t0 = matched_t0(sd_schedule, 0.6, digits)
    assert t0 == 0.422  # the digits' t = 422 keeps SD's alpha at t = 600 (0.40), its own t = 600 only 0.16
    assert abs(float(digits.alpha(422)) - float(sd_schedule.alpha(600))) < 1e-3
    assert matched_t0(sd_schedule, 0.6, sd_schedule) == 0.6 and matched_t0(digits, 0.422, sd_schedule) == 0.6
    with pytest.raises(ValueError, match="t0 must lie in"):
        matched_t0(sd_schedule, 0.0, digits)
    with pytest.raises(ValueError, match="discrete"):
        matched_t0(VPSchedule.linear(), 0.6, digits)
