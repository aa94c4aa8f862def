"""Our training matches scikit-learn's LogisticRegression at the same C, for L2, L1 and elastic net.

scikit-learn is a test-only dependency: the reference, on a dataset it ships (breast cancer, standardized).
These live outside tests/unit because scikit-learn's saga needs about 45 s to converge tightly on two cases.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from stream_scorer.model.score import sigmoid
from stream_scorer.model.train import fit


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    return (x - x.mean(axis=0)) / x.std(axis=0), y.astype(float)


@pytest.mark.parametrize(
    ("penalty", "l1_ratio", "C"),
    [
        ("l2", None, 1.0),
        ("l2", None, 0.05),
        ("l1", None, 1.0),
        ("l1", None, 0.1),
        ("elasticnet", 0.5, 1.0),
        ("elasticnet", 0.3, 10.0),
    ],
)
def test_coefficients_and_probabilities_match_sklearn(data, penalty, l1_ratio, C) -> None:
    x, y = data
    options = {"solver": "lbfgs"} if penalty == "l2" else {"solver": "saga"}
    if penalty == "elasticnet":
        options["l1_ratio"] = l1_ratio
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # saga may warn that it stopped at max_iter
        reference = LogisticRegression(penalty=penalty, C=C, tol=1e-12, max_iter=200_000, **options).fit(x, y)
    coef, intercept = fit(x, y, C=C, penalty=penalty, l1_ratio=l1_ratio)
    np.testing.assert_allclose(coef, reference.coef_[0], atol=1e-4, rtol=0)
    assert abs(intercept - reference.intercept_[0]) < 1e-4
    ours = sigmoid(x @ coef + intercept)
    np.testing.assert_allclose(ours, reference.predict_proba(x)[:, 1], atol=1e-5, rtol=0)
    if penalty == "l1":  # the same features are exactly zero
        np.testing.assert_array_equal(coef == 0, reference.coef_[0] == 0)
