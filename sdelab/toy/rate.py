"""The paper's linear-rate proposition: KL_s <= exp(-int_s^t g(u)^2 / C_u du) KL_t under a log-Sobolev
inequality for p_u, in continuous time and for the discrete chain, with a proved constant for the toy mixture.

Convention: p satisfies LSI(C) when KL(nu || p) <= (C / 2) I(nu || p) for all nu, with the relative Fisher
information I(nu || p) = E_nu |grad log(nu / p)|^2; a Gaussian N(m, v) has C = v (and no smaller C).

Continuous time (reverse SDE, Eq. 4, where p_u = q_u): d/dt KL(p~_t || p_t) = (g^2 / 2) I(p~_t || p_t)
>= (g^2 / C_t) KL, hence the bound above (Gronwall, integrating from s up to t).

Discrete chain (Eq. 6, eta > 0): a step is x_s = m(x_t) + rho_s w. The push-forward by m keeps KL and
turns LSI(C) into LSI(L^2 C) with L = sup m'; convolving with N(0, tau) runs both densities along the
heat flow, where d/dtau KL = -(1/2) I <= -KL / C(tau) and C(tau) <= L^2 C + tau. Integrating over
tau in [0, rho_s^2]:  KL_s <= L^2 C_t / (L^2 C_t + rho_s^2) KL_t, and the chain marginal satisfies
LSI(C_s) with C_s = L^2 C_t + rho_s^2. Started from a proved C_t0 for q_t0 this recursion is a proved
bound for every step (L is measured on the x-grid, where m is smooth and its slope is largest between
the modes). It is the discrete analogue of the continuous bound: with m ~ 1 + O(dt) and rho^2 ~ g^2 dt
the factor is 1 - g^2 dt / C + O(dt^2).

What is proved and what is not. ``lsi_constant_bound`` is an upper bound on C (Holley-Stroock below),
so the curves built from it are valid bounds. They are loose where the modes separate (C grows like
exp(a^2 / 2v) for a mixture with means +-a and variance v). Every LSI constant is >= the variance
(LSI implies the Poincare inequality with the same C, and f(x) = x gives Var <= C), so the curves
built from the variance (``*_variance_curve``) are the best any LSI argument could give: the true
LSI bound lies between the two. The variance curves are not bounds on KL.
"""

from __future__ import annotations

import numpy as np
import torch

from sdelab.schedules import VPSchedule
from sdelab.toy.exact import ExactChain
from sdelab.toy.gmm import GaussianMixture


