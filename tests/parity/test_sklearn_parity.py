"""Our training matches scikit-learn's LogisticRegression at the same C, for L2, L1, elastic net and no penalty.

scikit-learn is a test-only dependency: the reference, on a dataset it ships (breast cancer, standardized).
These live outside tests/unit because scikit-learn's saga needs about 45 s to converge tightly on two cases.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from stream_scorer.errors import TrainingError
from stream_scorer.model.calibration import sigmoid
from stream_scorer.training.train import fit


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


@pytest.mark.parametrize(
    ("penalty", "C", "class_weight"),
    [
        ("l2", 1.0, "balanced"),
        ("l2", 0.05, {0: 3.0, 1: 0.5}),
        ("l1", 0.1, "balanced"),
        ("l1", 0.3, "balanced"),
    ],
)
def test_class_weights_match_sklearn(data, penalty, C, class_weight) -> None:
    x, y = data
    solver = "lbfgs" if penalty == "l2" else "saga"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the penalty argument is deprecated in scikit-learn 1.8
        reference = LogisticRegression(
            penalty=penalty, C=C, class_weight=class_weight, solver=solver, tol=1e-12, max_iter=200_000
        ).fit(x, y)
    coef, intercept = fit(x, y, C=C, penalty=penalty, class_weight=class_weight)
    np.testing.assert_allclose(coef, reference.coef_[0], atol=1e-5, rtol=0)
    assert abs(intercept - reference.intercept_[0]) < 1e-5
    np.testing.assert_allclose(sigmoid(x @ coef + intercept), reference.predict_proba(x)[:, 1], atol=1e-6, rtol=0)
    if penalty == "l1":
        np.testing.assert_array_equal(coef == 0, reference.coef_[0] == 0)


@pytest.mark.parametrize(
    ("columns", "class_weight"),
    [([0, 1], None), ([0, 1, 4, 8], None), ([0, 1, 4, 8], "balanced"), ([0, 1, 2, 3, 4], None)],
)
def test_no_penalty_matches_sklearn_on_overlapping_classes(data, columns, class_weight) -> None:
    x, y = data[0][:, columns], data[1]
    # C=inf is scikit-learn's spelling of "no penalty" from 1.8 on (penalty=None is deprecated).
    reference = LogisticRegression(C=np.inf, class_weight=class_weight, tol=1e-12, max_iter=10_000).fit(x, y)
    coef, intercept = fit(x, y, penalty="none", class_weight=class_weight)
    np.testing.assert_allclose(coef, reference.coef_[0], atol=1e-4, rtol=0)
    assert abs(intercept - reference.intercept_[0]) < 1e-4


def test_no_penalty_refuses_the_separable_classes_where_sklearn_returns_huge_weights(data) -> None:
    x, y = data  # all 30 standardized features separate the classes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs stops at max_iter
        reference = LogisticRegression(C=np.inf, max_iter=1_000).fit(x, y)
    assert np.max(np.abs(reference.coef_)) > 100
    with pytest.raises(TrainingError, match="perfectly separable"):
        fit(x, y, penalty="none")


@pytest.mark.parametrize("loader", ["iris", "wine"])
@pytest.mark.parametrize("C", [0.1, 1.0, 10.0])
def test_multinomial_matches_sklearn(loader: str, C: float) -> None:
    from sklearn.datasets import load_iris, load_wine

    from stream_scorer.model.multinomial import softmax
    from stream_scorer.training.multinomial import fit_multinomial

    x, y = (load_iris if loader == "iris" else load_wine)(return_X_y=True)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    reference = LogisticRegression(C=C, tol=1e-12, max_iter=100_000).fit(x, y)  # lbfgs: multinomial for 3 classes
    coef, intercept = fit_multinomial(x, y, 3, C)
    np.testing.assert_allclose(coef, reference.coef_.T, atol=1e-4, rtol=0)
    # Intercepts are defined up to a common shift: compare them centered.
    np.testing.assert_allclose(intercept, reference.intercept_ - reference.intercept_.mean(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(softmax(x @ coef + intercept), reference.predict_proba(x), atol=1e-5, rtol=0)
