"""Assembles the scoring worker from settings. Tests build the same objects with fakes."""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.registry import CollectorRegistry

from stream_scorer.codec import EventDecoder, Schemas
from stream_scorer.codec.native import native_available, use_native
from stream_scorer.config import Settings, window_seconds
from stream_scorer.errors import StreamScorerError
from stream_scorer.features.breaker import CircuitBreakerLookup
from stream_scorer.features.store import FeatureLookup, RedisFeatureStore
from stream_scorer.kafka.access import check_access
from stream_scorer.kafka.consumer import BatchConsumer, consumer_config
from stream_scorer.kafka.delivery import AtLeastOnce, Delivery, ExactlyOnce
from stream_scorer.kafka.producer import CheckedProducer, producer_config
from stream_scorer.labels.pending import models_header
from stream_scorer.model.artifact import LogisticModel
from stream_scorer.model.reload import ModelReloader
from stream_scorer.monitoring.drift import DriftCollector, DriftMonitor
from stream_scorer.monitoring.lag import ConsumerLagGauge
from stream_scorer.monitoring.metrics import ScorerMetrics
from stream_scorer.monitoring.server import MetricsServer
from stream_scorer.pipeline import Scorer
from stream_scorer.pipeline.emit import PredictionEncoder
from stream_scorer.wiring.access import check_worker_redis
from stream_scorer.wiring.clients import (
    dead_letter_limit,
    ensure_configured_topics,
    event_contract,
    feature_store,
    kafka_clients,
    lag_statistics,
    model_loader,
    pending_store,
    prediction_frame,
    redis_nodes,
    registry_client,
    schemas,
    serve_metrics,
    served_model_path,
    transactional_id,
)
from stream_scorer.worker import BatchBounds, ModelServing, Topics, Worker
from stream_scorer.worker.guard import InvalidInputGuard

log = logging.getLogger(__name__)


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
        """Commit the uncommitted window, leave the group, stop serving metrics, close Redis."""
        try:
            try:
                self.worker.commit_window()
            except StreamScorerError as exc:  # nothing more is committed; a restart re-reads from the last commit
                log.warning("batches not committed at close: %s", exc)
            self.worker.close()
            self.consumer.close()
            self.producer.raw.flush(10)
        finally:
            if self.metrics_server is not None:
                self.metrics_server.stop()
            self.store.close()


def drift_monitor(settings: Settings, model: LogisticModel) -> DriftMonitor | None:
    """PSI against the model's training baselines (None when disabled or the artifact has none)."""
    if not settings.drift.enabled or not model.baselines:
        return None
    windows = tuple(window_seconds(w) or 0.0 for w in settings.drift.windows)
    return DriftMonitor(
        model.baselines, model.feature_names, windows=windows, bucket_seconds=settings.drift.bucket_seconds
    )


def build_runtime(settings: Settings, registry: CollectorRegistry | None = None) -> Runtime:
    """Validate everything once (schemas, model checksum, model features vs. feature groups), then connect."""
    parsed = schemas(settings)
    load = model_loader(settings)
    path, models, version = served_model_path(settings)
    model = load(path)
    challengers = [load(Path(p)) for p in settings.challengers]
    metrics = ScorerMetrics(registry := registry if registry is not None else CollectorRegistry())
    connection = redis_nodes(settings.redis, metrics.redis_nodes_open.set)  # features and pending predictions
    store = feature_store(settings, connection)
    lookup = CircuitBreakerLookup(
        store,
        failures=settings.redis.breaker_failures,
        reset_seconds=settings.redis.breaker_reset_seconds,
        on_state=metrics.feature_store_circuit.set,
        on_error=metrics.feature_store_errors.inc,
    )
    frame = prediction_frame(settings)
    announce_decoder(decoder := event_decoder(settings, parsed), metrics)
    serve = functools.partial(model_serving, settings, parsed, decoder, lookup, challengers, frame)
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
    pending = pending_store(settings, connection) if settings.labels.enabled else None
    check_worker_redis(store, settings.feature_groups, pending)
    producer, consumer, delivery, max_dead_letter_bytes = kafka_side(settings, metrics, registry)
    worker = Worker(
        source=consumer,
        delivery=delivery,
        decoder=decoder,
        serving=serving,
        models=reloader,
        pending_predictions=pending,
        metrics=metrics,
        bounds=batch_bounds(settings),
        topics=Topics(
            predictions=settings.kafka.output_topic,
            dead_letters=settings.kafka.dead_letter_topic,
            max_dead_letter_bytes=max_dead_letter_bytes,
        ),
        guard=InvalidInputGuard(
            max_consecutive=settings.validation.max_consecutive_invalid,
            max_ratio=settings.validation.max_invalid_ratio,
            window=settings.validation.window_messages,
        ),
    )
    DriftCollector(worker, registry=registry)
    runtime = Runtime(worker=worker, consumer=consumer, producer=producer, store=store, metrics_server=None)
    runtime.metrics_server = serve_metrics(settings, registry, runtime.ready, runtime.close, "metrics")
    return runtime


