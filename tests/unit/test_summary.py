"""The terminal view: parse exposition text, rates between scrapes, histogram quantiles, the table."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from stream_scorer.monitoring.summary import parse, quantile, summary


def exposition(consumed: float) -> str:
    registry = CollectorRegistry()
    Counter("stream_scorer_events_consumed", "", registry=registry).inc(consumed)
    latency = Histogram("stream_scorer_event_to_prediction_seconds", "", buckets=(0.1, 1.0), registry=registry)
    for value in (0.05, 0.05, 0.5, 0.5):
        latency.observe(value)
    labels = ["model", "version", "window"]
    Gauge("stream_scorer_model_precision", "", labels, registry=registry).labels("fraud", "3", "1h").set(0.75)
    Gauge("stream_scorer_model_window_labels", "", labels, registry=registry).labels("fraud", "3", "1h").set(400)
    Gauge("stream_scorer_model_auc", "", labels, registry=registry).labels("fraud", "3", "1h").set(math.nan)
    return generate_latest(registry).decode()


def test_rates_quantiles_and_model_rows() -> None:
    before, now = parse([exposition(100)], at=10.0), parse([exposition(1100)], at=20.0)
    assert now.value("stream_scorer_events_consumed_total") == 1100
    # Half the observations are <= 0.1 s: the median is the bucket's upper bound; p75 interpolates in (0.1, 1].
    assert quantile(now, "stream_scorer_event_to_prediction_seconds", 0.5) == 0.1
    assert quantile(now, "stream_scorer_event_to_prediction_seconds", 0.75) == 0.55
    table = summary(now, before)
    assert "events/s consumed" in table and "100" in table.split("events/s consumed")[1].splitlines()[0]
    row = next(line for line in table.splitlines() if line.startswith("fraud 3 [1h] n=400"))
    assert "precision 0.750" in row and "auc -" in row  # NaN is shown as "-", never 0


def test_two_endpoints_add_up() -> None:
    merged = parse([exposition(5), exposition(7)], at=0.0)
    assert merged.value("stream_scorer_events_consumed_total") == 12
    assert math.isnan(merged.value("stream_scorer_nothing"))


def test_a_page_that_is_not_metrics_is_skipped_not_a_crash() -> None:
    merged = parse(["<html><body>not metrics</body></html>", exposition(3)], at=0.0)
    assert merged.value("stream_scorer_events_consumed_total") == 3
    assert parse(["garbage {{{"], at=0.0).samples == {}
