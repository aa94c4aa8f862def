"""Baseline histograms: quantile edges, one bin per value for few values, PSI, and a strict manifest reader."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from stream_scorer.errors import ModelArtifactError, TrainingError
from stream_scorer.model.baseline import FeatureHistogram, baselines_from_dict, bin_counts, psi
from stream_scorer.training.baselines import baseline_histogram, baselines


@pytest.mark.parametrize("share_of_ones", [0.02, 0.3, 0.5, 0.95, 0.999])
def test_a_binary_feature_gets_exactly_two_bins(share_of_ones: float) -> None:
    values = (np.arange(1000) < share_of_ones * 1000).astype(float)
    hist = baseline_histogram("flag", values)
    assert hist.edges == (0.0,)
    assert hist.proportions == pytest.approx((1 - share_of_ones, share_of_ones), abs=1e-3)


def test_a_constant_feature_gets_one_bin() -> None:
    hist = baseline_histogram("c", np.full(50, 3.5))
    assert hist.edges == () and hist.proportions == (1.0,) and hist.count == 50


def test_few_distinct_values_get_one_bin_each() -> None:
    values = np.repeat([1.0, 2.0, 5.0, 7.0, 9.0], [10, 20, 30, 25, 15])
    hist = baseline_histogram("level", values, bins=10)
    assert hist.edges == (1.0, 2.0, 5.0, 7.0)
    assert hist.proportions == pytest.approx((0.1, 0.2, 0.3, 0.25, 0.15))


def test_a_continuous_feature_gets_bins_of_equal_share() -> None:
    values = np.random.default_rng(0).lognormal(size=10_000)
    hist = baseline_histogram("amount", values, bins=10)
    assert len(hist.proportions) == 10 and np.all(np.diff(hist.edges) > 0)
    np.testing.assert_allclose(hist.proportions, 0.1, atol=1e-3)
    assert math.fsum(hist.proportions) == pytest.approx(1.0, abs=1e-12)


def test_a_point_mass_is_never_split_across_bins() -> None:
    rng = np.random.default_rng(1)
    values = np.r_[np.zeros(6000), rng.random(4000) + 0.5]
    hist = baseline_histogram("mostly_zero", values, bins=10)
    assert hist.edges[0] == 0.0 and hist.proportions[0] == 0.6
    assert len(hist.proportions) < 10  # the mass absorbed several quantiles
    np.testing.assert_allclose(hist.proportions[1:], 0.1, atol=2e-3)


def reference_bin(edges: tuple[float, ...], value: float) -> int:
    """The bin definition written out: (-inf, e0], (e0, e1], ..., (e_last, inf)."""
    for i, edge in enumerate(edges):
        if value <= edge:
            return i
    return len(edges)


def test_bin_counts_follow_the_bin_definition_at_the_edges() -> None:
    hist = FeatureHistogram("x", edges=(-1.0, 0.0, 2.5), proportions=(0.25, 0.25, 0.25, 0.25), count=4)
    values = np.array([-5.0, -1.0, -0.5, 0.0, 1e-300, 2.5, 2.6, np.inf, -np.inf, 0.0, np.nan])
    expected = np.bincount([reference_bin(hist.edges, v) for v in values if not np.isnan(v)], minlength=4)
    counts = bin_counts(hist, values)
    np.testing.assert_array_equal(counts, expected)
    assert counts.tolist() == [3, 3, 2, 2]


def test_bin_counts_of_the_training_values_give_the_proportions() -> None:
    values = np.round(np.random.default_rng(2).normal(size=2000), 1)
    hist = baseline_histogram("x", values)
    np.testing.assert_allclose(bin_counts(hist, values) / len(values), hist.proportions, rtol=0, atol=0)


def test_psi_is_zero_without_drift_and_grows_with_it() -> None:
    expected = np.array([0.1, 0.2, 0.3, 0.4])
    assert psi(expected, np.array([100, 200, 300, 400])) == pytest.approx(0.0, abs=1e-15)
    small = psi(expected, np.array([120, 200, 290, 390]))
    large = psi(expected, np.array([400, 300, 200, 100]))
    assert 0.0 < small < 0.01 < 0.5 < large


def test_psi_smooths_both_distributions_with_epsilon() -> None:
    expected, counts, eps = np.array([0.5, 0.5, 0.0]), np.array([0, 30, 10]), 1e-4
    e = (expected + eps) / (1 + 3 * eps)
    a = (counts / 40 + eps) / (1 + 3 * eps)
    assert psi(expected, counts, eps) == pytest.approx(float(np.sum((a - e) * np.log(a / e))), rel=1e-12)
    assert math.isfinite(psi(expected, counts, eps))
    assert psi(expected, counts, 1e-2) < psi(expected, counts, 1e-6)  # more smoothing, smaller index


def test_psi_is_nan_without_actual_counts() -> None:
    assert math.isnan(psi([0.5, 0.5], [0, 0]))


@pytest.mark.parametrize(
    ("expected", "counts", "eps"),
    [([0.5, 0.5], [1, 2, 3], 1e-4), ([0.5, 0.5], [1, -2], 1e-4), ([0.5, 0.5], [1, 2], 0.0), ([], [], 1e-4)],
)
def test_psi_refuses_mismatched_input(expected: list[float], counts: list[int], eps: float) -> None:
    with pytest.raises(ValueError, match="psi needs"):
        psi(expected, counts, eps)


def test_baselines_round_trip_through_json() -> None:
    rng = np.random.default_rng(3)
    matrix = np.column_stack([rng.normal(size=500), rng.integers(0, 2, size=500), np.full(500, 7.0)])
    scores = rng.random(500)
    stored = baselines(["event.amount", "event.card_present", "event.constant"], matrix, scores, bins=8)
    assert list(stored) == ["event.amount", "event.card_present", "event.constant", "score"]
    loaded = baselines_from_dict(json.loads(json.dumps(stored)))
    assert loaded["event.card_present"] == baseline_histogram("event.card_present", matrix[:, 1], bins=8)
    assert loaded["score"] == baseline_histogram("score", scores, bins=8)
    assert [len(loaded[n].proportions) for n in loaded] == [8, 2, 1, 8]


@pytest.mark.parametrize(
    ("names", "shape", "message"),
    [
        (["a", "b"], (10, 3), "matrix"),
        (["a", "score"], (10, 2), "not 'score'"),
        (["a", "a"], (10, 2), "distinct"),
    ],
)
def test_baselines_refuse_bad_input(names: list[str], shape: tuple[int, int], message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        baselines(names, np.ones(shape), np.ones(shape[0]))


@pytest.mark.parametrize(
    ("values", "bins", "message"),
    [([1.0, np.nan], 10, "finite"), ([], 10, "non-empty"), ([1.0, 2.0], 1, "bins >= 2")],
)
def test_baseline_histogram_refuses_bad_input(values: list[float], bins: int, message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        baseline_histogram("x", np.array(values), bins)


GOOD = {"edges": [0.0, 1.0], "proportions": [0.25, 0.5, 0.25], "count": 8}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("nope", "with the keys"),
        ({**GOOD, "name": "x"}, "with the keys"),
        ({"edges": [0.0], "proportions": [0.5, 0.5]}, "with the keys"),
        ({**GOOD, "edges": [1.0, 1.0]}, "strictly increasing"),
        ({**GOOD, "edges": [0.0, float("nan")]}, "finite numbers"),
        ({**GOOD, "edges": "0,1"}, "lists of numbers"),
        ({**GOOD, "proportions": [0.5, 0.5]}, "need 3 proportions"),
        ({**GOOD, "proportions": [0.5, 0.5, 0.5]}, "sum to 1"),
        ({**GOOD, "proportions": [1.5, -0.25, -0.25]}, r"\[0, 1\]"),
        ({**GOOD, "proportions": [0.25, "0.5", 0.25]}, "finite numbers"),
        ({**GOOD, "count": 0}, "positive integer"),
        ({**GOOD, "count": 8.0}, "positive integer"),
        ({**GOOD, "count": True}, "positive integer"),
        ({**GOOD, "by_phase": {"period_seconds": 0, "counts": []}}, "period_seconds"),
        ({**GOOD, "by_phase": {"period_seconds": 86400, "counts": [[1, 2, 3]]}}, "288 slots"),
        ({**GOOD, "by_phase": {"period_seconds": 86400, "counts": [[1, 2]] * 288}}, "3 non-negative"),
        ({**GOOD, "by_phase": {"period_seconds": 86400, "counts": [[1, -2, 3]] * 288}}, "3 non-negative"),
        (
            {
                **GOOD,
                "by_phase": {
                    "period_seconds": 3600,
                    "function": {"operation": "sin", "inputs": ["t"], "period": "day"},
                },
            },
            "cyclic derivation of that period",
        ),
        (
            {**GOOD, "by_phase": {"period_seconds": 86400, "function": {"operation": "log1p", "inputs": ["t"]}}},
            "cyclic derivation",
        ),
    ],
)
def test_baselines_from_dict_refuses_bad_entries(entry: Any, message: str) -> None:
    with pytest.raises(ModelArtifactError, match=message):
        baselines_from_dict({"event.amount": entry})


def test_baselines_from_dict_accepts_a_good_entry_and_refuses_a_non_object() -> None:
    assert baselines_from_dict({"x": GOOD})["x"] == FeatureHistogram("x", (0.0, 1.0), (0.25, 0.5, 0.25), 8)
    with pytest.raises(ModelArtifactError, match="JSON object"):
        baselines_from_dict([GOOD])
