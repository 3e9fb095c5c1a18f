import pytest
import torch
from scipy import stats

from sdelab.toy.gmm import GaussianMixture, bimodal_1d, ring_2d


def full_cov_2d():
    covs = torch.tensor([[[1.0, 0.6], [0.6, 0.8]], [[0.3, -0.1], [-0.1, 0.5]], [[0.2, 0.0], [0.0, 2.0]]])
    return GaussianMixture([0.2, 0.5, 0.3], [[-2.0, 0.0], [1.0, 1.5], [2.5, -2.0]], covs)


@pytest.mark.parametrize("q", [bimodal_1d(), full_cov_2d(), ring_2d()])
def test_score_equals_autograd_of_log_prob(q, gen):
    x = (3 * torch.randn(200, q.dim, generator=gen, dtype=torch.float64)).requires_grad_()
    (grad,) = torch.autograd.grad(q.log_prob(x).sum(), x)
    assert torch.allclose(q.score(x.detach()), grad, rtol=1e-9, atol=1e-12)


def test_log_prob_matches_scipy_and_is_stable_far_away():
    q = full_cov_2d()
    x = torch.tensor([[0.3, -0.2], [2.0, 2.0]], dtype=torch.float64)
    ref = sum(w.item() * stats.multivariate_normal(m.numpy(), c.numpy()).pdf(x.numpy())
              for w, m, c in zip(q.weights, q.means, q.covs, strict=True))
    assert torch.allclose(q.log_prob(x), torch.log(torch.as_tensor(ref)), rtol=1e-10)
    far = torch.tensor([[1e3]], dtype=torch.float64)
    lp, sc = bimodal_1d().log_prob(far), bimodal_1d().score(far)
    assert torch.isfinite(lp).all() and torch.allclose(sc, -(far - 2) / 0.25)  # nearest mode dominates


def test_marginal_matches_monte_carlo_forward_process(gen, sd_schedule):
    q = bimodal_1d()
    t = torch.tensor(400)
    a, s = sd_schedule.alpha(t).item(), sd_schedule.sigma(t).item()
    xt = a * q.sample(20000, gen) + s * torch.randn(20000, 1, generator=gen, dtype=torch.float64)
    m = q.marginal(a, s)
    cdf = lambda x: sum(w * stats.norm.cdf(x, mu, sd) for w, mu, sd in  # noqa: E731
                        zip(m.weights.numpy(), m.means[:, 0].numpy(), m.covs[:, 0, 0].sqrt().numpy(), strict=True))
    assert stats.kstest(xt[:, 0].numpy(), cdf).pvalue > 0.01
    # and the test has power: the un-noised mixture is rejected
    assert stats.kstest(q.sample(20000, gen)[:, 0].numpy(), cdf).pvalue < 1e-6


def test_marginal_matches_monte_carlo_2d(gen):
    q = full_cov_2d()
    a, s = 0.6, 0.8
    xt = a * q.sample(200000, gen) + s * torch.randn(200000, 2, generator=gen, dtype=torch.float64)
    m = q.marginal(a, s)
    mean = (m.weights[:, None] * m.means).sum(0)
    second = (m.weights[:, None, None] * (m.covs + m.means[:, :, None] * m.means[:, None, :])).sum(0)
    cov = second - mean[:, None] * mean[None]
    assert torch.allclose(xt.mean(0), mean, atol=0.01)
    assert torch.allclose(torch.cov(xt.T), cov, atol=0.02)


def test_eps_model_is_minus_sigma_times_score(linear_schedule, gen):
    q = ring_2d()
    eps = q.eps_model(linear_schedule)
    x = torch.randn(50, 2, generator=gen, dtype=torch.float64)
    t = torch.tensor(0.3, dtype=torch.float64)
    m = q.marginal(linear_schedule.alpha(t), linear_schedule.sigma(t))
    assert torch.allclose(eps(x, t), -linear_schedule.sigma(t) * m.score(x))
    assert eps(x.float(), t).dtype == torch.float32


@pytest.mark.parametrize("kwargs, name", [
    (dict(weights=[0.5, 0.6], means=[[0.0], [1.0]], covs=[[[1.0]], [[1.0]]]), "weights"),
    (dict(weights=[1.5, -0.5], means=[[0.0], [1.0]], covs=[[[1.0]], [[1.0]]]), "weights"),
    (dict(weights=[0.5, 0.5], means=[0.0, 1.0], covs=[[[1.0]], [[1.0]]]), "means"),
    (dict(weights=[0.5, 0.5], means=[[0.0], [1.0]], covs=[[[1.0]]]), "covs"),
    (dict(weights=[0.5, 0.5], means=[[0.0], [1.0]], covs=[[[1.0]], [[-1.0]]]), "positive definite"),
    (dict(weights=[1.0], means=[[0.0, 0.0]], covs=[[[1.0, 2.0], [2.0, 1.0]]]), "positive definite"),
    (dict(weights=[1.0], means=[[0.0, 0.0]], covs=[[[1.0, 0.5], [0.0, 1.0]]]), "symmetric"),
])
def test_bad_mixtures_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        GaussianMixture(**kwargs)


def test_bad_points_raise():
    with pytest.raises(ValueError, match="x must have shape"):
        bimodal_1d().score(torch.zeros(3, 2))
