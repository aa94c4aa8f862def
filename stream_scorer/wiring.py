"""Builds the real clients from settings and assembles the worker. Tests build the same objects with fakes."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import confluent_kafka
import redis
from prometheus_client.registry import CollectorRegistry

from stream_scorer.codec import EventDecoder, Schemas, load_schemas
from stream_scorer.config import RedisSettings, Settings, resolve_secret, window_seconds
from stream_scorer.deadletter import DEFAULT_MAX_RECORD_BYTES
from stream_scorer.emit import PredictionEncoder
from stream_scorer.errors import ConfigError, KafkaError, ModelArtifactError, StreamScorerError
from stream_scorer.features.breaker import CircuitBreakerLookup
from stream_scorer.features.store import RedisFeatureStore
from stream_scorer.guard import InvalidInputGuard
from stream_scorer.kafka.admin import ensure_topics, max_message_bytes
from stream_scorer.kafka.consumer import BatchConsumer, consumer_config
from stream_scorer.kafka.delivery import AtLeastOnce, Delivery, ExactlyOnce
from stream_scorer.kafka.producer import CheckedProducer, producer_config
from stream_scorer.kafka.stats import ConsumerLagGauge
from stream_scorer.label_flow import LabelFlow
from stream_scorer.labels.collector import QualityCollector
from stream_scorer.labels.join import LabelJoiner
from stream_scorer.labels.pending import RedisPendingStore
from stream_scorer.labels.quality import RollingQuality, WindowSpec
from stream_scorer.model import registry as model_registry
from stream_scorer.model.artifact import LogisticModel
from stream_scorer.model.verify import load_verified
from stream_scorer.monitoring.drift import DriftCollector, DriftMonitor
from stream_scorer.monitoring.label_metrics import LabelMetrics
from stream_scorer.monitoring.metrics import ScorerMetrics
from stream_scorer.monitoring.server import MetricsServer
from stream_scorer.pipeline import Scorer
from stream_scorer.reload import ModelReloader
from stream_scorer.worker import BatchBounds, ModelServing, Topics, Worker

log = logging.getLogger(__name__)

BROKER_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588  # Kafka's message.max.bytes, when the topic's cannot be read
MIN_DEAD_LETTER_BYTES = 16_384


def redis_client(settings: RedisSettings) -> redis.Redis:
    """A Redis client returning bytes, with connect and command timeouts, ACL user and TLS as configured."""
    options: dict[str, object] = {}
    if settings.username:
        options["username"] = settings.username
    if settings.password:
        options["password"] = resolve_secret(settings.password, "redis.password")
    if settings.ssl_ca_certs is not None:
        options["ssl_ca_certs"] = str(settings.ssl_ca_certs)
    return redis.Redis.from_url(
        settings.url,
        socket_timeout=settings.socket_timeout_seconds,
        socket_connect_timeout=settings.socket_timeout_seconds,
        decode_responses=False,
        **options,
    )


def feature_store(settings: Settings, client: redis.Redis | None = None) -> RedisFeatureStore:
    """The feature store described by ``settings``."""
    return RedisFeatureStore(client or redis_client(settings.redis), settings.redis.key_prefix)


def pending_store(settings: Settings, client: redis.Redis) -> RedisPendingStore:
    """Where the worker writes pending predictions and the label flow joins them."""
    labels = settings.labels
    return RedisPendingStore(client, settings.redis.key_prefix, labels.horizon_seconds, labels.bucket_seconds)


def schemas(settings: Settings) -> Schemas:
    """The parsed schemas (and Confluent writer schemas by id)."""
    return load_schemas(settings.schemas_dir, settings.kafka.schema_ids)


def ensure_configured_topics(settings: Settings) -> list[str]:
    """Create the input, output, labels and dead-letter topics if missing; returns those created."""
    kafka = settings.kafka
    return ensure_topics(
        kafka.bootstrap_servers,
        [kafka.input_topic, kafka.output_topic, kafka.labels_topic, kafka.dead_letter_topic],
        kafka.topic_partitions,
        kafka.librdkafka(),
        replication_factor=kafka.topic_replication_factor,
    )


def dead_letter_limit(settings: Settings, producer_settings: dict[str, Any]) -> int:
    """The largest dead-letter record both the producer and the dead-letter topic accept (bytes); caps the
    producer's ``batch.size`` to it, so that several dead letters batched together fit too.

    The producer checks records before compression, the broker after: the topic's limit keeps room for
    lz4's worst-case growth of incompressible bytes (0.4%). A topic that accepts less than
    ``MIN_DEAD_LETTER_BYTES`` is refused at startup: dead letters that small would cut most messages.
    """
    kafka = settings.kafka
    producer_limit = int(producer_settings.get("message.max.bytes", DEFAULT_MAX_RECORD_BYTES))
    try:
        topic_limit = max_message_bytes(kafka.bootstrap_servers, kafka.dead_letter_topic, kafka.librdkafka())
    except KafkaError as exc:
        limit = min(producer_limit, BROKER_DEFAULT_MAX_MESSAGE_BYTES - BROKER_DEFAULT_MAX_MESSAGE_BYTES // 200)
        log.warning("%s; dead letters are cut to %d bytes (the producer's and the broker's default)", exc, limit)
    else:
        if topic_limit < MIN_DEAD_LETTER_BYTES:
            raise ConfigError(
                f"the dead-letter topic {kafka.dead_letter_topic} accepts messages of at most {topic_limit} bytes; "
                f"raise its max.message.bytes to at least {MIN_DEAD_LETTER_BYTES} (the broker's default is "
                f"{BROKER_DEFAULT_MAX_MESSAGE_BYTES})"
            )
        limit = min(producer_limit, topic_limit - topic_limit // 200)
    producer_settings["batch.size"] = min(int(producer_settings.get("batch.size", 1_000_000)), limit)
    return limit


def transactional_id(settings: Settings) -> str:
    """The stable transactional.id of this worker slot (exactly-once)."""
    return f"{settings.kafka.transactional_id_prefix}-{settings.kafka.group_id}-{settings.kafka.worker_slot}"


@dataclass
class Runtime:
    """A worker and the clients it owns; :meth:`close` releases them in order."""

    worker: Worker
    consumer: BatchConsumer
    producer: CheckedProducer
    store: RedisFeatureStore
    metrics_server: MetricsServer | None

    def ready(self) -> tuple[bool, str]:
        """Ready when partitions are assigned, Redis answers and no batch is being retried (the model was
        verified at startup)."""
        if self.worker.retrying is not None:
            return False, self.worker.retrying
        if not self.consumer.assigned:
            return False, "no partitions assigned yet"
        if not self.store.ping():
            return False, "redis does not answer"
        return True, "ready"

    def close(self) -> None:
        """Commit what is pending, leave the group, stop serving metrics, close Redis."""
        try:
            try:
                self.worker.finish()
            except StreamScorerError as exc:  # nothing more is committed; a restart re-reads from the last commit
                log.warning("pending batches not committed at close: %s", exc)
            self.worker.close()
            self.consumer.close()
            self.producer.raw.flush(10)
        finally:
            if self.metrics_server is not None:
                self.metrics_server.stop()
            self.store.close()


def model_loader(settings: Settings) -> Callable[[Path], LogisticModel]:
    """Loads an artifact with every check the settings ask for (checksums, signature, golden vectors)."""
    key = resolve_secret(settings.model_public_key, "model_public_key").encode() if settings.model_public_key else None
    return functools.partial(load_verified, public_key_pem=key, require_signature=settings.require_signature)


def served_model_path(settings: Settings) -> tuple[Path, model_registry.Registry | None, int | None]:
    """The artifact to serve: ``model_path`` itself, or its registry's CURRENT version (then with the registry)."""
    if not model_registry.is_registry(settings.model_path):
        return settings.model_path, None, None
    models = model_registry.Registry(settings.model_path)
    version = models.current()
    if version is None:
        raise ModelArtifactError(f"registry {settings.model_path} has no current version yet; run `model promote`")
    return models.path(version), models, version


