"""Exact 1-D chains (Theorems 3.1, 3.2), their Fokker-Planck limit and the linear-rate bound."""

import numpy as np
import pytest
import torch
from scipy.integrate import cumulative_trapezoid

from sdelab.sampling import denoise
from sdelab.schedules import time_grid
from sdelab.toy.exact import (
    exact_chain,
    fokker_planck,
    gaussian_convolve,
    kl_on_grid,
    log_density,
    push_forward,
    x_grid,
)
from sdelab.toy.gmm import GaussianMixture, bimodal_1d
from sdelab.toy.priors import PRIORS_1D, mismatched_prior
from sdelab.toy.rate import (
    chain_rate_bound,
    chain_variance_curve,
    continuous_rate_bound,
    lsi_constant_bound,
    variance,
)

PRIORS = sorted(PRIORS_1D)


def gaussian(m, s):
    return GaussianMixture.isotropic([1.0], [m], [s])


@pytest.fixture(scope="module")
def sd_chains(sd_schedule):
    """The CLI's experiment (SD schedule, t0 = 0.6, 120 steps) for every prior, ODE and SDE; 1000-point grid."""
    grid = time_grid(sd_schedule, 120, 0.6)
    return {(p, eta): exact_chain(bimodal_1d(), mismatched_prior(p), sd_schedule, grid, eta, x=x_grid(1000))
            for p in PRIORS for eta in (0.0, 1.0)}


@pytest.fixture(scope="module")
def linear_fp(linear_schedule):
    """Continuous-time reference on the linear VP schedule, t0 = 0.6, reported on the 200-step grid."""
    times = time_grid(linear_schedule, 200, 0.6).numpy()
    q, prior = bimodal_1d(), mismatched_prior("shifted")
    return {sde: fokker_planck(q, prior, linear_schedule, times, sde=sde, x=x_grid(600)) for sde in (False, True)}


# ---- building blocks -------------------------------------------------------------------------------
def test_kl_on_grid_matches_closed_form_gaussian_kl():
    x = x_grid(2000)
    (m1, s1), (m2, s2) = (1.0, 1.0), (-0.5, 0.7)
    closed = np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
    kl = kl_on_grid(log_density(gaussian(m1, s1), x), log_density(gaussian(m2, s2), x), x)
    assert abs(kl - closed) < 1e-10
    # unnormalised inputs are renormalised
    shifted = kl_on_grid(log_density(gaussian(m1, s1), x) + 3, log_density(gaussian(m2, s2), x) - 1, x)
    assert abs(shifted - closed) < 1e-10


def test_push_forward_and_convolution_of_a_gaussian_are_exact():
    x = x_grid(2000)
    log_p = log_density(gaussian(0.5, 0.8), x)[None]  # (1, n_x)
    pushed = push_forward(log_p, x, 0.6 * x + 0.4)  # N(0.5, 0.8^2) -> N(0.7, 0.48^2); contracts: tails extrapolated
    assert np.abs(np.exp(pushed[0]) - np.exp(log_density(gaussian(0.7, 0.48), x))).max() < 1e-8
    expanded = push_forward(log_density(gaussian(0.0, 0.5), x)[None], x, 1.5 * x)
    assert np.abs(np.exp(expanded[0]) - np.exp(log_density(gaussian(0.0, 0.75), x))).max() < 1e-8
    convolved = gaussian_convolve(log_p, x[1] - x[0], 0.3)
    assert np.abs(np.exp(convolved[0]) - np.exp(log_density(gaussian(0.5, np.hypot(0.8, 0.3)), x))).max() < 1e-10


def test_push_forward_refuses_a_non_monotone_map():
    x = x_grid(200)
    with pytest.raises(ValueError, match="strictly increasing"):
        push_forward(np.zeros((1, 200)), x, np.sin(x))


# ---- Theorems 3.1 and 3.2 on the exact chains --------------------------------------------------------
@pytest.mark.parametrize("prior", PRIORS)
def test_ode_chain_preserves_kl(prior, sd_chains):
    kl = sd_chains[prior, 0.0].kl
    assert kl[0] > 0.2  # a real mismatch
    assert np.abs(kl / kl[0] - 1).max() < 1e-6  # the brief asks < 1e-3; the chain holds it to ~5e-9


@pytest.mark.parametrize("prior", PRIORS)
def test_sde_chain_contracts_kl_at_every_step(prior, sd_chains):
    sde, ode = sd_chains[prior, 1.0], sd_chains[prior, 0.0]
    assert sde.kl[0] == ode.kl[0]  # same start, same KL
    assert (np.diff(sde.kl) < 0).all()
    assert sde.kl[-1] < 0.5 * sde.kl[0]


