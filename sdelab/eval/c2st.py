"""The classifier two-sample test (Lopez-Paz and Oquab, ICLR 2017): how well a classifier tells two sets apart."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

FOLDS = 5  # cross-validation folds


def c2st(a: np.ndarray, b: np.ndarray, seed: int = 0, folds: int = FOLDS) -> tuple[float, np.ndarray]:
    """The accuracy of ``folds``-fold cross-validated predictions of a logistic regression on [x, x^2] telling the
    rows of a (n, d) from those of b (n, d); 0.5 = indistinguishable.

    Returns (accuracy, correct): correct (2n,) bool, the verdict on every row (a's rows first), for the bootstrap.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"a and b must be (n, d) arrays of one shape (equal sizes: chance is 0.5), got "
                         f"{a.shape} and {b.shape}")
    if not 2 <= folds <= len(a):
        raise ValueError(f"folds must lie in [2, n = {len(a)}], got {folds}")
    x = np.concatenate([a, b])
    x = np.concatenate([x, x**2], axis=1)  # (2n, 2d): a linear classifier on these sees means and variances
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    with threadpool_limits(limits=1):
        verdict = cross_val_predict(classifier, x, y, cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    correct = verdict == y
    return float(correct.mean()), correct