def drift_monitor(settings: Settings, model: LogisticModel) -> DriftMonitor | None:
    """PSI against the model's training baselines (None when disabled or the artifact has none)."""
    if not settings.drift.enabled or not model.baselines:
        return None
    windows = tuple(window_seconds(w) or 0.0 for w in settings.drift.windows)
    return DriftMonitor(
        model.baselines, model.feature_names, windows=windows, bucket_seconds=settings.drift.bucket_seconds
    )


def lag_statistics(gauge: ConsumerLagGauge) -> dict[str, object]:
    """Consumer settings that export per-partition lag from librdkafka's statistics (every 5 s)."""
    return {"statistics.interval.ms": 5000, "stats_cb": gauge.update_json}


def build_runtime(settings: Settings, registry: CollectorRegistry | None = None) -> Runtime:
    """Validate everything once (schemas, model checksum, model features vs. feature groups), then connect."""
    parsed = schemas(settings)
    load = model_loader(settings)
    path, models, version = served_model_path(settings)
    model = load(path)
    challengers = [load(Path(p)) for p in settings.challengers]
    registry = registry if registry is not None else CollectorRegistry()
    metrics = ScorerMetrics(registry)
    connection = redis_client(settings.redis)  # one pool for features and pending predictions
    store = feature_store(settings, connection)
    lookup = CircuitBreakerLookup(
        store,
        failures=settings.redis.breaker_failures,
        reset_seconds=settings.redis.breaker_reset_seconds,
        on_state=metrics.feature_store_circuit.set,
        on_error=metrics.feature_store_errors.inc,
    )

    def serve(champion: LogisticModel) -> ModelServing:
        shadow = [c for c in challengers if c.checksum != champion.checksum]  # a promoted challenger is champion
        return ModelServing(
            scorer=Scorer(
                champion,
                settings.feature_groups,
                lookup,
                settings.reason_codes,
                shadow,
                max_future_ms=int(settings.validation.feature_max_future_seconds * 1000),
                range_margin=settings.validation.feature_range_margin,
            ),
            encoder=PredictionEncoder(parsed.prediction, champion, shadow),
            drift=drift_monitor(settings, champion),
        )

    serving = serve(model)
    log.info(
        "model %s %s (sha256 %s) reads %d features; %d challenger(s) in shadow",
        model.name,
        model.version,
        model.checksum[:12],
        len(model.feature_names),
        len(serving.scorer.challengers),
    )
    reloader = None
    if models is not None:
        reloader = ModelReloader(
            models,
            load,
            serve,
            on_refused=lambda reason: metrics.model_reload_failures.labels(reason).inc(),
            serving_version=version,
            interval_seconds=settings.model_reload_seconds,
        )
    kafka = settings.kafka
    client = kafka.librdkafka()
    if kafka.create_topics:
        created = ensure_configured_topics(settings)
        if created:
            log.info("created topics %s", created)
    exactly_once = kafka.delivery == "exactly_once"
    consumer_settings = consumer_config(kafka.bootstrap_servers, kafka.group_id, client, kafka.session_timeout_seconds)
    consumer_settings.update(lag_statistics(ConsumerLagGauge(registry)))
    if exactly_once:
        consumer_settings["isolation.level"] = "read_committed"
    producer_settings = producer_config(kafka.bootstrap_servers, client)
    max_dead_letter_bytes = dead_letter_limit(settings, producer_settings)
    timeout = settings.batch.flush_timeout_seconds
    if exactly_once:
        producer_settings["transactional.id"] = transactional_id(settings)
        # A transaction spans one batch: poll wait + scoring + flush. Give it room, but not much more.
        window = settings.batch.max_wait_seconds + settings.batch.commit_interval_seconds
        producer_settings["transaction.timeout.ms"] = int(1000 * (2 * timeout + window))
    producer, consumer = kafka_clients(
        producer_settings, consumer_settings, kafka.input_topic, metrics.assigned_partitions.set
    )
    delivery: Delivery = (
        ExactlyOnce(producer, consumer, timeout) if exactly_once else AtLeastOnce(producer, consumer, timeout)
    )
    validation = settings.validation
    worker = Worker(
        source=consumer,
        delivery=delivery,
        decoder=EventDecoder(
            parsed,
            kafka.input_format,
            max_message_bytes=validation.max_message_bytes,
            max_future_ms=int(validation.max_future_seconds * 1000),
            sensitive_fields=validation.sensitive_fields,
        ),
        scorer=serving.scorer,
        encoder=serving.encoder,
        models=reloader,
        drift=serving.drift,
        pending=pending_store(settings, connection) if settings.labels.enabled else None,
        metrics=metrics,
        bounds=BatchBounds(
            max_events=settings.batch.max_events,
            max_wait_seconds=settings.batch.max_wait_seconds,
            commit_interval_seconds=settings.batch.commit_interval_seconds,
            retry_backoff_seconds=settings.batch.retry_backoff_seconds,
            max_retry_backoff_seconds=settings.batch.max_retry_backoff_seconds,
        ),
        topics=Topics(
            predictions=kafka.output_topic,
            dead_letters=kafka.dead_letter_topic,
            max_dead_letter_bytes=max_dead_letter_bytes,
        ),
        guard=InvalidInputGuard(
            max_consecutive=validation.max_consecutive_invalid,
            max_ratio=validation.max_invalid_ratio,
            window=validation.window_messages,
        ),
    )
    DriftCollector(lambda: worker.drift, registry=registry)
    consumer.before_revoke = worker.before_revoke
    consumer.before_lost = worker.before_lost
    runtime = Runtime(worker=worker, consumer=consumer, producer=producer, store=store, metrics_server=None)
    runtime.metrics_server = serve_metrics(settings, registry, runtime.ready, runtime.close, "metrics")
    return runtime


