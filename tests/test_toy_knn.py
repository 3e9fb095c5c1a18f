"""The kNN KL estimator against closed-form KL between Gaussians, its bands, and its input checks."""

import numpy as np
import pytest
import torch

from sdelab.toy.knn import knn_kl, knn_kl_bootstrap

TOL = 0.04  # |estimate - KL| allowed at n = m = 20000, k = 5: measured bias <= 0.015 plus ~3 noise s.d.


def gaussian_kl(m0, S0, m1, S1) -> float:
    """KL(N(m0, S0) || N(m1, S1)) in closed form."""
    m0, m1, S0, S1 = (np.atleast_1d(np.asarray(a, dtype=float)) for a in (m0, m1, S0, S1))
    S0, S1 = np.atleast_2d(S0), np.atleast_2d(S1)
    d, dm, S1_inv = len(m0), m1 - m0, np.linalg.inv(S1)
    return 0.5 * (np.trace(S1_inv @ S0) + dm @ S1_inv @ dm - d + np.log(np.linalg.det(S1) / np.linalg.det(S0)))


CASES = {  # name: (m0, S0, m1, S1), closed-form KL in the comment
    "1d-shift": ([0.0], [[1.0]], [1.0], [[1.0]]),  # 0.5
    "1d-wider-Q": ([0.0], [[1.0]], [0.5], [[2.0]]),  # 0.159
    "2d-shift": ([0.0, 0.0], np.eye(2), [0.8, -0.6], np.eye(2)),  # 0.5
    "2d-correlated": ([0.0, 0.0], [[1.0, 0.4], [0.4, 1.0]], [0.3, 0.0], [[1.5, 0.0], [0.0, 1.2]]),  # 0.16
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_estimate_matches_closed_form_gaussian_kl(case):
    m0, S0, m1, S1 = CASES[case]
    rng = np.random.default_rng(7)
    x = rng.multivariate_normal(m0, S0, 20000)  # (n, d)
    y = rng.multivariate_normal(m1, S1, 20000)  # (m, d)
    true = gaussian_kl(m0, S0, m1, S1)
    assert true > 0.15  # far from 0 compared with TOL
    assert abs(knn_kl(x, y) - true) < TOL


@pytest.mark.parametrize("d", [1, 2])
def test_kl_of_p_with_itself_is_zero_within_the_band(d):
    rng = np.random.default_rng(d)
    x, y = rng.standard_normal((5000, d)), rng.standard_normal((2500, d))  # m != n tests log(m / (n - 1))
    est, low, high = knn_kl_bootstrap(x, y, n_boot=30, seed=1)
    assert low < 0 < high
    assert high - low < 0.1
    # a real difference, KL = 0.08 (a shift by 0.4 s.d.), is resolved by the band at this n
    est, low, high = knn_kl_bootstrap(x, y + 0.4 * np.eye(d)[0], n_boot=30, seed=1)
    assert low > 0 and abs(est - 0.08) < TOL


def test_band_width_matches_the_spread_of_independent_repeats():
    rng = np.random.default_rng(3)
    repeats = [knn_kl(rng.standard_normal((2000, 2)), rng.standard_normal((2000, 2)) + [1.0, 0.0])
               for _ in range(30)]
    x, y = rng.standard_normal((2000, 2)), rng.standard_normal((2000, 2)) + [1.0, 0.0]
    est, low, high = knn_kl_bootstrap(x, y, n_boot=60, level=0.95, seed=0)
    assert (high - low) / 2 / 1.96 == pytest.approx(np.std(repeats, ddof=1), rel=0.5)
    assert low < est < high


def test_accepts_torch_and_flat_1d_input_and_is_reproducible():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(500), rng.standard_normal(400) + 1
    ref = knn_kl(x[:, None], y[:, None], k=3)
    assert knn_kl(torch.from_numpy(x), torch.from_numpy(y).float()[:, None], k=3) == pytest.approx(ref, abs=1e-6)
    assert knn_kl(x, y, k=3) == ref
    assert knn_kl_bootstrap(x, y, seed=5) == knn_kl_bootstrap(x, y, seed=5)
    assert knn_kl_bootstrap(x, y, seed=np.random.default_rng(5)) == knn_kl_bootstrap(x, y, seed=5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(k=0), "k must be"),
    (dict(k=2.5), "k must be"),
    (dict(x=np.zeros((5, 1)) + np.arange(5)[:, None]), "x must hold at least 6"),
    (dict(y=np.arange(3.0)[:, None]), "y must hold at least 5"),
    (dict(y=np.random.default_rng(0).standard_normal((50, 2))), "y must have the dimension of x"),
    (dict(x=np.zeros((4, 5, 1))), "x must have shape"),
    (dict(x=np.full((50, 1), np.nan)), "x must be finite"),
    (dict(x=np.repeat(np.arange(25.0), 2)[:, None]), "x contains repeated points"),
])
def test_bad_inputs_raise_value_error_naming_the_argument(kwargs, match):
    rng = np.random.default_rng(0)
    args = dict(x=rng.standard_normal((50, 1)), y=rng.standard_normal((50, 1)), k=5) | kwargs
    with pytest.raises(ValueError, match=match):
        knn_kl(**args)


def test_shared_points_and_bad_bootstrap_arguments_raise():
    x = np.random.default_rng(0).standard_normal((50, 1))
    with pytest.raises(ValueError, match="share points"):
        knn_kl(x, x)
    with pytest.raises(ValueError, match="n_boot must be"):
        knn_kl_bootstrap(x, x + 1, n_boot=1)
    with pytest.raises(ValueError, match="level must lie in"):
        knn_kl_bootstrap(x, x + 1, level=1.0)
    with pytest.raises(ValueError, match="x must hold at least 12"):
        knn_kl_bootstrap(x[:11], x + 1)