def test_ode_keeps_the_skewed_mode_weights_and_sde_repairs_them(sd_schedule):
    # t0 = 1 (the paper's prior mismatch at T): N(1, 1) puts 84% of its mass right of 0
    grid = time_grid(sd_schedule, 100, 1.0)
    q, prior = bimodal_1d(), mismatched_prior("shifted")
    mass = {}
    for eta in (0.0, 1.0):
        chain = exact_chain(q, prior, sd_schedule, grid, eta, x=x_grid(1000))
        p, h = chain.density(-1), chain.x[1] - chain.x[0]
        mass[eta] = h * p[chain.x > 0].sum()
    assert abs(mass[0.0] - 0.8413) < 1e-3  # the ODE transports quantiles: Phi(1)
    assert abs(mass[1.0] - 0.5) < 0.1


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_exact_chain_agrees_with_monte_carlo_of_the_same_chain(eta, sd_schedule, gen):
    grid = time_grid(sd_schedule, 20, 0.6)
    q, prior = bimodal_1d(), mismatched_prior("shifted")
    n, edges = 40000, np.arange(-4.0, 4.0001, 0.2)

    def bin_masses(chain):  # exact masses of the bins, from the grid CDF (error O(h^2))
        cdf = cumulative_trapezoid(chain.density(-1), chain.x, initial=0)
        return np.diff(np.interp(edges, chain.x, cdf))

    exact = {e: bin_masses(exact_chain(q, prior, sd_schedule, grid, e)) for e in (0.0, 1.0)}
    x = denoise(q.eps_model(sd_schedule), sd_schedule, prior.sample(n, gen), grid, eta=eta, generator=gen)
    hist = np.histogram(x[:, 0].numpy(), edges)[0] / n
    # sampling noise: E TV ~ sum_i sqrt(p_i / (2 pi n)) ~ 0.01 for these 40 bins; measured 0.007-0.009
    assert 0.5 * np.abs(hist - exact[eta]).sum() < 0.02
    assert 0.5 * np.abs(hist - exact[1.0 - eta]).sum() > 0.1  # power: the other sampler's density is far


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_grid_is_fine_and_wide_enough(eta, sd_schedule):
    grid = time_grid(sd_schedule, 120, 0.6)
    q, prior = bimodal_1d(), mismatched_prior("narrow")
    base = exact_chain(q, prior, sd_schedule, grid, eta, x=x_grid(1000)).kl  # 1000 points on [-8, 8]
    finer = exact_chain(q, prior, sd_schedule, grid, eta, x=x_grid(2000)).kl  # the default grid
    wider = exact_chain(q, prior, sd_schedule, grid, eta, x=x_grid(1250, 10.0)).kl  # same spacing
    assert np.abs(finer - base).max() < 1e-4 and np.abs(wider - base).max() < 1e-4  # measured < 5e-8
    coarse = exact_chain(q, prior, sd_schedule, grid, eta, x=x_grid(300)).kl
    assert np.abs(coarse - base).max() > 1e-7  # the comparison can see a grid error


def test_too_narrow_a_grid_raises(sd_schedule):
    grid = time_grid(sd_schedule, 10, 0.6)
    with pytest.raises(ValueError, match="x_max"):
        exact_chain(bimodal_1d(), mismatched_prior("shifted"), sd_schedule, grid, 1.0, x=x_grid(400, 3.0))


# ---- continuous time ---------------------------------------------------------------------------------
def test_fokker_planck_solver_keeps_q_t_and_the_ode_kl(linear_fp, linear_schedule):
    q = bimodal_1d()
    for fp in linear_fp.values():
        for i in (100, 200):
            t = torch.tensor(fp.t[i])
            q_t = np.exp(log_density(q.marginal(linear_schedule.alpha(t), linear_schedule.sigma(t)), fp.x))
            assert np.abs(fp.p[i] - q_t).max() < 5e-4  # unedited start q_t0 stays q_t (Eqs. 4 and 5)
    ode, sde = linear_fp[False].kl, linear_fp[True].kl
    assert np.abs(ode / ode[0] - 1).max() < 1e-3  # Thm 3.2 in continuous time (second-order FV: ~6e-5)
    assert (np.diff(sde) < 0).all() and sde[-1] < 0.3 * sde[0]  # Thm 3.1


