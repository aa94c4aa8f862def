"""Calibration: Platt and isotonic fits equal scikit-learn's, apply/fold agree, bad manifests are refused."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from stream_scorer.errors import ModelArtifactError, TrainingError
from stream_scorer.model.calibration import Calibration, apply, sigmoid
from stream_scorer.training.calibration import fit_isotonic, fit_platt


def miscalibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits of an overconfident, shifted model: the truth is sigmoid(0.5 * z - 0.3)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=3.0, size=n)
    y = (rng.random(n) < sigmoid(0.5 * z - 0.3)).astype(float)
    return z, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_platt_equals_unpenalized_sklearn_logistic_regression(seed: int) -> None:
    z, y = miscalibrated(2000, seed)
    cal = fit_platt(z, y)
    reference = LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-12, max_iter=1000)
    reference.fit(z.reshape(-1, 1), y)
    assert cal.method == "platt"
    assert abs(cal.a - reference.coef_[0, 0]) < 1e-6
    assert abs(cal.b - reference.intercept_[0]) < 1e-6
    np.testing.assert_allclose(apply(cal, z), reference.predict_proba(z.reshape(-1, 1))[:, 1], atol=1e-6)
    # Not a tautology: the model is miscalibrated, so the fit is far from the identity map.
    assert abs(cal.a - 0.5) < 0.1 and abs(cal.a - 1.0) > 0.3


def test_platt_satisfies_the_first_order_conditions() -> None:
    z, y = miscalibrated(500, 7)
    cal = fit_platt(z, y)
    residual = apply(cal, z) - y
    assert abs(residual.sum()) < 1e-8
    assert abs(residual @ z) < 1e-8


@pytest.mark.parametrize(
    ("logits", "labels", "message"),
    [
        ([0.1, 0.2, 0.3], [1.0, 1.0, 1.0], "both classes"),
        ([0.5, 0.5, 0.5], [0.0, 1.0, 1.0], "all held-out logits are equal"),
        ([-1.0, 0.0, 2.0, 3.0], [0.0, 0.0, 1.0, 1.0], "separates"),
        ([-1.0, 0.0, 0.0, 3.0], [0.0, 0.0, 1.0, 1.0], "separates"),  # quasi-separation: a tie at the boundary
        ([3.0, 2.0, -1.0], [0.0, 0.0, 1.0], "separates"),
        ([0.1, np.nan, 0.3], [0.0, 1.0, 1.0], "finite"),
        ([0.1, 0.2], [0.0, 2.0], "0 or 1"),
        ([0.1, 0.2], [0.0], "equal length"),
        ([], [], "at least one"),
    ],
)
def test_platt_refuses_data_without_a_finite_fit(logits: list[float], labels: list[float], message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        fit_platt(np.array(logits), np.array(labels))


def sklearn_isotonic(x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> IsotonicRegression:
    return IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(x, y, sample_weight=weight)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_isotonic_predictions_equal_sklearn_with_ties_and_weights(seed: int) -> None:
    rng = np.random.default_rng(seed)
    z, y = miscalibrated(3000, seed)
    p = np.round(sigmoid(z), 2)  # rounding makes many tied probabilities
    weight = rng.choice([0.0, 0.5, 1.0, 3.0], size=len(p)) if seed % 2 else None
    assert len(np.unique(p)) < len(p) / 10
    cal = fit_isotonic(p, y, weight)
    reference = sklearn_isotonic(p, y, weight)
    test_p = np.r_[rng.random(2000), p, 0.0, 1.0, -0.5, 1.5, cal.x]
    np.testing.assert_allclose(np.interp(test_p, cal.x, cal.y), reference.predict(test_p), rtol=0, atol=1e-9)
    test_z = rng.normal(scale=4.0, size=1000)
    np.testing.assert_allclose(apply(cal, test_z), reference.predict(sigmoid(test_z)), rtol=0, atol=1e-9)
    assert len(np.unique(cal.y)) > 3  # a real staircase, not a constant


def test_isotonic_knots_are_the_block_ends_of_the_sklearn_fit() -> None:
    z, y = miscalibrated(1000, 5)
    p = sigmoid(z)
    cal = fit_isotonic(p, y)
    reference = sklearn_isotonic(p, y)
    np.testing.assert_allclose(cal.x, reference.X_thresholds_, rtol=0, atol=0)
    np.testing.assert_allclose(cal.y, reference.y_thresholds_, rtol=0, atol=1e-12)
    assert np.all(np.diff(cal.x) > 0) and np.all(np.diff(cal.y) >= 0)


def test_isotonic_pools_near_ties_like_sklearn() -> None:
    # Distinct floats closer than 1e-15 count as one x value in scikit-learn.
    p = np.array([0.5, np.nextafter(0.5, 1.0), 0.25, 0.75, 0.5])
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.0])
    cal = fit_isotonic(p, y)
    test_p = np.array([0.5, np.nextafter(0.5, 1.0), 0.3, 0.7])
    np.testing.assert_allclose(np.interp(test_p, cal.x, cal.y), sklearn_isotonic(p, y).predict(test_p), atol=1e-12)
    assert cal.x == (0.25, 0.5, 0.75)


def test_isotonic_with_one_distinct_probability_is_a_constant() -> None:
    cal = fit_isotonic(np.full(4, 0.3), np.array([0.0, 1.0, 1.0, 1.0]))
    assert cal.x == (0.3,) and cal.y == (0.75,)
    np.testing.assert_allclose(apply(cal, np.array([-5.0, 0.0, 5.0])), 0.75)


@pytest.mark.parametrize(
    ("p", "labels", "weight", "message"),
    [
        ([0.1, 1.2], [0.0, 1.0], None, r"\[0, 1\]"),
        ([0.1, 0.2], [0.0, 1.0], [1.0, -1.0], "non-negative"),
        ([0.1, 0.2], [0.0, 1.0], [1.0], "one finite"),
        ([0.1, 0.2], [0.0, 1.0], [0.0, 0.0], "positive weight"),
        ([0.1, np.inf], [0.0, 1.0], None, "finite"),
    ],
)
def test_isotonic_refuses_bad_input(
    p: list[float], labels: list[float], weight: list[float] | None, message: str
) -> None:
    with pytest.raises(TrainingError, match=message):
        fit_isotonic(np.array(p), np.array(labels), None if weight is None else np.array(weight))


def test_apply_keeps_probabilities_in_range_and_does_not_mutate() -> None:
    z = np.array([-1000.0, -3.0, 0.0, 3.0, 1000.0])
    before = z.copy()
    for cal in (Calibration(), Calibration("platt", a=-2.0, b=5.0), Calibration("isotonic", x=(0.2,), y=(0.4,))):
        p = apply(cal, z)
        assert p.shape == z.shape and np.all((p >= 0) & (p <= 1))
    np.testing.assert_array_equal(z, before)
    np.testing.assert_array_equal(apply(Calibration(), z), sigmoid(z))


@pytest.mark.parametrize("cal", [Calibration(), Calibration("platt", a=0.6, b=-0.4)])
def test_folding_an_affine_map_into_the_weights_gives_the_same_scores(cal: Calibration) -> None:
    rng = np.random.default_rng(3)
    matrix, weights, bias = rng.normal(size=(50, 4)), rng.normal(size=4), 0.7
    folded = cal.fold(weights, bias)
    assert folded is not None
    np.testing.assert_allclose(sigmoid(matrix @ folded[0] + folded[1]), apply(cal, matrix @ weights + bias), atol=1e-12)


def test_isotonic_cannot_be_folded() -> None:
    cal = Calibration("isotonic", x=(0.1, 0.9), y=(0.0, 1.0))
    assert cal.affine is None and cal.fold(np.ones(2), 0.0) is None


def test_fitted_calibrations_survive_a_json_round_trip() -> None:
    z, y = miscalibrated(300, 11)
    for cal in (Calibration(), fit_platt(z, y), fit_isotonic(sigmoid(z), y)):
        again = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
        assert again == cal
        np.testing.assert_array_equal(apply(again, z), apply(cal, z))


@pytest.mark.parametrize(
    ("d", "message"),
    [
        ([1, 2], "JSON object"),
        ({"method": "sigmoid"}, "method must be one of"),
        ({}, "method must be one of"),
        ({"method": "platt", "a": 1.0}, r"missing \['b'\]"),
        ({"method": "none", "a": 1.0}, r"unexpected \['a'\]"),
        ({"method": "platt", "a": float("nan"), "b": 0.0}, "finite number"),
        ({"method": "platt", "a": "1.0", "b": 0.0}, "finite number"),
        ({"method": "platt", "a": True, "b": 0.0}, "finite number"),
        ({"method": "isotonic", "x": [0.1, 0.1], "y": [0.0, 1.0]}, "strictly increasing"),
        ({"method": "isotonic", "x": [0.1, 0.2], "y": [0.5, 0.4]}, "non-decreasing"),
        ({"method": "isotonic", "x": [0.1, 0.2], "y": [0.5, 1.5]}, r"\[0, 1\]"),
        ({"method": "isotonic", "x": [-0.1, 0.2], "y": [0.5, 0.6]}, r"\[0, 1\]"),
        ({"method": "isotonic", "x": [0.1, float("inf")], "y": [0.5, 0.6]}, "finite number"),
        ({"method": "isotonic", "x": [0.1, 0.2], "y": [0.5]}, "as many x as y"),
        ({"method": "isotonic", "x": [], "y": []}, "at least 1"),
        ({"method": "isotonic", "x": "0.1", "y": [0.5]}, "lists of numbers"),
    ],
)
def test_from_dict_refuses_bad_manifests_with_a_clear_message(d: Any, message: str) -> None:
    with pytest.raises(ModelArtifactError, match=message):
        Calibration.from_dict(d)
