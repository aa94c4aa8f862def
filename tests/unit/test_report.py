"""Quality report: metrics equal scikit-learn's, undefined metrics are NaN, the cost threshold is optimal."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from stream_scorer.errors import TrainingError
from stream_scorer.training import report
from stream_scorer.training.report import cut_below, format_report, quality_report, reliability, threshold_for_cost


def held_out(n: int, seed: int, decimals: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = rng.beta(1.0, 3.0, size=n)
    if decimals is not None:
        scores = np.round(scores, decimals)  # ties
    labels = (rng.random(n) < np.clip(scores * 1.3, 0.0, 1.0)).astype(float)
    return scores, labels


@pytest.mark.parametrize(("seed", "decimals", "threshold"), [(0, None, 0.3), (1, 2, 0.25), (2, 1, 0.1)])
def test_report_equals_sklearn_metrics(seed: int, decimals: int | None, threshold: float) -> None:
    scores, labels = held_out(3000, seed, decimals)
    r = quality_report(scores, labels, threshold)
    predicted = (scores >= threshold).astype(float)
    tn, fp, fn, tp = confusion_matrix(labels, predicted).ravel()
    assert r["rows"] == 3000 and r["positives"] == int(labels.sum())
    assert r["positive_rate"] == pytest.approx(labels.mean(), abs=1e-12)
    assert r["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert r["log_loss"] == pytest.approx(log_loss(labels, scores, labels=[0.0, 1.0]), abs=1e-12)
    assert r["brier"] == pytest.approx(brier_score_loss(labels, scores), abs=1e-12)
    assert r["precision"] == pytest.approx(precision_score(labels, predicted), abs=1e-12)
    assert r["recall"] == pytest.approx(recall_score(labels, predicted), abs=1e-12)
    assert r["f1"] == pytest.approx(f1_score(labels, predicted), abs=1e-12)
    assert r["false_positive_rate"] == pytest.approx(fp / (fp + tn), abs=1e-12)
    assert r["false_negative_rate"] == pytest.approx(fn / (fn + tp), abs=1e-12)
    assert r["threshold"] == threshold
    assert 0.5 < r["auc"] < 1.0  # a real signal, so agreement is not trivial


def test_log_loss_clips_at_1e_15() -> None:
    expected = -(math.log(1e-15) + math.log(1.0 - (1.0 - 1e-15))) / 2
    assert report.log_loss(np.array([0.0, 1.0]), np.array([1.0, 0.0])) == pytest.approx(expected, rel=1e-12)
    assert expected > 34.0


def test_report_is_json_ready() -> None:
    scores, labels = held_out(200, 3)
    r = quality_report(scores, labels, 0.5)
    text = json.dumps(r)
    assert json.dumps(json.loads(text)) == text  # NaN != NaN, so compare the text
    assert [type(r[k]) for k in ("rows", "positives", "auc")] == [int, int, float]


def test_undefined_metrics_are_nan_never_zero() -> None:
    empty = quality_report(np.zeros(0), np.zeros(0), 0.5)
    assert empty["rows"] == 0 and empty["positives"] == 0
    for key in ("positive_rate", "auc", "log_loss", "brier", "ece", "precision", "recall", "f1"):
        assert math.isnan(empty[key]), key
    assert all(b["count"] == 0 and math.isnan(b["mean_score"]) for b in empty["reliability"])

    negatives_only = quality_report(np.array([0.2, 0.7]), np.array([0.0, 0.0]), 0.5)
    assert math.isnan(negatives_only["auc"]) and math.isnan(negatives_only["recall"])
    assert math.isnan(negatives_only["false_negative_rate"])
    assert negatives_only["precision"] == 0.0 and negatives_only["false_positive_rate"] == 0.5

    nobody_flagged = quality_report(np.array([0.2, 0.3]), np.array([0.0, 1.0]), 0.9)
    assert math.isnan(nobody_flagged["precision"])
    assert nobody_flagged["recall"] == 0.0 and nobody_flagged["f1"] == 0.0


def test_reliability_matches_calibration_curve_and_histogram() -> None:
    scores, labels = held_out(5000, 4)
    scores *= 0.75
    r = reliability(scores, labels, bins=10)
    counts, _ = np.histogram(scores, bins=np.linspace(0.0, 1.0, 11))
    np.testing.assert_array_equal(r.count, counts)
    prob_true, prob_pred = calibration_curve(labels, scores, n_bins=10)
    filled = r.count > 0
    assert (~filled).any()  # the top bins are empty: those must be skipped, not zero
    assert np.all(np.isnan(r.mean_score[~filled]))
    np.testing.assert_allclose(r.positive_rate[filled], prob_true, atol=1e-12)
    np.testing.assert_allclose(r.mean_score[filled], prob_pred, atol=1e-12)
    ece = np.sum(r.count[filled] / len(scores) * np.abs(prob_pred - prob_true))
    assert r.expected_calibration_error == pytest.approx(ece, abs=1e-12)
    assert r.expected_calibration_error > 0.01


def test_reliability_bins_are_closed_on_the_left_and_the_last_on_both_sides() -> None:
    r = reliability(np.array([0.0, 0.5, 0.5, 1.0]), np.array([0.0, 1.0, 1.0, 1.0]), bins=2)
    assert r.count.tolist() == [1, 3]
    assert r.rows()[0] == {"lower": 0.0, "upper": 0.5, "count": 1, "mean_score": 0.0, "positive_rate": 0.0}


def test_ece_is_zero_when_each_bin_is_calibrated() -> None:
    scores = np.r_[np.full(10, 0.3), np.full(10, 0.8)]
    labels = np.r_[np.ones(3), np.zeros(7), np.ones(8), np.zeros(2)]
    assert reliability(scores, labels).expected_calibration_error == pytest.approx(0.0, abs=1e-12)
    labels[0] = 0.0
    assert reliability(scores, labels).expected_calibration_error == pytest.approx(0.05)


def brute_force_cost(scores: np.ndarray, labels: np.ndarray, threshold: float, cost_fp: float, cost_fn: float) -> float:
    flagged = scores >= threshold
    return float(cost_fp * np.sum(flagged & (labels == 0)) + cost_fn * np.sum(~flagged & (labels == 1)))


@pytest.mark.parametrize(("cost_fp", "cost_fn"), [(1.0, 1.0), (1.0, 5.0), (5.0, 1.0), (100.0, 1.0), (1.0, 100.0)])
@pytest.mark.parametrize("decimals", [None, 1, 2])
def test_threshold_for_cost_is_the_cheapest_candidate(cost_fp: float, cost_fn: float, decimals: int | None) -> None:
    scores, labels = held_out(400, 5, decimals)
    chosen = threshold_for_cost(scores, labels, cost_fp, cost_fn)
    candidates = [*np.unique(scores).tolist(), float(np.nextafter(scores.max(), np.inf))]
    costs = [brute_force_cost(scores, labels, t, cost_fp, cost_fn) for t in candidates]
    best = min(costs)
    highest = max(t for t, c in zip(candidates, costs, strict=True) if c == best)
    assert brute_force_cost(scores, labels, chosen, cost_fp, cost_fn) == best
    # The same rows as the highest cheapest candidate, from a threshold halfway between two scores.
    np.testing.assert_array_equal(scores >= chosen, scores >= highest)
    assert chosen not in scores


def test_threshold_for_cost_keeps_ties_on_one_side() -> None:
    # Cutting inside the tie at 0.5 would be cheaper (flag only the positive), but both rows score 0.5.
    scores, labels = np.array([0.5, 0.5, 0.1]), np.array([1.0, 0.0, 0.0])
    assert threshold_for_cost(scores, labels, cost_fp=1.0, cost_fn=3.0) == (0.5 + 0.1) / 2
    assert threshold_for_cost(scores, labels, cost_fp=3.0, cost_fn=1.0) == (0.5 + 1.0) / 2


def test_threshold_for_cost_can_flag_nobody_even_at_a_score_of_one() -> None:
    threshold = threshold_for_cost(np.array([1.0, 0.2]), np.array([0.0, 1.0]), cost_fp=10.0, cost_fn=1.0)
    assert threshold > 1.0 and not np.any(np.array([1.0, 0.2]) >= threshold)


@pytest.mark.parametrize(("cost_fp", "cost_fn"), [(0.0, 1.0), (1.0, -1.0), (float("nan"), 1.0), (1.0, float("inf"))])
def test_threshold_for_cost_refuses_non_positive_costs(cost_fp: float, cost_fn: float) -> None:
    with pytest.raises(TrainingError, match="must be a finite number > 0"):
        threshold_for_cost(np.array([0.2, 0.8]), np.array([0.0, 1.0]), cost_fp, cost_fn)


def test_threshold_for_cost_refuses_zero_rows() -> None:
    with pytest.raises(TrainingError, match="at least one row"):
        threshold_for_cost(np.zeros(0), np.zeros(0), 1.0, 1.0)


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        ([0.2, 1.1], [0.0, 1.0], r"\[0, 1\]"),
        ([0.2, np.nan], [0.0, 1.0], r"\[0, 1\]"),
        ([0.2, 0.3], [0.0, 0.5], "0 or 1"),
        ([0.2, 0.3], [0.0], "equal length"),
    ],
)
def test_bad_input_is_refused(scores: list[float], labels: list[float], message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        quality_report(np.array(scores), np.array(labels), 0.5)


def test_nan_threshold_is_refused() -> None:
    with pytest.raises(TrainingError, match="threshold"):
        quality_report(np.array([0.2]), np.array([1.0]), float("nan"))


def test_format_report_prints_every_metric_and_bin() -> None:
    r = quality_report(np.array([0.05, 0.95]), np.array([0.0, 0.0]), 0.5)
    text = format_report(r)
    lines = text.splitlines()
    for key in r.keys() - {"reliability"}:
        assert any(line.split()[0] == key for line in lines), key
    assert next(line for line in lines if line.startswith("auc")).split()[1] == "nan"
    assert lines[-1].startswith("[0.90, 1.00]") and lines[-2].startswith("[0.80, 0.90)")
    assert sum(1 for line in lines if line.startswith("[")) == 10


def test_threshold_for_cost_prefers_flagging_fewer_rows_on_equal_cost() -> None:
    # Flagging nobody and flagging everybody both cost 1: the higher threshold wins.
    scores, labels = np.array([0.9, 0.1]), np.array([0.0, 1.0])
    assert threshold_for_cost(scores, labels, cost_fp=1.0, cost_fn=1.0) == (0.9 + 1.0) / 2
    scores, labels = np.array([0.9, 0.5, 0.1]), np.array([1.0, 0.0, 1.0])
    assert threshold_for_cost(scores, labels, cost_fp=1.0, cost_fn=1.0) == (0.9 + 0.5) / 2


def test_cut_below_lies_strictly_between_the_flagged_and_the_next_score() -> None:
    s = np.array([1.0, 0.7, 0.7, 0.2, 0.0])
    expected = [np.nextafter(1.0, 2.0), (1.0 + 0.7) / 2, (0.7 + 0.2) / 2, 0.1, 0.0]  # nobody, ..., everyone
    assert [cut_below(s, i) for i in (-1, 0, 2, 3, 4)] == expected
    # Adjacent floats: no float lies between them, so the threshold is the flagged score itself.
    low = 0.3
    high = float(np.nextafter(low, 1.0))
    assert cut_below(np.array([high, low]), 0) == high
    assert cut_below(np.array([float(np.nextafter(1.0, 0.0))]), -1) == 1.0