def _moments_1d(q: GaussianMixture) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights, means and variances of a 1-D mixture, each (K,)."""
    if q.dim != 1:
        raise ValueError(f"q must be a 1-D mixture, got dimension {q.dim}")
    return q.weights.numpy(), q.means[:, 0].numpy(), q.covs[:, 0, 0].numpy()


def _variance(w, mu, v) -> np.ndarray:
    """Var of 1-D mixtures: weights (K,), means and variances (..., K); returns (...)."""
    return np.sum(w * (v + mu**2), axis=-1) - np.sum(w * mu, axis=-1) ** 2


def _lsi_bound(w, mu, v) -> np.ndarray:
    """Holley-Stroock bound (``lsi_constant_bound``) for mixtures with weights (K,), means and variances (..., K)."""
    if len(w) == 1:
        return v[..., 0]
    if len(w) != 2 or not np.isclose(w[0], w[1]) or not np.allclose(v[..., 0], v[..., 1]):
        raise ValueError(f"q must be one Gaussian or an equal-weight, equal-variance pair, got weights {w.tolist()} "
                         f"and variances {v.tolist()}")
    a, v = np.abs(mu[..., 1] - mu[..., 0])[..., None] / 2, v[..., :1]  # (..., 1)
    # (..., n_r) candidates: any r in (0, 1) gives a valid bound; r = 1 - A is the optimum when A = a^2 / v < 1
    r = np.concatenate([np.broadcast_to(np.linspace(1e-4, 1 - 1e-4, 4000), a.shape[:-1] + (4000,)),
                        np.clip(1 - a**2 / v, 1e-4, 1 - 1e-4)], axis=-1)
    log_c = np.log(v / r) + (np.maximum(a**2 / v / (1 - r), 1) - 1) * np.log(2)  # (..., n_r)
    return np.exp(log_c.min(axis=-1))


def variance(q: GaussianMixture) -> float:
    """Var of a 1-D mixture, sum_k w_k (v_k + mu_k^2) - (sum_k w_k mu_k)^2: a lower bound on its LSI constant."""
    return float(_variance(*_moments_1d(q)))


def lsi_constant_bound(q: GaussianMixture) -> float:
    """Proved upper bound on the LSI constant of N(m, v) (= v) or of 1/2 N(m - a, v) + 1/2 N(m + a, v) (Holley-Stroock).

    Write -log p = V = x^2 / (2v) - log cosh(a x / v) + const (centred at m) and split V = U + W with
    U = x^2 / (2v) - kappa log cosh(beta x), beta = (1 - r) / a, kappa = a / (v beta), for any r in (0, 1).
    Then U'' >= 1/v - kappa beta^2 = r / v, so U satisfies LSI(v / r) (Bakry-Emery), and
    W = -log cosh(a x / v) + kappa log cosh(beta x) decreases on x > 0 from 0 to (1 - kappa) log 2 when
    kappa >= 1 (if kappa < 1 take beta = a / v, W = 0, needing A = a^2 / v <= 1 - r). Holley-Stroock:
    C <= (v / r) exp(osc W) = (v / r) 2^(max(A / (1 - r), 1) - 1); minimised over a fine grid of r.
    """
    return float(_lsi_bound(*_moments_1d(q)))


def _decay(constant, q0: GaussianMixture, schedule: VPSchedule, times, substeps: int) -> np.ndarray:
    """exp(-int_t^t0 g^2 / C(q_u) du) at every time, C = ``constant``; trapezoid on ``substeps`` per interval."""
    if schedule.discrete:
        raise ValueError(f"the continuous rate needs a continuous schedule (g^2), got {schedule}")
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or len(times) < 2 or not (np.diff(times) < 0).all():
        raise ValueError("times must be a decreasing 1-D array of >= 2 times (t0 first)")
    if not isinstance(substeps, int) or substeps < 1:
        raise ValueError(f"substeps must be a positive integer, got {substeps!r}")
    fine = np.concatenate([np.linspace(a, b, substeps + 1)[:-1] for a, b in zip(times[:-1], times[1:], strict=True)]
                          + [times[-1:]])  # (n_u,) = (substeps * (n_t - 1) + 1,)
    u = torch.as_tensor(fine)
    alpha, sigma, g2 = (v.numpy()[:, None] for v in (schedule.alpha(u), schedule.sigma(u), schedule.g2(u)))
    w, mu, v = _moments_1d(q0)
    integrand = g2[:, 0] / constant(w, alpha * mu, alpha**2 * v + sigma**2)  # (n_u,) q_u's moments are (n_u, K)
    cumulative = np.concatenate([[0.0], np.cumsum(0.5 * (integrand[1:] + integrand[:-1]) * -np.diff(fine))])
    return np.exp(-cumulative[::substeps])


def continuous_rate_bound(q0: GaussianMixture, schedule: VPSchedule, times, substeps: int = 10) -> np.ndarray:
    """Bound on KL_t / KL_t0 for the reverse SDE (Eq. 4): exp(-int_t^t0 g^2 / C_u du), C_u = lsi_constant_bound(q_u)."""
    return _decay(_lsi_bound, q0, schedule, times, substeps)


def continuous_variance_curve(q0: GaussianMixture, schedule: VPSchedule, times, substeps: int = 10) -> np.ndarray:
    """exp(-int_t^t0 g^2 / Var(q_u) du): the best rate any LSI argument could give (not a bound on KL)."""
    return _decay(_variance, q0, schedule, times, substeps)


def chain_rate_bound(chain: ExactChain, c0: float) -> np.ndarray:
    """Bound on KL_i / KL_0 along a discrete chain (eta > 0), shape (steps + 1,), given LSI(c0) at t0.

    Per step: factor L^2 C / (L^2 C + rho^2), then C <- L^2 C + rho^2 (module docstring).
    """
    if chain.eta == 0:
        raise ValueError("chain_rate_bound needs a chain with eta > 0: the ODE chain (eta = 0) does not contract")
    if not c0 > 0:
        raise ValueError(f"c0 must be a positive LSI constant, got {c0}")
    c, factors = c0, []
    for L, r in zip(chain.lipschitz, chain.rho, strict=True):
        pushed = L**2 * c
        factors.append(pushed / (pushed + r**2))
        c = pushed + r**2
    return np.cumprod(np.r_[1.0, factors])


def chain_variance_curve(chain: ExactChain) -> np.ndarray:
    """prod (Var p_s - rho^2) / Var p_s over the steps: the best rate any LSI argument could give (not a bound)."""
    h = chain.x[1] - chain.x[0]
    var = []
    for i in range(len(chain.t)):
        p = chain.density(i, edited=False)
        mean = h * np.sum(chain.x * p)
        var.append(h * np.sum((chain.x - mean) ** 2 * p))
    var = np.array(var[1:])
    return np.cumprod(np.r_[1.0, (var - chain.rho**2) / var])
