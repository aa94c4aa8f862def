"""Metrics: the batch histogram agrees with prometheus_client's own, and the endpoint serves the registry."""

from __future__ import annotations

import urllib.error
import urllib.request

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram

from stream_scorer.monitoring.histogram import BatchHistogram
from stream_scorer.monitoring.metrics import ScorerMetrics
from stream_scorer.monitoring.server import MetricsServer


def test_batch_histogram_matches_prometheus_histogram() -> None:
    buckets = (0.001, 0.01, 0.1, 1.0)
    values = np.concatenate([np.random.default_rng(0).exponential(0.05, 1000), buckets])  # include exact edges
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = BatchHistogram("x_seconds", "x", buckets=buckets, labelnames=("g",), registry=ours_registry)
    theirs = Histogram("x_seconds", "x", ["g"], buckets=buckets, registry=theirs_registry)
    ours.observe_many(values[:500], "a")
    ours.observe_many(values[500:], "a")
    for v in values:
        theirs.labels("a").observe(float(v))
    for le in ("0.001", "0.01", "0.1", "1.0", "+Inf"):
        labels = {"g": "a", "le": le}
        assert ours_registry.get_sample_value("x_seconds_bucket", labels) == theirs_registry.get_sample_value(
            "x_seconds_bucket", labels
        )
    assert ours_registry.get_sample_value("x_seconds_sum", {"g": "a"}) == pytest.approx(
        theirs_registry.get_sample_value("x_seconds_sum", {"g": "a"})
    )


def test_batch_histogram_rejects_bad_use() -> None:
    registry = CollectorRegistry()
    with pytest.raises(ValueError, match="increasing"):
        BatchHistogram("a_seconds", "a", buckets=(1.0, 0.5), registry=registry)
    h = BatchHistogram("b_seconds", "b", buckets=(1.0,), labelnames=("g",), registry=registry)
    with pytest.raises(ValueError, match="takes labels"):
        h.observe_many(np.array([1.0]))


def test_endpoint_serves_metrics_health_and_readiness() -> None:
    registry = CollectorRegistry()
    metrics = ScorerMetrics(registry)
    metrics.events_consumed.inc(3)
    state = {"ready": False}
    server = MetricsServer(registry, "127.0.0.1", 0, lambda: (state["ready"], "why")).start()
    try:
        host, port = server.address
        body = urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5).read().decode()
        assert "stream_scorer_events_consumed_total 3.0" in body
        assert urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=5).status == 200
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(f"http://{host}:{port}/readyz", timeout=5)
        assert raised.value.code == 503
        raised.value.close()
        state["ready"] = True
        assert urllib.request.urlopen(f"http://{host}:{port}/readyz", timeout=5).status == 200
    finally:
        server.stop()
