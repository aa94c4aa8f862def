"""Builds the real clients from settings and assembles the worker. Tests build the same objects with fakes."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
from prometheus_client.registry import CollectorRegistry

from stream_scorer.codec import EventDecoder, Schemas, load_schemas
from stream_scorer.config import RedisSettings, Settings
from stream_scorer.features.store import RedisFeatureStore
from stream_scorer.kafka.admin import ensure_topics
from stream_scorer.kafka.consumer import BatchConsumer, consumer_config
from stream_scorer.kafka.producer import CheckedProducer, producer_config
from stream_scorer.model import artifact
from stream_scorer.monitoring.metrics import ScorerMetrics
from stream_scorer.monitoring.server import MetricsServer
from stream_scorer.pipeline import Scorer
from stream_scorer.worker import BatchBounds, Worker

log = logging.getLogger(__name__)


def redis_client(settings: RedisSettings) -> redis.Redis:
    """A Redis client returning bytes, with connect and command timeouts."""
    return redis.Redis.from_url(
        settings.url,
        socket_timeout=settings.socket_timeout_seconds,
        socket_connect_timeout=settings.socket_timeout_seconds,
        decode_responses=False,
    )


def feature_store(settings: Settings) -> RedisFeatureStore:
    """The feature store described by ``settings``."""
    return RedisFeatureStore(redis_client(settings.redis), settings.redis.key_prefix)


def schemas(settings: Settings) -> Schemas:
    """The parsed schemas (and Confluent writer schemas by id)."""
    return load_schemas(settings.schemas_dir, settings.kafka.schema_ids)


def ensure_configured_topics(settings: Settings) -> list[str]:
    """Create the input, output and labels topics if missing; returns those created."""
    kafka = settings.kafka
    return ensure_topics(
        kafka.bootstrap_servers,
        [kafka.input_topic, kafka.output_topic, kafka.labels_topic],
        kafka.topic_partitions,
        kafka.client,
        replication_factor=kafka.topic_replication_factor,
    )


@dataclass
class Runtime:
    """A worker and the clients it owns; :meth:`close` releases them in order."""

    worker: Worker
    consumer: BatchConsumer
    store: RedisFeatureStore
    metrics_server: MetricsServer | None

    def ready(self) -> tuple[bool, str]:
        """Ready when partitions are assigned and Redis answers (the model was verified at startup)."""
        if not self.consumer.assigned:
            return False, "no partitions assigned yet"
        if not self.store.ping():
            return False, "redis does not answer"
        return True, "ready"

    def close(self) -> None:
        self.consumer.close()
        if self.metrics_server is not None:
            self.metrics_server.stop()


def build_runtime(settings: Settings, registry: CollectorRegistry | None = None) -> Runtime:
    """Validate everything once (schemas, model checksum, model features vs. feature groups), then connect."""
    parsed = schemas(settings)
    model = artifact.load(settings.model_path)
    store = feature_store(settings)
    scorer = Scorer(model, settings.feature_groups, store)
    log.info(
        "model %s %s (sha256 %s) reads %d features",
        model.name,
        model.version,
        model.checksum[:12],
        len(model.feature_names),
    )
    kafka = settings.kafka
    if kafka.create_topics:
        created = ensure_configured_topics(settings)
        if created:
            log.info("created topics %s", created)
    consumer = BatchConsumer(
        consumer_config(kafka.bootstrap_servers, kafka.group_id, kafka.client), [kafka.input_topic]
    )
    producer = CheckedProducer(producer_config(kafka.bootstrap_servers, kafka.client), kafka.output_topic)
    registry = registry if registry is not None else CollectorRegistry()
    metrics = ScorerMetrics(registry)
    worker = Worker(
        source=consumer,
        sink=producer,
        decoder=EventDecoder(parsed, kafka.input_format),
        scorer=scorer,
        prediction_schema=parsed.prediction,
        metrics=metrics,
        bounds=BatchBounds(
            max_events=settings.batch.max_events,
            max_wait_seconds=settings.batch.max_wait_seconds,
            flush_timeout_seconds=settings.batch.flush_timeout_seconds,
        ),
    )
    runtime = Runtime(worker=worker, consumer=consumer, store=store, metrics_server=None)
    if settings.metrics.enabled:
        runtime.metrics_server = MetricsServer(
            registry, settings.metrics.host, settings.metrics.port, runtime.ready
        ).start()
        host, port = runtime.metrics_server.address
        log.info("metrics on http://%s:%d/metrics", host, port)
    return runtime
