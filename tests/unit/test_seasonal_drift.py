"""Drift of seasonal series: a time-of-day feature of the event time is compared with what the hours its window's
events arrived in should show, and the score of such a model with the training rows of the same slots."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from stream_scorer.model.baseline import Seasonal, psi
from stream_scorer.model.derive import Derivation
from stream_scorer.monitoring.drift import DriftMonitor, WindowDrift
from stream_scorer.training.baselines import baselines


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _by_label(monitor: DriftMonitor) -> dict[str, WindowDrift]:
    return {w.label: w for w in monitor.psi()}


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


def test_without_event_times_the_time_of_day_keeps_its_function_and_the_score_the_plain_comparison() -> None:
    rng = np.random.default_rng(4)
    matrix, scores = np.column_stack([np.sin(rng.uniform(0, 6.3, 500))]), rng.beta(1.0, 8.0, 500)
    stored = baselines(
        ["hour_sin"],
        matrix,
        scores,
        seasonal={
            "hour_sin": Seasonal(DAY, function=Derivation("sin", ("event.ts",), period="day")),
            "score": Seasonal(DAY),
        },
    )
    assert stored["hour_sin"]["by_phase"]["period_seconds"] == DAY and "by_phase" not in stored["score"]
