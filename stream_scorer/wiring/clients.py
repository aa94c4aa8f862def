"""The real clients and checks from settings: Redis, Kafka, topics, schemas, the model loader, the metrics endpoint."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import confluent_kafka
import fastavro
import redis
from prometheus_client.registry import CollectorRegistry
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from stream_scorer.codec import Schemas, confluent_frame, load_schemas
from stream_scorer.codec.registry import RegistryClient
from stream_scorer.config import RedisSettings, Settings, resolve_secret
from stream_scorer.errors import ConfigError, KafkaError, ModelArtifactError
from stream_scorer.events.contract import EventContract, build_contract
from stream_scorer.features.access import refused_login
from stream_scorer.features.nodes import ClusterNodes, Nodes, SingleNode
from stream_scorer.features.store import RedisFeatureStore
from stream_scorer.kafka.admin import ensure_topics, max_message_bytes
from stream_scorer.kafka.consumer import BatchConsumer
from stream_scorer.kafka.producer import CheckedProducer
from stream_scorer.labels.pending import RedisPendingStore
from stream_scorer.model import registry as model_registry
from stream_scorer.model.artifact import LogisticModel
from stream_scorer.model.multinomial import MultinomialModel
from stream_scorer.model.verify import load_verified, load_verified_multinomial
from stream_scorer.monitoring.lag import ConsumerLagGauge
from stream_scorer.monitoring.server import MetricsServer
from stream_scorer.worker.deadletter import DEFAULT_MAX_RECORD_BYTES

log = logging.getLogger(__name__)

BROKER_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588  # Kafka's message.max.bytes, when the topic's cannot be read
MIN_DEAD_LETTER_BYTES = 16_384


def redis_client(settings: RedisSettings) -> redis.Redis | RedisCluster:
    """A Redis (or Redis Cluster) client returning bytes, with connect and command timeouts, ACL user and TLS as
    configured."""
    options: dict[str, object] = {}
    if settings.username:
        options["username"] = settings.username
    if settings.password:
        options["password"] = resolve_secret(settings.password, "redis.password")
    if settings.ssl_ca_certs is not None:
        options["ssl_ca_certs"] = str(settings.ssl_ca_certs)
    if settings.cluster:
        pairs = (n.rpartition(":") for n in settings.cluster_nodes)
        seeds = [ClusterNode(host, int(port)) for host, _, port in pairs]  # type: ignore[no-untyped-call]
        try:  # reads the slot table now
            return RedisCluster.from_url(
                settings.url,
                startup_nodes=seeds or None,
                socket_timeout=settings.socket_timeout_seconds,
                socket_connect_timeout=settings.socket_timeout_seconds,
                decode_responses=False,
                require_full_coverage=False,
                retry=Retry(NoBackoff(), 1),  # a node down is the circuit breaker's business, not a retry loop's
                **options,
            )
        except (redis.RedisError, RedisClusterException) as exc:
            problem = refused_login(exc.__cause__ or exc)  # the cluster client wraps what a seed answered
            if problem is not None:
                raise problem from exc
            raise ConfigError(
                f"no seed node of the Redis Cluster answered ({exc}): check redis.url, redis.cluster_nodes"
            ) from exc
    return redis.Redis.from_url(
        settings.url,
        socket_timeout=settings.socket_timeout_seconds,
        socket_connect_timeout=settings.socket_timeout_seconds,
        decode_responses=False,
        **options,
    )


def redis_nodes(settings: RedisSettings, on_open: Callable[[int], None] | None = None) -> Nodes:
    """Where Redis calls go: the one server, or a cluster's primaries, each with the configured circuit breaker
    (``on_open`` is told how many primaries have theirs open)."""
    client = redis_client(settings)
    if isinstance(client, RedisCluster):
        return ClusterNodes(
            client, failures=settings.breaker_failures, reset_seconds=settings.breaker_reset_seconds, on_open=on_open
        )
    return SingleNode(client)


def feature_store(settings: Settings, nodes: Nodes | None = None) -> RedisFeatureStore:
    """The feature store described by ``settings``."""
    redis_settings = settings.redis
    return RedisFeatureStore(nodes or redis_nodes(redis_settings), redis_settings.key_prefix, redis_settings.key_tags)


def pending_store(settings: Settings, nodes: Nodes) -> RedisPendingStore:
    """Where the worker writes pending predictions and the label flow joins them."""
    labels, redis_settings = settings.labels, settings.redis
    return RedisPendingStore(
        nodes, redis_settings.key_prefix, labels.horizon_seconds, labels.bucket_seconds, redis_settings.key_tags
    )


def schemas(settings: Settings) -> Schemas:
    """The parsed schemas: events (and their Confluent writer schemas by id), predictions, labels."""
    return load_schemas(settings.schemas_dir, settings.events.schema, settings.kafka.schema_ids, settings.labels.schema)


def registry_client(settings: Settings) -> RegistryClient:
    """The configured schema registry's client."""
    registry = settings.schema_registry
    if not registry.url:
        raise ConfigError('the Confluent framing of predictions needs [schema_registry] url = "http://..."')
    return RegistryClient(
        registry.url, username=registry.username, password=registry.secret(), timeout_seconds=registry.timeout_seconds
    )


