"""Drift monitor: PSI against the training baselines over sliding windows, and its scrape-time collector."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stream_scorer.errors import ModelArtifactError
from stream_scorer.model.baseline import FeatureHistogram, bin_counts, psi
from stream_scorer.monitoring.drift import DriftCollector, DriftMonitor, WindowDrift, binned_ks
from stream_scorer.training.baselines import baselines

NAMES = ["amount", "hour", "is_foreign", "velocity"]


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    matrix = np.column_stack(
        [
            rng.lognormal(3.0, 1.0, n),
            rng.integers(0, 24, n).astype(float),
            (rng.random(n) < 0.1).astype(float),
            rng.gamma(2.0, 2.0, n),
        ]
    )
    return matrix, rng.beta(1.0, 8.0, n)


def _trained(seed: int = 0) -> dict[str, Any]:
    matrix, scores = _draw(np.random.default_rng(seed), 50_000)
    return baselines(NAMES, matrix, scores)


def _by_label(monitor: DriftMonitor) -> dict[str, WindowDrift]:
    return {w.label: w for w in monitor.psi()}


def test_data_from_the_baseline_distribution_has_psi_near_zero() -> None:
    monitor = DriftMonitor(_trained(), NAMES, clock=FakeClock())
    rng = np.random.default_rng(1)
    for _ in range(4):
        monitor.observe(*_draw(rng, 4000))
    for window in monitor.psi():
        assert window.events == 16_000
        assert set(window.psi) == {*NAMES, "score"} and set(window.ks) == set(NAMES)
        assert all(0 <= v < 0.01 for v in window.psi.values()), window.psi
        assert all(0 <= v < 0.02 for v in window.ks.values()), window.ks


def test_a_feature_multiplied_by_three_drifts_and_the_others_do_not() -> None:
    monitor = DriftMonitor(_trained(), NAMES, clock=FakeClock())
    matrix, scores = _draw(np.random.default_rng(2), 8000)
    matrix[:, 0] *= 3
    monitor.observe(matrix, scores)
    window = monitor.psi()[0]
    assert window.psi["amount"] > 0.25
    assert window.ks["amount"] > 0.2
    assert all(window.psi[name] < 0.01 for name in ("hour", "is_foreign", "velocity", "score")), window.psi


def test_psi_and_ks_are_those_of_the_hand_counted_bins() -> None:
    hist = FeatureHistogram("x", edges=(0.0, 10.0), proportions=(0.2, 0.5, 0.3), count=10)
    b = {"x": hist.to_dict(), "score": {"edges": [0.5], "proportions": [0.9, 0.1], "count": 10}}
    monitor = DriftMonitor(b, ["x"], clock=FakeClock())
    # Values on an edge belong to the bin the edge closes; NaN is not counted; infinities go to the end bins.
    x = np.array([-np.inf, -1.0, 0.0, 0.5, 10.0, 10.0, 11.0, np.inf, np.nan, 3.0])
    scores = np.array([0.1, 0.2, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.4])
    monitor.observe(x[:, None], scores)
    counts = [3, 4, 2]
    assert bin_counts(hist, x).tolist() == counts
    window = monitor.psi()[0]
    assert window.events == 10
    assert window.psi["x"] == psi(hist.proportions, counts)
    assert window.psi["score"] == psi([0.9, 0.1], [4, 6])
    assert window.ks["x"] == binned_ks(hist.proportions, counts) == pytest.approx(3 / 9 - 0.2)


def test_observe_neither_mutates_its_input_nor_depends_on_how_rows_are_batched() -> None:
    b = _trained()
    matrix, scores = _draw(np.random.default_rng(3), 3000)
    before = matrix.copy(), scores.copy()
    whole, split = DriftMonitor(b, NAMES, clock=FakeClock()), DriftMonitor(b, NAMES, clock=FakeClock())
    whole.observe(matrix, scores)
    for rows in np.array_split(np.arange(3000), 7):
        split.observe(matrix[rows], scores[rows])
    np.testing.assert_array_equal(matrix, before[0])
    np.testing.assert_array_equal(scores, before[1])
    assert whole.psi() == split.psi()


def test_a_window_forgets_batches_older_than_itself() -> None:
    hist = {"x": {"edges": [0.0], "proportions": [0.5, 0.5], "count": 4}}
    clock = FakeClock()
    monitor = DriftMonitor(hist, ["x"], windows=(30, 60), bucket_seconds=10, clock=clock)
    low, high = np.full((4, 1), -1.0), np.full((6, 1), 1.0)
    monitor.observe(low, np.zeros(4))  # bucket 0
    clock.now = 35.0
    monitor.observe(high, np.zeros(6))  # bucket 3
    w = _by_label(monitor)
    assert (w["30s"].events, w["1m"].events) == (6, 10)
    assert w["30s"].psi["x"] == psi([0.5, 0.5], [0, 6])
    assert w["1m"].psi["x"] == psi([0.5, 0.5], [4, 6])

    clock.now = 65.0  # bucket 6: the 30 s window holds buckets 4-6, the 1 min window 1-6
    w = _by_label(monitor)
    assert w["30s"].events == 0 and math.isnan(w["30s"].psi["x"]) and math.isnan(w["30s"].ks["x"])
    assert w["1m"].events == 6 and w["1m"].psi["x"] == psi([0.5, 0.5], [0, 6])

    clock.now = 10_000.0
    assert [w.events for w in monitor.psi()] == [0, 0]
    monitor.observe(low, np.zeros(4))
    assert [w.events for w in monitor.psi()] == [4, 4]


def test_a_clock_that_steps_back_counts_in_the_current_bucket() -> None:
    hist = {"x": {"edges": [0.0], "proportions": [0.5, 0.5], "count": 4}}
    clock = FakeClock(35.0)
    monitor = DriftMonitor(hist, ["x"], windows=(30.0,), bucket_seconds=10.0, clock=clock)
    monitor.observe(np.ones((6, 1)), np.zeros(6))
    clock.now = 5.0
    monitor.observe(np.ones((4, 1)), np.zeros(4))
    clock.now = 35.0
    assert monitor.psi()[0].events == 10
    clock.now = 65.0
    assert monitor.psi()[0].events == 0


def test_window_totals_match_a_recount_of_their_buckets() -> None:
    hist = {"x": {"edges": [-1.0, 0.0, 1.0], "proportions": [0.2, 0.3, 0.3, 0.2], "count": 10}}
    clock = FakeClock(1000.0)
    monitor = DriftMonitor(hist, ["x"], windows=(60, 300), bucket_seconds=20, clock=clock)
    rng = np.random.default_rng(4)
    seen: list[tuple[int, np.ndarray]] = []
    for _ in range(300):
        clock.now += float(rng.choice([0.0, 3.0, 17.0, 45.0, 130.0, 400.0]))
        x = rng.normal(size=(int(rng.integers(0, 50)), 1))
        monitor.observe(x, np.zeros(len(x)))
        seen.append((int(clock.now // 20), x[:, 0]))
        head = int(clock.now // 20)
        for window in monitor.psi():
            span = window.seconds // 20
            values = np.concatenate([v for bucket, v in seen if head - span < bucket <= head])
            assert window.events == len(values)
            expected = psi([0.2, 0.3, 0.3, 0.2], bin_counts(FeatureHistogram("x", (-1.0, 0.0, 1.0), (), 1), values))
            assert window.psi["x"] == expected or (math.isnan(window.psi["x"]) and math.isnan(expected))


def test_an_empty_window_is_nan_with_zero_support() -> None:
    monitor = DriftMonitor(_trained(), NAMES, clock=FakeClock())
    monitor.observe(np.empty((0, len(NAMES))), np.empty(0))
    for window in monitor.psi():
        assert window.events == 0
        assert all(math.isnan(v) for v in [*window.psi.values(), *window.ks.values()])


def test_features_without_a_baseline_are_skipped() -> None:
    b = _trained()
    del b["velocity"], b["score"]
    monitor = DriftMonitor(b, [*NAMES, "new_feature"], clock=FakeClock())
    assert monitor.features == ("amount", "hour", "is_foreign")
    matrix, scores = _draw(np.random.default_rng(5), 100)
    monitor.observe(np.column_stack([matrix, np.ones(100)]), scores)
    assert set(monitor.psi()[0].psi) == {"amount", "hour", "is_foreign"}


def test_bad_construction_and_shapes_are_refused() -> None:
    b = _trained()
    with pytest.raises(ModelArtifactError, match="proportions"):
        DriftMonitor({"x": {"edges": [1.0], "proportions": [0.5], "count": 3}}, ["x"])
    for windows, bucket in [
        ((300, 300), 10),
        ((), 10),
        ((305,), 10),
        ((0,), 10),
        ((60,), 0),
        ((90.5,), 0.5),
        ((5,), 10),
    ]:
        with pytest.raises(ValueError):
            DriftMonitor(b, NAMES, windows=windows, bucket_seconds=bucket)
    assert [w.label for w in DriftMonitor(b, NAMES, windows=(90.0, 7200.0), bucket_seconds=0.5).psi()] == ["90s", "2h"]
    monitor = DriftMonitor(b, NAMES)
    with pytest.raises(ValueError, match="matrix"):
        monitor.observe(np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="matrix"):
        monitor.observe(np.zeros((3, len(NAMES))), np.zeros(4))


def _scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_collector_exports_the_current_monitor_at_scrape_time() -> None:
    clock = FakeClock()

    class Served:  # stands in for the worker, whose monitor changes on a reload
        monitor: DriftMonitor | None = None

        def current_drift(self) -> DriftMonitor | None:
            return self.monitor

    current = Served()
    registry = CollectorRegistry()
    DriftCollector(current, registry=registry)
    assert _scrape(registry) == {}

    monitor = DriftMonitor(_trained(), NAMES, clock=clock)
    current.monitor = monitor
    matrix, scores = _draw(np.random.default_rng(6), 4000)
    matrix[:, 0] *= 3
    monitor.observe(matrix, scores)
    samples = _scrape(registry)
    expected = {w.label: w for w in monitor.psi()}
    assert set(expected) == {"5m", "1h"}
    for label, window in expected.items():
        assert samples[("stream_scorer_drift_window_events", (("window", label),))] == 4000
        assert samples[("stream_scorer_prediction_psi", (("window", label),))] == pytest.approx(window.psi["score"])
        for name in NAMES:
            key = (("feature", name), ("window", label))
            assert samples[("stream_scorer_feature_psi", key)] == pytest.approx(window.psi[name])
            assert samples[("stream_scorer_feature_ks", key)] == pytest.approx(window.ks[name])
    assert samples[("stream_scorer_feature_psi", (("feature", "amount"), ("window", "5m")))] > 0.25
    assert len(samples) == 2 * (1 + 1 + 2 * len(NAMES))

    clock.now = 400.0  # the 5 min window is empty: NaN with support 0, the 1 h window still counts
    samples = _scrape(registry)
    assert samples[("stream_scorer_drift_window_events", (("window", "5m"),))] == 0
    assert math.isnan(samples[("stream_scorer_feature_psi", (("feature", "hour"), ("window", "5m")))])
    assert math.isnan(samples[("stream_scorer_prediction_psi", (("window", "5m"),))])
    assert samples[("stream_scorer_drift_window_events", (("window", "1h"),))] == 4000

    # A reload swaps in a monitor for a model with fewer features: their series go with the old model.
    b = _trained()
    current.monitor = DriftMonitor({"hour": b["hour"]}, ["hour"], windows=(60,), clock=clock)
    assert {(name, labels) for name, labels in _scrape(registry)} == {
        ("stream_scorer_feature_psi", (("feature", "hour"), ("window", "1m"))),
        ("stream_scorer_feature_ks", (("feature", "hour"), ("window", "1m"))),
        ("stream_scorer_drift_window_events", (("window", "1m"),)),
    }
