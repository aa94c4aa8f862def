"""The label flow's metrics, declared once against a registry passed in (the rolling quality metrics are
exported by :mod:`stream_scorer.monitoring.quality` at scrape time)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge
from prometheus_client.registry import CollectorRegistry

from stream_scorer.monitoring.histogram import BatchHistogram

# Labels arrive minutes to days late: 1 s to 30 days.
LAG_BUCKETS = (
    1.0,
    5.0,
    15.0,
    30.0,
    60.0,
    300.0,
    900.0,
    1800.0,
    3600.0,
    4 * 3600.0,
    12 * 3600.0,
    86400.0,
    2 * 86400.0,
    4 * 86400.0,
    7 * 86400.0,
    14 * 86400.0,
    30 * 86400.0,
)


class LabelMetrics:
    """Counters of the join's outcomes, label lag histograms, coverage and held labels."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._declare_outcomes(registry)
        self._declare_progress(registry)

    def _declare_outcomes(self, registry: CollectorRegistry) -> None:
        """What became of each label."""
        self.consumed = Counter("stream_scorer_labels_consumed", "Label messages polled.", registry=registry)
        self.joined = Counter(
            "stream_scorer_labels_joined",
            "Labels joined to their prediction (first label of an event).",
            registry=registry,
        )
        self.duplicate = Counter(
            "stream_scorer_labels_duplicate",
            "Labels equal to the one already joined (counted once).",
            registry=registry,
        )
        self.contradicting = Counter(
            "stream_scorer_labels_contradicting",
            "Labels that differ from the one already joined: the last one wins.",
            registry=registry,
        )
        self.early = Counter(
            "stream_scorer_labels_early",
            "Labels that found no prediction and were held to be retried (the label came first, or the event is "
            "unknown or expired).",
            registry=registry,
        )
        self.unknown = Counter(
            "stream_scorer_labels_unknown",
            "Held labels whose prediction never appeared within the hold time (unknown or expired event).",
            registry=registry,
        )
        self.invalid = Counter(
            "stream_scorer_labels_invalid",
            "Label messages rejected to the dead-letter topic.",
            ["reason"],
            registry=registry,
        )
        self.unreadable = Counter(
            "stream_scorer_labels_unreadable_pending",
            "Pending-prediction records that could not be read.",
            registry=registry,
        )

    def _declare_progress(self, registry: CollectorRegistry) -> None:
        """Held labels, label lag, coverage and liveness."""
        self.held = Gauge("stream_scorer_labels_held", "Labels held, waiting for their prediction.", registry=registry)
        self.lag = BatchHistogram(
            "stream_scorer_label_lag_seconds",
            "Label time minus the event's event_time (reference=event_time) or minus its scoring time "
            "(reference=scored_at), for joined labels.",
            buckets=LAG_BUCKETS,
            labelnames=("reference",),
            registry=registry,
        )
        self.coverage = Gauge(
            "stream_scorer_label_coverage",
            "Share of the predictions older than the label horizon (within the coverage lookback) that got a label.",
            registry=registry,
        )
        self.coverage_predictions = Gauge(
            "stream_scorer_label_coverage_predictions",
            "Predictions the coverage is computed over (its support).",
            registry=registry,
        )
        self.store_errors = Counter(
            "stream_scorer_labels_store_errors", "Failed Redis calls of the label join.", registry=registry
        )
        self.last_batch = Gauge(
            "stream_scorer_labels_last_batch_timestamp_seconds",
            "When the last label batch was committed.",
            registry=registry,
        )
        self.assigned_partitions = Gauge(
            "stream_scorer_labels_assigned_partitions", "Label partitions assigned to this process.", registry=registry
        )
