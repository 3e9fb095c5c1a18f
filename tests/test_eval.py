"""sdelab.eval: the Frechet distance, its bias-corrected interval, paired differences and the table formatter, on
cases whose answer is known."""

import numpy as np
import pytest
from scipy import linalg

from sdelab.eval.bootstrap import (
    Estimate,
    bootstrap,
    frechet_estimate,
    mean_estimate,
    paired_frechet_difference,
    paired_mean_difference,
)
from sdelab.eval.frechet import FrechetReference, frechet_distance
from sdelab.eval.tables import cell, label, markdown_table


def test_frechet_distance_closed_forms_and_the_textbook_formula():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))  # correlated features
    a -= a.mean(0)
    shift = rng.normal(size=6)
    # equal covariances: the squared distance of the means
    assert frechet_distance(a + shift, a) == pytest.approx((shift**2).sum(), rel=1e-9)
    # a (mean 0) scaled by 2: tr(S + 4 S - 2 (4 S^2)^1/2) = tr(S)
    assert frechet_distance(2 * a, a) == pytest.approx(np.trace(np.cov(a, rowvar=False)), rel=1e-9)
    b = rng.normal(size=(300, 6))
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    textbook = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca + cb - 2 * linalg.sqrtm(ca @ cb).real)
    assert frechet_distance(a, b) == pytest.approx(textbook, rel=1e-9)
    with pytest.raises(ValueError, match="a must be an"):
        FrechetReference(b).distance(a[:, :3])


def test_the_frechet_interval_is_bias_corrected():
    # 60 draws of the reference's own distribution: resampling repeats rows and inflates the distance, so every
    # resampled distance lies above the estimate; the corrected interval is the same spread moved onto it
    rng = np.random.default_rng(1)
    reference = FrechetReference(rng.normal(size=(5000, 8)))
    x = rng.normal(size=(60, 8))
    raw = bootstrap(lambda i: reference.distance(x[i]), (60,), 200, seed=0)
    corrected = frechet_estimate(x, reference, 200, seed=0)
    assert raw.value == corrected.value and raw.low > raw.value  # the uncorrected interval misses its estimate
    assert corrected.low < corrected.value < corrected.high
    assert corrected.high - corrected.low == pytest.approx(raw.high - raw.low)


def test_paired_differences_have_the_known_sign_and_pair_the_resamples():
    rng = np.random.default_rng(2)
    reference = FrechetReference(rng.normal(size=(4000, 4)))
    near = rng.normal(size=(200, 4))
    far = near + 0.5  # the same inputs moved away from the reference: only the means' term changes
    expected = ((near.mean(0) - reference.mean) ** 2).sum() - ((far.mean(0) - reference.mean) ** 2).sum()
    d = paired_frechet_difference(near, far, reference, 200, seed=0)
    assert expected < -0.5 and d.value == pytest.approx(expected, rel=1e-9) and d.high < 0
    assert paired_frechet_difference(far, near, reference, 200, seed=0).low > 0
    # per-image values: the paired interval of a - b is tight although a and b vary a lot from image to image
    a = rng.normal(size=300)
    diff = paired_mean_difference(a + 0.05, a, 200, seed=0)
    assert diff.value == pytest.approx(0.05) and diff.low == pytest.approx(0.05) == diff.high
    unpaired = mean_estimate(a + 0.05, 200, seed=0)
    assert unpaired.high - unpaired.low > 0.1  # alone, each mean's interval is wide
    # one seed, one set of resamples: the interval of 2 a is twice that of a
    twice = mean_estimate(2 * a, 200, seed=3)
    once = mean_estimate(a, 200, seed=3)
    assert (twice.low, twice.high) == pytest.approx((2 * once.low, 2 * once.high))
    with pytest.raises(ValueError, match="same inputs"):
        paired_mean_difference(a, a[:10], 200, seed=0)
    with pytest.raises(ValueError, match="reps must be"):
        mean_estimate(a, 1, seed=0)


def test_the_table_formatter():
    e = Estimate(0.1449, 0.0912, 0.2051)
    assert cell(e) == "0.14 [0.09, 0.21]" and cell(e, interval=False) == "0.14"
    assert cell(Estimate(0.02, -0.001, 0.04), 3, signed=True) == "+0.020 [-0.001, +0.040]"
    assert cell(-1e-13) == "0.00" and cell(np.float64(0.5)) == "0.50" and cell(None) == "" and cell(3) == "3"
    assert label(0.2) == "0.2" and label(None) == "" and label(25) == "25"
    table = markdown_table(["a", "b"], [["1", "2"]], "*against the 1347 training digits*")
    assert table == "*against the 1347 training digits*\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    with pytest.raises(ValueError, match="caption"):
        markdown_table(["a"], [["1"]], "")
    with pytest.raises(ValueError, match="every row must have 2 cells"):
        markdown_table(["a", "b"], [["1"]], "caption")
