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


def test_a_saved_scrape_reads_back_and_quantiles_cover_only_what_came_after_it() -> None:
    from stream_scorer.monitoring.summary import Scrape

    registry = CollectorRegistry()
    latency = Histogram("stream_scorer_event_to_prediction_seconds", "", buckets=(0.1, 1.0), registry=registry)
    for _ in range(100):
        latency.observe(5.0)  # a backlog's latency, before the steady run
    before = Scrape.from_json(parse([generate_latest(registry).decode()], at=1.0).to_json())
    for _ in range(100):
        latency.observe(0.05)
    now = parse([generate_latest(registry).decode()], at=2.0)
    assert before.at == 1.0 and before.value("stream_scorer_event_to_prediction_seconds_count") == 100
    assert quantile(now, "stream_scorer_event_to_prediction_seconds", 0.99, before) <= 0.1
    assert quantile(now, "stream_scorer_event_to_prediction_seconds", 0.99) == 1.0  # in (1, +Inf]: its lower bound
    try:
        Scrape.from_json('{"at": 1}')
    except ValueError as exc:
        assert "not a saved scrape" in str(exc)
    else:
        raise AssertionError("a file without samples was read as a scrape")


def test_feature_psi_is_shown_per_window() -> None:
    registry = CollectorRegistry()
    psi = Gauge("stream_scorer_feature_psi", "", ["feature", "window"], registry=registry)
    psi.labels("event.amount_log", "5m").set(0.4)
    psi.labels("event.hour_sin", "5m").set(math.nan)
    psi.labels("event.hour_sin", "1h").set(0.02)
    table = summary(parse([generate_latest(registry).decode()], at=0.0), None)
    rows = {line.rsplit(maxsplit=1)[0].strip(): line.rsplit(maxsplit=1)[1] for line in table.splitlines()}
    assert rows["max feature PSI 1h (event.hour_sin)"] == "0.020"
    assert rows["max feature PSI 5m (event.amount_log)"] == "0.400"


def test_rates_over_a_recording_cover_the_span_each_counter_moved() -> None:
    from stream_scorer.monitoring.summary import read_recording

    # idle for 5 s, 1000 events over 10 s, then idle for 85 s
    scrapes = [
        parse([exposition(n)], at=t) for n, t in ((100, 0.0), (100, 5.0), (600, 10.0), (1100, 15.0), (1100, 100.0))
    ]
    recording = read_recording("\n".join(x.to_json() for x in scrapes) + "\n")
    row = next(line for line in summary(scrapes[-1], None, recording).splitlines() if line.startswith("events/s"))
    assert row.split()[-1] == "100"  # 1000 events over the 10 s they were consumed in, not over 100 s
    row = next(line for line in summary(scrapes[-1], scrapes[0]).splitlines() if line.startswith("events/s"))
    assert row.split()[-1] == "10"