def tune_garbage_collector() -> None:
    """For a worker process, once it is built: keep the garbage collector off the hot path. What exists after
    startup (modules, the model, settings) is never scanned again, and young objects are collected after
    50,000 allocations instead of 700 (a batch makes tens of thousands that die with it; scanning them took
    5% of a worker's samples at batch 4000). Process-wide, so the commands call it, not the builders."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def model_serving(
    settings: Settings,
    parsed: Schemas,
    decoder: EventDecoder,
    lookup: FeatureLookup,
    challengers: Sequence[LogisticModel],
    frame: bytes,
    champion: LogisticModel,
) -> ModelServing:
    """What scores and encodes batches for ``champion`` (and the challengers that are not it) in shadow;
    the decoder is told which event fields they read."""
    shadow = [c for c in challengers if c.checksum != champion.checksum]  # a promoted challenger is champion
    scorer = Scorer(
        champion,
        settings.feature_groups,
        lookup,
        settings.reason_codes,
        shadow,
        event_fields=decoder.contract.fields,
        max_future_ms=int(settings.validation.feature_max_future_seconds * 1000),
        range_margin=settings.validation.feature_range_margin,
    )
    decoder.read_also(scorer.plan.event_fields)
    return ModelServing(
        scorer=scorer,
        encoder=PredictionEncoder(parsed.prediction, champion, shadow, settings.events.passthrough, frame),
        drift=drift_monitor(settings, champion),
        join_header=models_header([(m.name, m.version) for m in (champion, *shadow)]),
    )


def kafka_side(
    settings: Settings, metrics: ScorerMetrics, registry: CollectorRegistry
) -> tuple[CheckedProducer, BatchConsumer, Delivery, int]:
    """The producer, the consumer, how batches are finished, and the dead-letter size limit."""
    kafka = settings.kafka
    client = kafka.librdkafka()
    if kafka.create_topics:
        created = ensure_configured_topics(settings)
        if created:
            log.info("created topics %s", created)
    exactly_once = kafka.delivery == "exactly_once"
    topics = {kafka.input_topic: "read", kafka.output_topic: "write", kafka.dead_letter_topic: "write"}
    check_access({"bootstrap.servers": kafka.bootstrap_servers, **client}, topics, kafka.group_id)
    consumer_settings = consumer_config(kafka.bootstrap_servers, kafka.group_id, client, kafka.session_timeout_seconds)
    consumer_settings.update(lag_statistics(ConsumerLagGauge(registry)))
    if exactly_once:
        consumer_settings["isolation.level"] = "read_committed"
    producer_settings = producer_config(kafka.bootstrap_servers, client)
    max_dead_letter_bytes = dead_letter_limit(settings, producer_settings)
    timeout = settings.batch.flush_timeout_seconds
    if exactly_once:
        producer_settings["transactional.id"] = transactional_id(settings)
        producer_settings["transaction.timeout.ms"] = settings.transaction_timeout_ms
    producer, consumer = kafka_clients(
        producer_settings, consumer_settings, kafka.input_topic, metrics.assigned_partitions.set
    )
    delivery: Delivery = (
        ExactlyOnce(producer, consumer, timeout, transactional_id=producer_settings["transactional.id"])
        if exactly_once
        else AtLeastOnce(producer, consumer, timeout)
    )
    return producer, consumer, delivery, max_dead_letter_bytes


def announce_decoder(decoder: EventDecoder, metrics: ScorerMetrics) -> None:
    """Say which Avro decoder runs, at startup and in ``stream_scorer_decoder_info``, and count its fallbacks."""
    name = "native" if decoder.native else "python"
    metrics.decoder.info({"decoder": name, "native_installed": str(native_available()).lower()})
    decoder.on_native_failure = metrics.decoder_fallbacks.inc
    if decoder.native:
        log.info("events are decoded by the native decoder (stream_scorer_native, arrow-avro)")
    elif native_available():
        log.info("events are decoded by the Python reader (events.decoder = 'python')")
    else:
        log.warning(
            "the stream_scorer_native extension is not installed: events are decoded by the Python reader, "
            "several times slower (scripts/install builds the extension where cargo is found)"
        )


def event_decoder(settings: Settings, parsed: Schemas) -> EventDecoder:
    """The decoder of the configured events and framing, with the validation settings."""
    validation = settings.validation
    client = None
    if settings.schema_registry.url and settings.kafka.input_format == "confluent":
        client = registry_client(settings)
    return EventDecoder(
        event_contract(settings, parsed),
        parsed,
        settings.kafka.input_format,
        max_message_bytes=validation.max_message_bytes,
        max_future_ms=int(validation.max_future_seconds * 1000),
        max_past_ms=int(validation.max_past_seconds * 1000),
        registry=client,
        native=use_native(settings.events.decoder),
    )


def batch_bounds(settings: Settings) -> BatchBounds:
    """How much each batch polls, how often it commits, and how a failed one is retried."""
    batch = settings.batch
    return BatchBounds(
        max_events=batch.max_events,
        max_wait_seconds=batch.max_wait_seconds,
        commit_interval_seconds=batch.commit_interval_seconds,
        max_uncommitted_batches=batch.max_uncommitted_batches,
        retry_backoff_seconds=batch.retry_backoff_seconds,
        max_retry_backoff_seconds=batch.max_retry_backoff_seconds,
    )