def prediction_frame(settings: Settings) -> bytes:
    """The Confluent header every prediction starts with when ``kafka.output_format`` is ``confluent``: the id
    of ``prediction.avsc`` under ``<output topic>-value``, registered now or required to be the latest there."""
    if settings.kafka.output_format != "confluent":
        return b""
    client = registry_client(settings)
    text = (settings.schemas_dir / "prediction.avsc").read_text()
    subject = f"{settings.kafka.output_topic}-value"
    if settings.schema_registry.auto_register:
        return confluent_frame(client.register(subject, text), b"")
    schema_id, registered = client.latest(subject)
    ours = fastavro.schema.to_parsing_canonical_form(fastavro.parse_schema(json.loads(text)))
    if fastavro.schema.to_parsing_canonical_form(fastavro.parse_schema(json.loads(registered))) != ours:
        raise ConfigError(
            f"the latest schema under {subject} (id {schema_id}) is not schemas/prediction.avsc: register it, "
            "or set schema_registry.auto_register = true"
        )
    return confluent_frame(schema_id, b"")


def event_contract(settings: Settings, parsed: Schemas) -> EventContract:
    """The configured event contract, checked against the event schema."""
    events = settings.events
    if events.schema is None:
        raise ConfigError(
            "no event schema is configured: set [events] schema (and its id, time and entity fields) in a "
            "settings file, see docs/bring-your-own-events.md; the fraud example runs with "
            "--config examples/fraud/settings.toml"
        )
    return build_contract(
        parsed.events_json,
        id_field=events.id_field,
        time_field=events.time_field,
        entities=events.entities,
        rules=events.rules,
        passthrough=events.passthrough,
        sensitive=settings.validation.sensitive_fields,
    )


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


def model_loader(settings: Settings) -> Callable[[Path], LogisticModel]:
    """Loads an artifact with every check the settings ask for (checksums, signature, golden vectors)."""
    return functools.partial(
        load_verified, public_key_pem=_public_key(settings), require_signature=settings.require_signature
    )


def multinomial_loader(settings: Settings) -> Callable[[Path], MultinomialModel]:
    """The same for a multinomial artifact (scored in batch only)."""
    return functools.partial(
        load_verified_multinomial, public_key_pem=_public_key(settings), require_signature=settings.require_signature
    )


def _public_key(settings: Settings) -> bytes | None:
    return resolve_secret(settings.model_public_key, "model_public_key").encode() if settings.model_public_key else None


def served_model_path(settings: Settings) -> tuple[Path, model_registry.Registry | None, int | None]:
    """The artifact to serve: ``model_path`` itself, or its registry's CURRENT version (then with the registry)."""
    if not model_registry.is_registry(settings.model_path):
        return settings.model_path, None, None
    models = model_registry.Registry(settings.model_path)
    version = models.current()
    if version is None:
        raise ModelArtifactError(f"registry {settings.model_path} has no current version yet; run `model promote`")
    return models.path(version), models, version


def lag_statistics(gauge: ConsumerLagGauge) -> dict[str, object]:
    """Consumer settings that export per-partition lag from librdkafka's statistics (every 5 s)."""
    return {"statistics.interval.ms": 5000, "stats_cb": gauge.update_json}


def kafka_clients(
    producer_settings: dict[str, Any],
    consumer_settings: dict[str, Any],
    topic: str,
    on_assignment: Callable[[int], None],
) -> tuple[CheckedProducer, BatchConsumer]:
    """The producer and the consumer of ``topic`` (the loop that uses it subscribes it); settings librdkafka
    refuses are a ConfigError."""
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
