"""Every metric of the worker, declared once, against a registry passed in.

Names start with ``stream_scorer_`` and carry their unit. Labels are bounded: stage names, feature
group names, statuses and invalid-input reasons, never an event or entity id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
from prometheus_client import Counter, Gauge, Histogram, Info
from prometheus_client.registry import CollectorRegistry

from stream_scorer.monitoring.histogram import BatchHistogram

STAGES = ("poll", "decode", "enrich", "vectorize", "score", "encode", "produce", "pending", "commit", "batch")
# Sub-millisecond stages need fine buckets: 20 us to 10 s.
STAGE_BUCKETS = (
    0.00002,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    10.0,
)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
AGE_BUCKETS = (
    1.0,
    5.0,
    15.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    6 * 3600.0,
    86400.0,
    2 * 86400.0,
    7 * 86400.0,
)
TRAINING_METRICS = ("precision", "recall", "f1", "ece", "auc", "log_loss", "brier", "positive_rate")
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class ScorerMetrics:
    """The worker's metrics. Construct one per registry (tests pass a fresh ``CollectorRegistry``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._declare_flow(registry)
        self._declare_features(registry)
        self._declare_delivery(registry)
        self._declare_model(registry)

    def _declare_flow(self, registry: CollectorRegistry) -> None:
        """Input, output and time per stage."""
        self.events_consumed = Counter(
            "stream_scorer_events_consumed", "Input messages polled from Kafka.", registry=registry
        )
        self.predictions_produced = Counter(
            "stream_scorer_predictions_produced", "Predictions acknowledged by the broker.", registry=registry
        )
        self.decode_errors = Counter(
            "stream_scorer_decode_errors",
            "Input messages rejected (to the dead-letter topic), by reason; counted when their batch is committed.",
            ["reason"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "stream_scorer_batch_size_events",
            "Messages per polled micro-batch.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.stage_duration = Histogram(
            "stream_scorer_stage_duration_seconds",
            "Wall time of each stage per micro-batch.",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self.event_latency = BatchHistogram(
            "stream_scorer_event_to_prediction_seconds",
            "From the event's event_time to its prediction being acknowledged by the broker.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def _declare_features(self, registry: CollectorRegistry) -> None:
        """Feature lookups by group."""
        self.feature_store_errors = Counter(
            "stream_scorer_feature_store_errors", "Failed feature-store calls (timeouts, refused).", registry=registry
        )
        self.feature_store_circuit = Gauge(
            "stream_scorer_feature_store_circuit_state",
            "Feature-store circuit breaker: 0 closed, 1 half-open, 2 open (serving imputed features).",
            registry=registry,
        )
        self.redis_nodes_open = Gauge(
            "stream_scorer_redis_nodes_circuit_open",
            "Redis Cluster primaries not asked for now (their circuit is open; their rows are UNAVAILABLE).",
            registry=registry,
        )
        self.feature_age = BatchHistogram(
            "stream_scorer_feature_age_seconds",
            "Age of served feature groups at scoring time (present ones).",
            buckets=AGE_BUCKETS,
            labelnames=("group",),
            registry=registry,
        )
        self.feature_status = Counter(
            "stream_scorer_feature_group_lookups",
            "Feature group lookups by freshness status (fresh, stale, missing).",
            ["group", "status"],
            registry=registry,
        )
        self.feature_malformed = Counter(
            "stream_scorer_feature_records_malformed",
            "Feature records found but unreadable (served as missing).",
            ["group"],
            registry=registry,
        )
        self.feature_implausible = Counter(
            "stream_scorer_feature_records_implausible",
            "Feature records refused although readable (also counted as malformed, served as missing), by reason: "
            "future_time (updated_at past the allowed clock skew) or out_of_range (a value far outside training).",
            ["group", "reason"],
            registry=registry,
        )
        self.predictions_imputed = Counter(
            "stream_scorer_predictions_imputed",
            "Predictions served with at least one imputed feature group.",
            registry=registry,
        )

    def _declare_delivery(self, registry: CollectorRegistry) -> None:
        """Commits, dead letters, aborts, retries."""
        self.commits = Counter(
            "stream_scorer_commits",
            "Batches finished after full delivery (offsets committed or, pipelined, sent to commit without waiting; "
            "kept for the next commit when the broker refused them).",
            registry=registry,
        )
        self.dead_letters = Counter(
            "stream_scorer_dead_letters",
            "Invalid input messages written to the dead-letter topic (committed with their batch), by reason.",
            ["reason"],
            registry=registry,
        )
        self.invalid_input_stops = Counter(
            "stream_scorer_invalid_input_stops",
            "Times the worker stopped because too much input was invalid.",
            registry=registry,
        )
        self.batches_aborted = Counter(
            "stream_scorer_batches_aborted",
            "Exactly-once batches whose transaction was aborted and re-read.",
            registry=registry,
        )
        self.delivery_failures = Counter(
            "stream_scorer_delivery_failures",
            "Batches not committed because a record was not acknowledged, by output (predictions, dead_letters); "
            "each is rewound and retried after a backoff.",
            ["output"],
            registry=registry,
        )
        self.schema_registry_errors = Counter(
            "stream_scorer_schema_registry_errors",
            "Batches read again because the schema registry did not answer for a new writer schema id.",
            registry=registry,
        )
        self.retry_backoff = Gauge(
            "stream_scorer_batch_retry_backoff_seconds",
            "The backoff before the failed batch is read again; 0 when the last batch was committed.",
            registry=registry,
        )

    def _declare_model(self, registry: CollectorRegistry) -> None:
        """The served models, reloads and liveness."""
        self.model = Info("stream_scorer_model", "The model being served.", registry=registry)
        self.decoder = Info(
            "stream_scorer_decoder", "The Avro decoder of the input: native (arrow-avro) or python.", registry=registry
        )
        self.decoder_fallbacks = Counter(
            "stream_scorer_decoder_fallback_batches",
            "Batches the native decoder failed on (an arrow-avro defect), decoded by the Python reader instead.",
            registry=registry,
        )
        self.challengers = Gauge(
            "stream_scorer_challenger_models", "Challenger models scored in shadow.", registry=registry
        )
        self.training_metric = Gauge(
            "stream_scorer_model_training_metric",
            "A served model's quality on its held-out test rows at training time: the baseline live metrics are "
            "compared with.",
            ["model", "version", "metric"],
            registry=registry,
        )
        self.pending_write_errors = Counter(
            "stream_scorer_pending_write_errors",
            "Batches whose pending predictions (for the label join) could not be written to Redis.",
            registry=registry,
        )
        self.model_reloads = Counter(
            "stream_scorer_model_reloads", "Models swapped in between batches (hot reload).", registry=registry
        )
        self.model_reload_failures = Counter(
            "stream_scorer_model_reload_failures",
            "Model versions refused at reload (the previous model kept serving), by error class.",
            ["reason"],
            registry=registry,
        )
        self.last_batch = Gauge(
            "stream_scorer_last_batch_timestamp_seconds",
            "When the last batch was committed, or sent to commit (Unix time).",
            registry=registry,
        )
        self.assigned_partitions = Gauge(
            "stream_scorer_assigned_partitions", "Input partitions assigned to this worker.", registry=registry
        )

    def announce_models(self, models: Sequence[tuple[str, str, Mapping[str, object]]]) -> None:
        """Publish the training-time metrics of the served models (champion and challengers)."""
        self.training_metric.clear()
        for name, version, report in models:
            for metric in TRAINING_METRICS:
                value = report.get(metric)
                if isinstance(value, int | float):
                    self.training_metric.labels(name, version, metric).set(float(value))

    def observe_stages(self, seconds: Mapping[str, float]) -> None:
        """Record one batch's stage durations."""
        for stage, value in seconds.items():
            self.stage_duration.labels(stage).observe(value)

    def observe_freshness(
        self, group: str, status_counts: npt.NDArray[np.intp], ages_ms: npt.NDArray[np.int64], malformed: int
    ) -> None:
        """Record one batch's lookups of one feature group: counts by status and ages of present rows."""
        for status, count in zip(("fresh", "stale", "missing", "unavailable"), status_counts.tolist(), strict=True):
            if count:
                self.feature_status.labels(group, status).inc(count)
        self.feature_age.observe_many(ages_ms[ages_ms >= 0] / 1000.0, group)
        if malformed:
            self.feature_malformed.labels(group).inc(malformed)