def kafka_clients(
    producer_settings: dict[str, Any],
    consumer_settings: dict[str, Any],
    topic: str,
    on_assignment: Callable[[int], None],
) -> tuple[CheckedProducer, BatchConsumer]:
    """The producer and the consumer (subscribed to ``topic``); settings librdkafka refuses are a ConfigError."""
    try:
        producer = CheckedProducer.connect(producer_settings)
        consumer = BatchConsumer(consumer_settings, [topic], on_assignment=on_assignment)
    except confluent_kafka.KafkaException as exc:
        raise ConfigError(f"the Kafka client refused its settings (check [kafka.client]): {exc}") from exc
    return producer, consumer


def serve_metrics(
    settings: Settings,
    registry: CollectorRegistry,
    ready: Callable[[], tuple[bool, str]],
    close: Callable[[], None],
    what: str,
) -> MetricsServer | None:
    """Start the metrics endpoint when enabled; if its port cannot be bound, ``close`` the runtime and say so."""
    if not settings.metrics.enabled:
        return None
    try:
        server = MetricsServer(registry, settings.metrics.host, settings.metrics.port, ready)
    except OSError as exc:
        close()
        where = f"{settings.metrics.host}:{settings.metrics.port}"
        raise ConfigError(f"cannot serve metrics on {where}: {exc.strerror}; set metrics.port") from exc
    server.start()
    host, port = server.address
    log.info("%s on http://%s:%d/metrics", what, host, port)
    return server


@dataclass
class LabelRuntime:
    """The label flow and the clients it owns."""

    flow: LabelFlow
    consumer: BatchConsumer
    producer: CheckedProducer
    client: redis.Redis
    quality: RollingQuality
    metrics_server: MetricsServer | None

    def ready(self) -> tuple[bool, str]:
        """Ready when label partitions are assigned and Redis answers."""
        if not self.consumer.assigned:
            return False, "no label partitions assigned yet"
        try:
            self.client.ping()
        except redis.RedisError:
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
    connection = redis_client(settings.redis)
    labels = settings.labels
    joiner = LabelJoiner(
        connection,
        pending_store(settings, connection),
        horizon_seconds=labels.horizon_seconds,
        hold_seconds=labels.hold_seconds,
    )
    kafka = settings.kafka
    if kafka.create_topics:
        ensure_configured_topics(settings)
    group = labels.group_id or f"{kafka.group_id}-labels"
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
