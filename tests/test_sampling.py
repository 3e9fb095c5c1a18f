import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler
from scipy import stats

from sdelab.sampling import (
    CycleNoise,
    FreshNoise,
    StoredNoise,
    cycle_noise,
    cycle_sde_noises,
    ddim_invert,
    ddim_step,
    denoise,
    eq6_coefficients,
    forward_chain,
    predict_x0,
    probability_flow_heun,
    reverse_sde_euler_maruyama,
)
from sdelab.schedules import VPSchedule, time_grid
from sdelab.toy.gmm import bimodal_1d, ring_2d


def ddim_scheduler():
    return DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                         clip_sample=False, set_alpha_to_one=True)


@pytest.mark.parametrize("eta", [0.0, 1.0, 0.5])
def test_ddim_step_equals_diffusers(eta, sd_schedule, gen):
    sched = ddim_scheduler()
    sched.set_timesteps(50)
    ratio = 1000 // 50
    for t in sched.timesteps:
        x = torch.randn(2, 4, 8, 8, generator=gen)
        eps = torch.randn(2, 4, 8, 8, generator=gen)
        z = torch.randn(2, 4, 8, 8, generator=gen)
        ref = sched.step(eps, t, x, eta=eta, variance_noise=z if eta > 0 else None).prev_sample
        s = t - ratio
        a_s, s_s = (sd_schedule.alpha(s), sd_schedule.sigma(s)) if s >= 0 else (1.0, 0.0)
        ours = ddim_step(x, eps, sd_schedule.alpha(t), sd_schedule.sigma(t), a_s, s_s, eta=eta, noise=z)
        assert torch.allclose(ours, ref, atol=1e-5, rtol=1e-5), f"t={t}"


def test_ddim_step_accepts_floats_and_draws_from_generator():
    x, eps = torch.zeros(3, 2, dtype=torch.float64), torch.ones(3, 2, dtype=torch.float64)
    a = ddim_step(x, eps, 0.6, 0.8, 0.8, 0.6, eta=1.0, generator=torch.Generator().manual_seed(0))
    b = ddim_step(x, eps, 0.6, 0.8, 0.8, 0.6, eta=1.0, generator=torch.Generator().manual_seed(0))
    c = ddim_step(x, eps, 0.6, 0.8, 0.8, 0.6, eta=0.0)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    # eta = 0 by hand: x0_hat = -0.8/0.6, x_s = 0.8 x0_hat + 0.6 eps
    assert torch.allclose(c, torch.full_like(c, 0.8 * -0.8 / 0.6 + 0.6))


