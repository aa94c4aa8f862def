"""Assembles the label flow from settings."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client.registry import CollectorRegistry

from stream_scorer.config import Settings, window_seconds
from stream_scorer.errors import ConfigError, SchemaError
from stream_scorer.events.schema import FieldType, leaf_fields
from stream_scorer.features.nodes import Nodes
from stream_scorer.kafka.access import check_access
from stream_scorer.kafka.consumer import BatchConsumer, consumer_config
from stream_scorer.kafka.delivery import AtLeastOnce
from stream_scorer.kafka.producer import CheckedProducer, producer_config
from stream_scorer.labels.decode import LabelFields
from stream_scorer.labels.join import LabelJoiner
from stream_scorer.labels.quality import RollingQuality, WindowSpec
from stream_scorer.monitoring.label_metrics import LabelMetrics
from stream_scorer.monitoring.quality import QualityCollector
from stream_scorer.monitoring.server import MetricsServer
from stream_scorer.wiring.access import check_label_redis
from stream_scorer.wiring.clients import (
    dead_letter_limit,
    ensure_configured_topics,
    kafka_clients,
    pending_store,
    redis_nodes,
    schemas,
    serve_metrics,
)
from stream_scorer.worker.label_flow import LabelFlow

log = logging.getLogger(__name__)


@dataclass
class LabelRuntime:
    """The label flow and the clients it owns."""

    flow: LabelFlow
    consumer: BatchConsumer
    producer: CheckedProducer
    client: Nodes
    quality: RollingQuality
    metrics_server: MetricsServer | None

    def ready(self) -> tuple[bool, str]:
        """Ready when label partitions are assigned, Redis answers and no batch is being retried."""
        if self.flow.retrying is not None:
            return False, self.flow.retrying
        if not self.consumer.assigned:
            return False, "no label partitions assigned yet"
        if not self.client.ping():
            return False, "redis does not answer"
        return True, "ready"

    def close(self) -> None:
        """Leave the group, stop serving metrics, close Redis."""
        try:
            self.consumer.close()
            self.producer.raw.flush(10)
        finally:
            if self.metrics_server is not None:
                self.metrics_server.stop()
            self.client.close()


def quality_windows(settings: Settings) -> list[WindowSpec]:
    """The rolling windows of ``labels.windows``: counts ("10000") and durations ("1h")."""
    specs = []
    for window in settings.labels.windows:
        seconds = window_seconds(window)
        if seconds is None:
            specs.append(WindowSpec(window, count=int(window)))
        else:
            bucket = min(settings.labels.bucket_seconds, seconds)
            specs.append(WindowSpec(window, seconds=seconds, bucket_seconds=bucket))
    return specs


def build_label_runtime(settings: Settings, registry: CollectorRegistry | None = None) -> LabelRuntime:
    """The label flow: its own consumer group on the labels topic, the join in Redis, metrics served."""
    registry = registry if registry is not None else CollectorRegistry()
    metrics = LabelMetrics(registry)
    quality = RollingQuality(quality_windows(settings), bucket_seconds=settings.labels.bucket_seconds)
    QualityCollector(quality, registry=registry)
    labels = settings.labels
    connection = redis_nodes(settings.redis)
    joiner = LabelJoiner(
        pending_store(settings, connection),
        horizon_seconds=labels.horizon_seconds,
        hold_seconds=labels.hold_seconds,
    )
    check_label_redis(joiner)
    kafka = settings.kafka
    if kafka.create_topics:
        ensure_configured_topics(settings)
    group = labels.group_id or f"{kafka.group_id}-labels"
    client = {"bootstrap.servers": kafka.bootstrap_servers, **kafka.librdkafka()}
    check_access(client, {kafka.labels_topic: "read", kafka.dead_letter_topic: "write"}, group)
    consumer_settings = consumer_config(
        kafka.bootstrap_servers, group, kafka.librdkafka(), kafka.session_timeout_seconds
    )
    producer_settings = producer_config(kafka.bootstrap_servers, kafka.librdkafka())
    max_dead_letter_bytes = dead_letter_limit(settings, producer_settings)
    producer, consumer = kafka_clients(
        producer_settings,
        consumer_settings,
        kafka.labels_topic,
        metrics.assigned_partitions.set,
    )
    flow = LabelFlow(
        source=consumer,
        delivery=AtLeastOnce(producer, consumer, settings.batch.flush_timeout_seconds),
        schema=schemas(settings).label,
        label_fields=label_fields(settings),
        joiner=joiner,
        quality=quality,
        metrics=metrics,
        dead_letter_topic=kafka.dead_letter_topic,
        max_dead_letter_bytes=max_dead_letter_bytes,
        max_events=labels.max_events,
        max_wait_seconds=settings.batch.max_wait_seconds,
        retry_seconds=labels.retry_seconds,
        coverage_lookback_seconds=labels.coverage_lookback_seconds,
    )
    runtime = LabelRuntime(flow, consumer, producer, connection, quality, None)
    runtime.metrics_server = serve_metrics(settings, registry, runtime.ready, runtime.close, "label flow metrics")
    return runtime


def label_fields(settings: Settings) -> LabelFields:
    """The configured names of the label record's fields, checked against its schema: an id (string, int or
    long), a 0/1 label (int, long or boolean) and a time (long epoch ms, or timestamp-millis/micros), none null."""
    labels = settings.labels
    schema = schemas(settings).label_json
    try:
        fields = leaf_fields(schema)
    except SchemaError as exc:
        raise ConfigError(f"labels.schema: {exc}") from exc
    wanted: dict[str, tuple[str, Callable[[FieldType], bool], str]] = {  # setting: (field, whether it fits, what)
        "labels.id_field": (labels.id_field, lambda f: f.kind in ("string", "int"), "a string, int or long"),
        "labels.label_field": (labels.label_field, lambda f: f.kind in ("int", "boolean"), "an int or a boolean"),
        "labels.time_field": (
            labels.time_field,
            lambda f: f.kind == "timestamp" or f.avro == "long",
            "a long (epoch ms), timestamp-millis or timestamp-micros",
        ),
    }
    for setting, (name, fits, expected) in wanted.items():
        field = fields.get(name)
        if field is None or field.nullable or not fits(field):
            shown = "missing" if field is None else f"{field.avro}{' or null' if field.nullable else ''}"
            raise ConfigError(
                f"{setting}: {name!r} in the label schema {schema.get('name')} is {shown}; it must be "
                f"{expected}, not null. The schema's fields: {sorted(fields)}"
            )
    units = fields[labels.time_field].units_per_ms
    confluent = labels.input_format == "confluent"
    return LabelFields(labels.id_field, labels.label_field, labels.time_field, units, confluent)
