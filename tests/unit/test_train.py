"""Training: the optimum satisfies its first-order conditions, truth is recovered, bad data is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stream_scorer.errors import TrainingError
from stream_scorer.model.score import sigmoid
from stream_scorer.model.train import auc, evaluate, fit, read_csv, train


def logistic_data(n: int, coef: np.ndarray, intercept: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(coef)))
    y = (rng.random(n) < sigmoid(x @ coef + intercept)).astype(float)
    return x, y


def test_fit_satisfies_the_penalized_optimality_conditions() -> None:
    x, y = logistic_data(2000, np.array([1.5, -2.0, 0.0, 0.7]), -0.5)
    C = 0.05
    coef, intercept = fit(x, y, C=C)
    residual = sigmoid(x @ coef + intercept) - y
    # Gradient of 0.5*||w||^2 + C*sum(logloss) is zero at the optimum; the intercept is not penalized.
    np.testing.assert_allclose(coef + C * x.T @ residual, 0.0, atol=1e-8)
    assert abs(C * residual.sum()) < 1e-8


def test_fit_recovers_the_true_coefficients_with_weak_regularization() -> None:
    truth = np.array([1.5, -2.0, 0.0, 0.7])
    x, y = logistic_data(40_000, truth, -0.5, seed=2)
    coef, intercept = fit(x, y, C=100.0)
    np.testing.assert_allclose(coef, truth, atol=0.08)
    assert abs(intercept + 0.5) < 0.08


def test_stronger_penalty_shrinks_coefficients() -> None:
    x, y = logistic_data(1000, np.array([2.0, -1.0]), 0.0)
    weak, _ = fit(x, y, C=10.0)
    strong, _ = fit(x, y, C=0.001)
    assert np.linalg.norm(strong) < np.linalg.norm(weak)


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.write_text("\n".join(",".join(map(str, r)) for r in [header, *rows]) + "\n")
    return path


def test_train_end_to_end_from_csv(tmp_path: Path) -> None:
    x, y = logistic_data(3000, np.array([1.0, -1.0]), -1.0, seed=4)
    times = np.arange(3000) * 1000
    rows = [[x[i, 0] * 10 + 5, x[i, 1], int(y[i]), times[i]] for i in range(3000)]
    data = read_csv(write_csv(tmp_path / "d.csv", ["event.a", "event.b", "label", "event_time"], rows))
    model = train(data, name="m", version="v1", C=1.0)
    assert model.feature_names == ("event.a", "event.b")
    np.testing.assert_allclose(model.mean[0], 5.0, atol=0.5)
    assert model.metrics["validation"]["auc"] > 0.75
    assert model.training["split"] == "time" and 0 < model.threshold < 1
    np.testing.assert_array_equal(model.defaults, model.mean)
    assert len(model.golden_vectors["scores"]) == 8 and model.training["penalty"] == "l2"


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        (["event.a", "label"], [], "empty"),
        (["event.a", "target"], [[1, 0], [2, 1]], "no 'label' column"),
        (["event.a", "label"], [[1, 0]] * 20, "one class"),
        (["event.a", "label"], [[1, "nan"]] * 20, "NaN"),
        (["event.a", "label"], [[1, 2]] * 20, "0 or 1"),
        (["event.a", "label"], [["x", 1]] * 20, "not a number"),
        (["event.a", "label"], [["inf", 1], [1, 0]] * 10, "finite"),
        (["event.a", "label"], [[1, 0], [2, 1]], "at least 10"),
    ],
)
def test_bad_datasets_are_refused_with_a_clear_error(tmp_path: Path, header, rows, message) -> None:
    path = write_csv(tmp_path / "bad.csv", header, rows)
    with pytest.raises(TrainingError, match=message):
        train(read_csv(path), name="m", version="1")


def test_empty_file_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(TrainingError, match="empty"):
        read_csv(tmp_path / "empty.csv")
    with pytest.raises(TrainingError, match="does not exist"):
        read_csv(tmp_path / "nope.csv")


def test_auc_against_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(300), 2)  # with ties
    labels = (rng.random(300) < 0.3).astype(float)
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairwise = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (
        len(pos) * len(neg)
    )
    assert auc(scores, labels) == pytest.approx(pairwise, abs=1e-12)


def test_metrics_are_nan_not_zero_when_undefined() -> None:
    out = evaluate(np.array([0.1, 0.2]), np.array([0.0, 0.0]), threshold=0.5)
    assert np.isnan(out["auc"]) and np.isnan(out["precision"]) and np.isnan(out["recall"])
    assert np.isnan(evaluate(np.array([]), np.array([]), 0.5)["log_loss"])
