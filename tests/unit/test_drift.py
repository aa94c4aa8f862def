"""Drift monitor: PSI against the training baselines over sliding windows, and its scrape-time collector."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stream_scorer.errors import ModelArtifactError
from stream_scorer.model.baseline import FeatureHistogram, Seasonal, bin_counts, psi
from stream_scorer.model.derive import Derivation
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


# Seasonal series: a time-of-day feature of the event time, compared with the training rows of the same hours.
DAY = 86_400


def _seasonal_training(days: int = 30, rows: int = 60_000) -> dict[str, Any]:
    """A history spread over ``days`` days: the time of day on the unit circle, a plain feature, a score."""
    rng = np.random.default_rng(3)
    times_ms = np.sort(rng.uniform(0, days * DAY, rows)) * 1000.0
    angle = (times_ms % (DAY * 1000)) * (2 * np.pi / (DAY * 1000))
    matrix = np.column_stack([np.sin(angle), rng.gamma(2.0, 2.0, rows)])
    scores = 1 / (1 + np.exp(-(0.8 * np.sin(angle) + rng.normal(0, 1, rows))))
    seasonal = {
        "hour_sin": Seasonal(DAY, function=Derivation("sin", ("event.ts",), period="day")),
        "score": Seasonal(DAY),
    }
    return baselines(["hour_sin", "velocity"], matrix, scores, seasonal=seasonal, event_time_ms=times_ms)


def _live(
    monitor: DriftMonitor, clock: FakeClock, wall: FakeClock, start: float, seconds: int, offset_hours: float = 0.0
) -> None:
    """One batch of 100 events every 10 s from wall time ``start``, stamped ``offset_hours`` off the clock."""
    rng = np.random.default_rng(int(start))
    for step in range(0, seconds, 10):
        clock.now, wall.now = step, start + step
        event_time = wall.now - offset_hours * 3600 + rng.uniform(-5, 0, 100)
        angle = (event_time % DAY) * (2 * np.pi / DAY)
        matrix = np.column_stack([np.sin(angle), rng.gamma(2.0, 2.0, 100)])
        monitor.observe(matrix, 1 / (1 + np.exp(-(0.8 * np.sin(angle) + rng.normal(0, 1, 100)))))


@pytest.mark.parametrize("hour", [0, 5, 6.1, 13.5, 18, 23.9])
def test_a_time_of_day_feature_is_compared_with_the_same_hours_of_training(hour: float) -> None:
    stored = _seasonal_training()
    assert stored["hour_sin"]["by_phase"]["function"] == {"operation": "sin", "inputs": ["event.ts"], "period": "day"}
    assert len(stored["score"]["by_phase"]["counts"]) == 288
    assert "by_phase" not in stored["velocity"]
    clock, wall = FakeClock(), FakeClock()
    monitor = DriftMonitor(stored, ["hour_sin", "velocity"], windows=(300, 3600, DAY), clock=clock, wall_clock=wall)
    _live(monitor, clock, wall, start=100 * DAY + hour * 3600, seconds=3600)
    windows = _by_label(monitor)
    for label in ("5m", "1h"):
        assert all(v < 0.05 for v in windows[label].psi.values()), (label, windows[label].psi)
    # A day's window that holds an hour is compared with the same hour too; against the whole day, that
    # hour is a large "drift" (the old standing false alarm).
    assert all(v < 0.05 for v in windows["1d"].psi.values()), windows["1d"].psi
    whole_day = psi(stored["hour_sin"]["proportions"], np.asarray(_counts(monitor, "hour_sin")))
    assert whole_day > 1.0


def test_a_window_that_holds_a_whole_cycle_is_compared_with_the_whole_cycle() -> None:
    stored = _seasonal_training()
    clock, wall = FakeClock(), FakeClock()
    monitor = DriftMonitor(
        stored, ["hour_sin", "velocity"], windows=(DAY,), bucket_seconds=600.0, clock=clock, wall_clock=wall
    )
    _live(monitor, clock, wall, start=100 * DAY, seconds=DAY)  # a whole day, the hours as in training
    day = monitor.psi()[0]
    assert day.psi["hour_sin"] < 0.01
    expected = psi(
        stored["hour_sin"]["proportions"], np.asarray(monitor._totals[0, : len(_counts(monitor, "hour_sin"))])
    )
    assert day.psi["hour_sin"] == pytest.approx(expected)


def _counts(monitor: DriftMonitor, name: str) -> list[int]:
    i = [h.name for h in monitor._hists].index(name)
    return monitor._totals[-1, monitor._starts[i] : monitor._starts[i + 1]].tolist()


def test_events_stamped_hours_off_the_clock_drift_on_the_time_of_day_only() -> None:
    clock, wall = FakeClock(), FakeClock()
    monitor = DriftMonitor(_seasonal_training(), ["hour_sin", "velocity"], clock=clock, wall_clock=wall)
    _live(monitor, clock, wall, start=100 * DAY + 14 * 3600, seconds=3600, offset_hours=8)
    hour = _by_label(monitor)["1h"]
    assert hour.psi["hour_sin"] > 0.25 and hour.ks["hour_sin"] > 0.3
    assert hour.psi["velocity"] < 0.05


def test_slots_without_training_rows_fall_back_to_the_whole_cycle() -> None:
    stored = _seasonal_training(days=1, rows=20_000)
    counts = stored["score"]["by_phase"]["counts"]
    for slot in range(12 * 14, 12 * 15):  # no training row between 14:00 and 15:00
        counts[slot] = [0] * len(counts[slot])
    clock, wall = FakeClock(), FakeClock()
    monitor = DriftMonitor(stored, ["hour_sin", "velocity"], clock=clock, wall_clock=wall)
    _live(monitor, clock, wall, start=3 * DAY + 14 * 3600, seconds=1800)
    hour = _by_label(monitor)["1h"]
    expected = psi(stored["score"]["proportions"], np.asarray(_counts(monitor, "score")))
    assert hour.psi["score"] == pytest.approx(expected)


def test_seasonal_periods_are_the_cyclic_features_of_the_time_column_and_then_the_score() -> None:
    from stream_scorer.model.derive import Derivation
    from stream_scorer.model.fitted_spec import FittedNumeric, FittedSpec
    from stream_scorer.training.baselines import seasonal_series

    def cyclic(name: str, column: str, op: str, period: str) -> FittedNumeric:
        return FittedNumeric(name, 0.0, 0.0, 1.0, -1.0, 1.0, Derivation(op, (column,), period=period))  # type: ignore[arg-type]

    spec = FittedSpec(
        numeric=(
            cyclic("event.hour_sin", "event.ts", "sin", "day"),
            cyclic("event.dow_cos", "event.ts", "cos", "week"),
            cyclic("event.opened_hour_sin", "event.opened_at", "sin", "day"),
            FittedNumeric("event.amount", 0.0, 0.0, 1.0),
        )
    )
    series = seasonal_series(spec, "event.ts")
    assert {name: s.period_seconds for name, s in series.items()} == {
        "event.hour_sin": DAY,
        "event.dow_cos": 7 * DAY,
        "score": 7 * DAY,
    }
    assert series["event.hour_sin"].function == spec.numeric[0].derive and series["score"].function is None
    assert seasonal_series(spec, "event.other") == {}


def test_a_young_window_that_crosses_a_bin_edge_of_a_time_of_day_feature_shows_no_drift() -> None:
    """A minute of traffic around the moment the time of day crosses one of its bin edges: the expected
    shares follow the function at each bucket's arrival time, so both sides of the edge match."""
    stored = _seasonal_training()
    edge = stored["hour_sin"]["edges"][3]
    crossing = float(np.arcsin(edge) / (2 * np.pi) * DAY)  # the time of day when sin reaches the edge
    clock, wall = FakeClock(), FakeClock()
    monitor = DriftMonitor(stored, ["hour_sin", "velocity"], bucket_seconds=1.0, clock=clock, wall_clock=wall)
    rng = np.random.default_rng(9)
    for step in range(60):
        clock.now = wall.now = 100 * DAY + crossing - 30 + step
        angle = ((wall.now - rng.uniform(0, 0.05, 20)) % DAY) * (2 * np.pi / DAY)
        monitor.observe(np.column_stack([np.sin(angle), rng.gamma(2.0, 2.0, 20)]), rng.beta(1.0, 8.0, 20))
    window = _by_label(monitor)["5m"]
    counts = np.asarray(_counts(monitor, "hour_sin"))
    assert counts[3] > 0 and counts[4] > 0  # both sides of the edge
    assert window.psi["hour_sin"] < 0.01, window.psi