def test_python_float_levels_keep_float64_precision(sd_schedule):
    # floats are not rounded to float32 on the way in (torch.as_tensor(float) alone would make a float32 tensor)
    levels = [v.item() for v in (sd_schedule.alpha(600), sd_schedule.sigma(600), sd_schedule.alpha(595),
                                 sd_schedule.sigma(595))]
    a_t, s_t, a_s, s_s = levels
    x, eps, w = torch.randn(3, 100, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    rho_s = s_s / s_t * (1 - a_t**2 / a_s**2) ** 0.5
    written_out = a_s * (x - s_t * eps) / a_t + (s_s**2 - rho_s**2) ** 0.5 * eps + rho_s * w
    assert torch.allclose(ddim_step(x, eps, *levels, eta=1.0, noise=w), written_out, rtol=0, atol=1e-13)
    assert torch.allclose(predict_x0(x, eps, a_t, s_t), (x - s_t * eps) / a_t, rtol=0, atol=1e-13)


def test_the_upward_ode_step_is_ddim_inversion_and_inverts_the_downward_step():
    """Eq. 6 at eta = 0 run upwards (alpha_s < alpha_t) is DDIM inversion: x_t = alpha_t x0_hat + sigma_t eps."""
    x, eps = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    a_lo, s_lo, a_hi, s_hi = 0.9, 0.19**0.5, 0.5, 0.75**0.5  # (alpha, sigma) at a low and a high noise level
    up = ddim_step(x, eps, a_lo, s_lo, a_hi, s_hi, eta=0.0)
    assert torch.allclose(up, a_hi * (x - s_lo * eps) / a_lo + s_hi * eps, atol=1e-14)
    assert torch.allclose(ddim_step(up, eps, a_hi, s_hi, a_lo, s_lo, eta=0.0), x, atol=1e-14)  # same eps: exact


@pytest.mark.parametrize("eta", [0.0, 0.3, 1.0])
def test_eq6_coefficients_are_float64_and_equal_the_written_out_step(eta):
    """x_s = c_x x_t + c_eps eps + rho w equals alpha_s x0_hat + sqrt(sigma_s^2 - rho^2) eps + rho w (Eq. 6)."""
    a_t, a_s = torch.tensor(0.3, dtype=torch.float32), torch.tensor(0.8, dtype=torch.float32)
    s_t, s_s = (1 - a_t**2).sqrt(), (1 - a_s**2).sqrt()
    c_x, c_eps, r = eq6_coefficients(a_t, s_t, a_s, s_s, eta)
    assert c_x.dtype == c_eps.dtype == r.dtype == torch.float64
    x, eps, w = torch.randn(3, 50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a_t, s_t, a_s, s_s = (v.double() for v in (a_t, s_t, a_s, s_s))
    rho_s = eta * s_s / s_t * (1 - a_t**2 / a_s**2).sqrt()
    written_out = a_s * (x - s_t * eps) / a_t + (s_s**2 - rho_s**2).sqrt() * eps + rho_s * w
    assert torch.allclose(c_x * x + c_eps * eps + r * w, written_out, atol=1e-14)


def nonlinear_eps(x, t):
    """An arbitrary smooth non-linear 'network' (no relation to any data): Cycle-SDE must still be exact."""
    tt = float(t) / 1000
    return torch.tanh(1.7 * x + tt) * torch.cos(3 * tt * x) + 0.3 * torch.sin(x.flip(-1) * 2)


@pytest.mark.parametrize("case", ["gmm-1d", "gmm-2d", "nonlinear-image"])
def test_cycle_sde_reconstructs_the_stored_chain_exactly(case, sd_schedule, gen):
    grid = time_grid(sd_schedule, steps=120, t0=0.6)
    if case == "gmm-1d":
        q = bimodal_1d()
        eps_model, x0 = q.eps_model(sd_schedule), q.sample(500, gen)
    elif case == "gmm-2d":
        q = ring_2d()
        eps_model, x0 = q.eps_model(sd_schedule), q.sample(500, gen)
    else:
        eps_model, x0 = nonlinear_eps, torch.randn(2, 4, 16, 16, generator=gen, dtype=torch.float64)
    chain = forward_chain(sd_schedule, x0, grid, generator=gen)
    assert torch.equal(chain[-1], x0) and len(chain) == len(grid)
    noises = cycle_sde_noises(eps_model, sd_schedule, chain, grid)
    seen = []
    out = denoise(eps_model, sd_schedule, chain[0], grid, eta=1.0, noise=StoredNoise(noises),
                  callback=lambda step: seen.append((chain[step["i"] + 1] - step["x"]).abs().max().item()))
    assert (out - x0).abs().max() <= 1e-10
    assert max(seen) <= 1e-10  # every intermediate state is the stored one
    batched = denoise(eps_model, sd_schedule, chain[0], grid, eta=1.0, noise=CycleNoise(sd_schedule, chain, grid))
    assert (batched - x0).abs().max() <= 1e-10


def test_cycle_sde_in_float32_and_continuous_time(linear_schedule, gen):
    q = bimodal_1d()
    grid = time_grid(linear_schedule, steps=100, t0=0.6)
    x0 = q.sample(300, gen).float()
    chain = forward_chain(linear_schedule, x0, grid, generator=gen)
    out = denoise(q.eps_model(linear_schedule), linear_schedule, chain[0], grid, eta=1.0,
                  noise=CycleNoise(linear_schedule, chain, grid))
    assert out.dtype == torch.float32 and (out - x0).abs().max() <= 1e-4


def test_cycle_sde_noises_have_mean_zero_given_the_chain_and_variance_at_least_one(sd_schedule, gen):
    # Eq. 8's w' = (x'_s - m(x'_t)) / rho_s: for the exact eps, m(x'_t) = E[x'_s | x'_t] (the DDPM posterior mean
    # with x0 replaced by E[x0 | x'_t]), so E[w' | x'_t] = 0 and E[w'^2 | x'_t] = 1 + Var(E[x'_s | x'_t, x0] | x'_t) /
    # rho_s^2 >= 1: not fresh N(0, 1) noise, but noise that is at least as wide (notebook 03)
    q = bimodal_1d()
    grid = time_grid(sd_schedule, steps=40, t0=0.6)
    chain = forward_chain(sd_schedule, q.sample(4000, gen), grid, generator=gen)
    noises = cycle_sde_noises(q.eps_model(sd_schedule), sd_schedule, chain, grid)
    for i in (5, 20, 39):
        w, x = noises[i][:, 0], chain[i][:, 0]
        bins = torch.bucketize(x, torch.quantile(x, torch.linspace(0, 1, 9, dtype=x.dtype)[1:-1]))  # 8 equal bins
        for b in range(8):
            wb = w[bins == b]
            assert abs(wb.mean()) < 4 * wb.std() / len(wb) ** 0.5, f"step {i}, bin {b}: E[w' | x'_t] != 0"
    assert torch.cat(noises).std() > 1.05  # 1.22 here; fresh noise would give 1 +- 0.002


def gmm_cdf(q):
    w, m, s = q.weights.numpy(), q.means[:, 0].numpy(), q.covs[:, 0, 0].sqrt().numpy()
    return lambda x: (w * stats.norm.cdf((np.asarray(x)[:, None] - m) / s)).sum(1)


def ks_pvalue_2d(x, q_end, gen):
    """KS on 8 fixed projections, Bonferroni-combined (Cramer-Wold); reference drawn from q_end."""
    ref = q_end.sample(20000, gen)
    angles = torch.arange(8, dtype=torch.float64) * np.pi / 8
    dirs = torch.stack([torch.cos(angles), torch.sin(angles)], 1)
    return min(8 * stats.ks_2samp((x @ d).numpy(), (ref @ d).numpy()).pvalue for d in dirs)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_true_prior_recovers_q0_1d(eta, sd_schedule, gen):
    q = bimodal_1d()
    grid = time_grid(sd_schedule, steps=100)
    x_T = torch.randn(4000, 1, generator=gen, dtype=torch.float64)
    x = denoise(q.eps_model(sd_schedule), sd_schedule, x_T, grid, eta=eta, generator=gen)
    q_end = q.marginal(sd_schedule.alpha(grid[-1]), sd_schedule.sigma(grid[-1]))
    assert stats.kstest(x[:, 0].numpy(), gmm_cdf(q_end)).pvalue > 0.01
    # the same test rejects a sampler started from the wrong prior
    x_bad = denoise(q.eps_model(sd_schedule), sd_schedule, 0.5 * x_T + 1, grid, eta=0.0)
    assert stats.kstest(x_bad[:, 0].numpy(), gmm_cdf(q_end)).pvalue < 1e-6


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_true_prior_recovers_q0_2d(eta, sd_schedule, gen):
    q = ring_2d()
    grid = time_grid(sd_schedule, steps=100)
    x = denoise(q.eps_model(sd_schedule), sd_schedule, torch.randn(3000, 2, generator=gen, dtype=torch.float64),
                grid, eta=eta, generator=gen)
    q_end = q.marginal(sd_schedule.alpha(grid[-1]), sd_schedule.sigma(grid[-1]))
    assert ks_pvalue_2d(x, q_end, gen) > 0.01


@pytest.mark.parametrize("sampler", ["euler-maruyama", "heun"])
def test_continuous_time_samplers_recover_q0(sampler, linear_schedule, gen):
    q = bimodal_1d()
    grid = time_grid(linear_schedule, steps=400)
    x_T = torch.randn(4000, 1, generator=gen, dtype=torch.float64)
    eps = q.eps_model(linear_schedule)
    if sampler == "heun":
        x = probability_flow_heun(eps, linear_schedule, x_T, grid)
    else:
        x = reverse_sde_euler_maruyama(eps, linear_schedule, x_T, grid, generator=gen)
    q_end = q.marginal(linear_schedule.alpha(grid[-1]), linear_schedule.sigma(grid[-1]))
    assert stats.kstest(x[:, 0].numpy(), gmm_cdf(q_end)).pvalue > 0.01


def test_heun_is_second_order_on_a_gaussian(linear_schedule):
    # q_0 = N(0, 0.5^2): the ODE maps x_T to x_T * std_t(end) / std_t(T) exactly; Heun's error ~ h^2
    q = bimodal_1d().isotropic([1.0], [0.0], [0.5])
    eps = q.eps_model(linear_schedule)
    x_T = torch.tensor([[1.0]], dtype=torch.float64)

    def err(steps):
        grid = time_grid(linear_schedule, steps=steps)
        std = lambda t: (linear_schedule.alpha(t) ** 2 * 0.25 + linear_schedule.sigma(t) ** 2).sqrt()  # noqa: E731
        exact = x_T * std(grid[-1]) / std(grid[0])
        return (probability_flow_heun(eps, linear_schedule, x_T, grid) - exact).abs().item()

    assert err(50) / err(100) > 3.0


def test_ddim_inversion_converges_with_steps(sd_schedule, gen):
    q = bimodal_1d()
    eps = q.eps_model(sd_schedule)
    x0 = q.sample(200, gen)

    def recon_error(steps):
        grid = time_grid(sd_schedule, steps=steps, t0=0.6)
        xs = ddim_invert(eps, sd_schedule, x0, grid)
        assert torch.equal(xs[-1], x0) and len(xs) == len(grid)
        return (denoise(eps, sd_schedule, xs[0], grid, eta=0.0) - x0).abs().max().item()

    e30, e120 = recon_error(30), recon_error(120)
    assert e120 < e30 / 2 and e120 < 0.05


def test_mask_pastes_the_stored_chain(sd_schedule, gen):
    grid = time_grid(sd_schedule, steps=20, t0=0.6)
    x0 = torch.randn(1, 4, 8, 8, generator=gen, dtype=torch.float64)
    chain = forward_chain(sd_schedule, x0, grid, generator=gen)
    edited = chain[0] + 1.0
    none = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    out = denoise(nonlinear_eps, sd_schedule, edited, grid, eta=1.0, generator=gen, chain=chain, mask=none)
    assert torch.equal(out, x0)
    half = none.clone()
    half[..., :4] = True
    out = denoise(nonlinear_eps, sd_schedule, edited, grid, eta=1.0, generator=gen, chain=chain, mask=half)
    assert torch.equal(out[..., 4:], x0[..., 4:]) and not torch.allclose(out[..., :4], x0[..., :4])


def test_bad_arguments_raise(sd_schedule, gen):
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="eta"):
        ddim_step(x, x, 0.5, 0.8, 0.6, 0.8, eta=1.5)
    with pytest.raises(ValueError, match="eta"):
        ddim_step(x, x, 0.5, 0.8, 0.6, 0.8, eta=-0.1)
    with pytest.raises(ValueError, match="alpha_s"):  # only the deterministic step runs upwards
        ddim_step(x, x, 0.6, 0.8, 0.5, 0.86, eta=1.0)
    with pytest.raises(ValueError, match="eps"):
        ddim_step(x, torch.zeros(4, 3), 0.5, 0.86, 0.6, 0.8)
    with pytest.raises(ValueError, match="noise"):
        ddim_step(x, x, 0.5, 0.86, 0.6, 0.8, eta=1.0, noise=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="rho_s > 0"):
        cycle_noise(x, x, x, 0.5, 0.86, 1.0, 0.0)
    grid = time_grid(sd_schedule, steps=5, t0=0.5)
    with pytest.raises(ValueError, match="noises"):
        denoise(nonlinear_eps, sd_schedule, x, grid, eta=1.0, noise=StoredNoise([x]))
    with pytest.raises(ValueError, match="chain"):
        denoise(nonlinear_eps, sd_schedule, x, grid, eta=1.0, noise=CycleNoise(sd_schedule, [x], grid))
    with pytest.raises(ValueError, match="continuous"):
        probability_flow_heun(nonlinear_eps, sd_schedule, x, grid)
    with pytest.raises(ValueError, match="grid"):
        denoise(nonlinear_eps, sd_schedule, x, grid[:1])


def test_same_seed_same_output(sd_schedule):
    q = bimodal_1d()
    grid = time_grid(sd_schedule, steps=10)
    run = lambda: denoise(q.eps_model(sd_schedule), sd_schedule, torch.zeros(5, 1, dtype=torch.float64),  # noqa: E731
                          grid, eta=1.0, generator=torch.Generator().manual_seed(7))
    assert torch.equal(run(), run())


def test_cosine_schedule_samples(gen):
    sched = VPSchedule.cosine()
    q = bimodal_1d()
    grid = time_grid(sched, steps=100)
    x = denoise(q.eps_model(sched), sched, torch.randn(3000, 1, generator=gen, dtype=torch.float64), grid,
                eta=1.0, generator=gen)
    q_end = q.marginal(sched.alpha(grid[-1]), sched.sigma(grid[-1]))
    assert stats.kstest(x[:, 0].numpy(), gmm_cdf(q_end)).pvalue > 0.01


def test_the_noise_is_a_strategy_checked_against_the_run(sd_schedule, gen):
    grid = time_grid(sd_schedule, steps=5, t0=0.5)
    chain = forward_chain(sd_schedule, torch.randn(3, 2, generator=gen, dtype=torch.float64), grid, generator=gen)
    cycle = CycleNoise(sd_schedule, chain, grid)
    with pytest.raises(ValueError, match="eta must be the Cycle-SDE noise's eta"):
        denoise(nonlinear_eps, sd_schedule, chain[0], grid, eta=0.5, noise=cycle)
    with pytest.raises(ValueError, match="grid must be the grid of the Cycle-SDE noise's chain"):
        denoise(nonlinear_eps, sd_schedule, chain[1], grid[1:], eta=1.0, noise=cycle)
    # fresh noise from the generator is the default; the ODE draws none
    run = lambda **kw: denoise(nonlinear_eps, sd_schedule, chain[0], grid, **kw)  # noqa: E731
    g = torch.Generator().manual_seed(3)
    assert torch.equal(run(eta=1.0, generator=torch.Generator().manual_seed(3)), run(eta=1.0, noise=FreshNoise(g)))
    state = g.get_state()
    run(eta=0.0, noise=FreshNoise(g))
    assert torch.equal(g.get_state(), state)
    # Cycle-SDE's noise replayed on the fly is the one computed ahead, whichever eps call gives the chain's eps
    ahead = StoredNoise(cycle_sde_noises(nonlinear_eps, sd_schedule, chain, grid))
    own = CycleNoise(sd_schedule, chain, grid, eps_model=nonlinear_eps)
    assert torch.equal(run(eta=1.0, noise=ahead), run(eta=1.0, noise=own))
    assert (run(eta=1.0, noise=cycle) - chain[-1]).abs().max() <= 1e-10