def test_discrete_chains_converge_to_the_fokker_planck_solution(linear_fp, linear_schedule):
    q, prior, fp = bimodal_1d(), mismatched_prior("shifted"), linear_fp[True]
    errors = {}
    for steps in (50, 200):
        grid = time_grid(linear_schedule, steps, 0.6)
        chain = exact_chain(q, prior, linear_schedule, grid, 1.0, x=x_grid(1000))
        errors[steps] = np.abs(chain.kl - fp.kl[:: 200 // steps]).max()
    # DDPM is a first-order scheme: the error falls ~4x per 4x steps (measured 6e-3 -> 1.5e-3 -> ...)
    assert errors[200] < 2e-3
    assert errors[200] < 0.4 * errors[50]


# ---- the linear-rate proposition ---------------------------------------------------------------------
def test_lsi_bound_of_a_gaussian_and_its_sanity():
    assert lsi_constant_bound(gaussian(3.0, 0.7)) == pytest.approx(0.49)
    for a in (0.1, 0.5, 1.0, 2.0):
        for v in (0.25, 1.0):
            q = GaussianMixture.isotropic([0.5, 0.5], [-a, a], [v**0.5] * 2)
            c = lsi_constant_bound(q)
            assert c >= variance(q)  # every LSI constant is >= the variance
            if a**2 < v:
                assert c <= v / (1 - a**2 / v) + 1e-12  # log-concave case: Bakry-Emery


@pytest.mark.parametrize("a, v", [(0.8, 0.88), (1.5, 0.5), (2.0, 0.25)])
def test_lsi_bound_holds_on_test_measures(a, v):
    # 2 KL(nu || p) / I(nu || p) <= C for every nu; the worst nu for a mixture reweights the two modes
    x = x_grid(4000, 8.0)
    p = GaussianMixture.isotropic([0.5, 0.5], [-a, a], [v**0.5] * 2)
    c, log_p = lsi_constant_bound(p), log_density(p, x)
    h = x[1] - x[0]
    ratios = []
    for w in (0.6, 0.8, 0.95):
        for shift in (0.0, 0.3):
            nu = GaussianMixture.isotropic([w, 1 - w], [-a + shift, a + shift], [v**0.5] * 2)
            log_nu = log_density(nu, x)
            fisher = h * np.sum(np.exp(log_nu) * np.gradient(log_nu - log_p, h) ** 2)
            ratios.append(2 * kl_on_grid(log_nu, log_p, x) / fisher)
    assert max(ratios) <= c
    assert max(ratios) > v  # power: the naive constant (a component's variance) fails on these measures


@pytest.mark.parametrize("prior", PRIORS)
def test_chain_rate_bound_holds_at_every_step(prior, sd_chains, sd_schedule):
    chain = sd_chains[prior, 1.0]
    t0 = torch.tensor(int(chain.t[0]))
    c0 = lsi_constant_bound(bimodal_1d().marginal(sd_schedule.alpha(t0), sd_schedule.sigma(t0)))
    bound, best = chain_rate_bound(chain, c0), chain_variance_curve(chain)
    observed = chain.kl / chain.kl[0]
    assert (observed <= bound + 1e-12).all()
    assert (np.diff(np.log(observed)) <= np.diff(np.log(bound)) + 1e-12).all()  # step by step
    assert (best <= bound).all() and bound[-1] < 0.9  # the bound is not vacuous
    with pytest.raises(ValueError, match="eta > 0"):
        chain_rate_bound(sd_chains[prior, 0.0], c0)


def test_continuous_rate_bound_holds_for_the_fokker_planck_kl(linear_fp, linear_schedule):
    fp = linear_fp[True]
    bound = continuous_rate_bound(bimodal_1d(), linear_schedule, fp.t)
    observed = fp.kl / fp.kl[0]
    assert (observed <= bound + 1e-6).all() and bound[-1] < 0.5


# ---- errors ------------------------------------------------------------------------------------------
def test_bad_arguments_raise(sd_schedule, linear_schedule):
    q, prior = bimodal_1d(), mismatched_prior("shifted")
    grid = time_grid(sd_schedule, 10, 0.6)
    with pytest.raises(ValueError, match="eta"):
        exact_chain(q, prior, sd_schedule, grid, 1.5)
    with pytest.raises(ValueError, match="n_points"):
        x_grid(3)
    with pytest.raises(ValueError, match="x_max"):
        x_grid(100, -1.0)
    with pytest.raises(ValueError, match="uniform"):
        exact_chain(q, prior, sd_schedule, grid, 1.0, x=np.r_[x_grid(100)[:-1], 9.0])
    with pytest.raises(ValueError, match="continuous schedule"):
        fokker_planck(q, prior, sd_schedule, [600.0, 0.0], sde=True)
    with pytest.raises(ValueError, match="times"):
        fokker_planck(q, prior, linear_schedule, [0.1, 0.5], sde=True)
    with pytest.raises(ValueError, match="equal-weight"):
        lsi_constant_bound(GaussianMixture.isotropic([0.3, 0.7], [-1.0, 1.0], [0.5, 0.5]))
