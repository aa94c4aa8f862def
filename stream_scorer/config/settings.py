"""The settings: one frozen, typed object and its sections, each checked when it is made.

:mod:`stream_scorer.config.load` builds it from a TOML file and ``STREAM_SCORER_*`` environment variables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from stream_scorer.config.events import EventSettings, SchemaRegistrySettings
from stream_scorer.config.redis_settings import RedisSettings
from stream_scorer.config.secrets import is_secret, resolve_secret
from stream_scorer.errors import ConfigError

InputFormat = Literal["avro", "confluent"]
MESSAGE_TIMEOUT_MS = 120_000  # librdkafka's message.timeout.ms unless kafka.client sets it: a broker restart fits
DeliveryMode = Literal["at_least_once", "exactly_once"]

_REPO_SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureGroup:
    """A named set of features of one entity type, written together with one updated-at time."""

    name: str
    entity: str
    features: tuple[str, ...]
    max_age_seconds: float
    version: int = 1

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name == "event":
            raise ConfigError(f"feature group name {self.name!r} must be an identifier other than 'event'")
        if not self.features or len(set(self.features)) != len(self.features):
            raise ConfigError(f"feature group {self.name!r}: features must be a non-empty list without repeats")
        if self.max_age_seconds <= 0:
            raise ConfigError(f"feature group {self.name!r}: max_age_seconds must be > 0")
        if not 0 <= self.version < 2**16:
            raise ConfigError(f"feature group {self.name!r}: version must fit in 16 bits")


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaSettings:
    bootstrap_servers: str = "127.0.0.1:19092"
    input_topic: str = "events"
    output_topic: str = "predictions"
    labels_topic: str = "labels"
    group_id: str = "stream-scorer"
    input_format: InputFormat = "avro"
    # "confluent": predictions are framed with the id of the prediction schema in [schema_registry]
    output_format: InputFormat = "avro"
    # Confluent wire format: the schema ids we accept, each mapped to its writer schema file (a relative path is
    # read from the settings file's folder).
    schema_ids: Mapping[str, str] = field(default_factory=dict)
    create_topics: bool = True
    topic_partitions: int = 4
    topic_replication_factor: int = 1
    dead_letter_topic: str = "events.dlq"
    # How long the group waits for a silent (killed, stopped) worker before handing its partitions over.
    session_timeout_seconds: float = 45.0
    delivery: DeliveryMode = "at_least_once"
    # Exactly-once: transactional.id = "<prefix>-<group_id>-<worker_slot>", stable across restarts of the slot so
    # that a restarted worker fences its predecessor at once.
    transactional_id_prefix: str = "stream-scorer"
    worker_slot: int = 0
    # Extra librdkafka settings, passed through unchanged (security.protocol, sasl.*, ssl.* ...).
    client: Mapping[str, str] = field(default_factory=dict)
    # librdkafka settings whose values are secrets, each read from "env:NAME" or "file:/path" when the
    # clients are built, e.g. {"sasl.password" = "file:/run/secrets/kafka_password"}.
    client_secrets: Mapping[str, str] = field(default_factory=dict)

    def librdkafka(self) -> dict[str, str]:
        """The pass-through settings with the secrets resolved (never log the result)."""
        return {
            **self.client,
            **{k: resolve_secret(ref, f"kafka.client_secrets.{k}") for k, ref in self.client_secrets.items()},
        }

    def __repr__(self) -> str:  # librdkafka settings may carry passwords and keys
        shown = {k: ("***" if is_secret(k) else v) for k, v in self.client.items()}
        shown |= {k: f"<{v.partition(':')[0]}>" for k, v in self.client_secrets.items()}
        return (
            f"KafkaSettings(bootstrap_servers={self.bootstrap_servers!r}, input_topic={self.input_topic!r}, "
            f"output_topic={self.output_topic!r}, group_id={self.group_id!r}, "
            f"input_format={self.input_format!r}, delivery={self.delivery!r}, client={shown!r})"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchSettings:
    max_events: int = 1000
    max_wait_seconds: float = 0.02  # with nothing in hand, how long a poll waits for a first message
    # 0: flush and commit after every batch; more: at most this often (fewer blocking flushes, more
    # duplicates after a crash). Whatever is uncommitted is committed on shutdown and before a rebalance.
    commit_interval_seconds: float = 0.0
    # At-least-once commits each batch once its own records are acknowledged, while the next ones are
    # scored; with this many batches waiting for acknowledgements, it flushes instead.
    max_uncommitted_batches: int = 8
    # How long a batch may wait for its acknowledgements; it should cover a broker restart.
    flush_timeout_seconds: float = 120.0
    # A batch that was not delivered is read again after this, doubling up to the maximum while it fails.
    retry_backoff_seconds: float = 1.0
    max_retry_backoff_seconds: float = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationSettings:
    """What makes an input message invalid beyond its schema, and when to stop altogether."""

    max_message_bytes: int = 65536
    max_future_seconds: float = 300.0
    max_past_seconds: float = 0.0  # an event older than this is refused; 0: no limit
    # Values of these fields never appear in logs or dead-letter headers.
    sensitive_fields: tuple[str, ...] = ()
    # Stop (without committing) when this many messages in a row are invalid...
    max_consecutive_invalid: int = 500
    # ...or when more than this share of the last `window_messages` messages were invalid.
    max_invalid_ratio: float = 0.5
    window_messages: int = 2000
    # A feature record updated more than this ahead of the worker's clock is refused (a writer's unit or
    # clock error), and so is one holding a value more than `feature_range_margin` training ranges
    # beyond the training minimum or maximum: both are served as missing and counted.
    feature_max_future_seconds: float = 300.0
    feature_range_margin: float = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9464


def window_seconds(text: str) -> float | None:
    """A window given as a duration ("90s", "5m", "1h", "2d") in seconds; None for a count ("10000").

    >>> window_seconds("5m"), window_seconds("24h"), window_seconds("10000")
    (300.0, 86400.0, None)
    """
    units = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    if text.isdigit():
        return None
    try:
        value = float(text[:-1]) * units[text[-1]]
    except (KeyError, ValueError, IndexError) as exc:
        raise ConfigError(
            f'a window is a count like "10000" or a duration like "5m", "1h", "24h"; not {text!r}'
        ) from exc
    if value <= 0:
        raise ConfigError(f"a window must be longer than 0, not {text!r}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelSettings:
    """The late-label join (``stream-scorer labels``) and the pending predictions the worker writes for it."""

    enabled: bool = True  # the worker writes each prediction's pending record to Redis for the join
    horizon_seconds: float = 7 * 86400.0  # how long a prediction waits for its label (the pending record's TTL)
    hold_seconds: float = 600.0  # how long a label that came before its prediction is held and retried
    retry_seconds: float = 1.0  # how often held labels are retried
    windows: tuple[str, ...] = ("10000", "1h", "24h")  # rolling metric windows: label counts or durations
    bucket_seconds: float = 60.0  # time-window and coverage granularity
    coverage_lookback_seconds: float = 3600.0  # coverage over predictions this long before the horizon
    group_id: str = ""  # the label flow's consumer group (default: <kafka.group_id>-labels)
    # The label record: its schema (default: schemas/label.avsc; a relative path is read from the settings
    # file's folder) and the names of its event id, 0/1 label and label time (epoch ms) fields.
    schema: Path | None = None
    id_field: str = "event_id"
    label_field: str = "label"
    time_field: str = "label_time"
    input_format: InputFormat = "avro"  # or "confluent" (the body after the header is read with this schema)
    max_events: int = 1000

    def __post_init__(self) -> None:
        for name in ("horizon_seconds", "hold_seconds", "retry_seconds", "bucket_seconds", "coverage_lookback_seconds"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"labels.{name} must be > 0")
        for window in self.windows:
            window_seconds(window)
        if not self.windows:
            raise ConfigError("labels.windows needs at least one window")
        if self.horizon_seconds < 1:
            raise ConfigError("labels.horizon_seconds must be at least 1")
        if self.coverage_lookback_seconds > self.horizon_seconds + 86400:
            raise ConfigError("labels.coverage_lookback_seconds must not exceed horizon_seconds + 1 day")


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftSettings:
    """PSI of every model feature and of the score against the training baselines, over sliding windows."""

    enabled: bool = True
    windows: tuple[str, ...] = ("5m", "1h")
    bucket_seconds: float = 10.0

    def __post_init__(self) -> None:
        if any(window_seconds(w) is None for w in self.windows) or not self.windows:
            raise ConfigError('drift.windows are durations like "5m" or "1h"')
        if self.bucket_seconds <= 0:
            raise ConfigError("drift.bucket_seconds must be > 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything the worker needs, validated once at startup."""

    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    batch: BatchSettings = field(default_factory=BatchSettings)
    validation: ValidationSettings = field(default_factory=ValidationSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    labels: LabelSettings = field(default_factory=LabelSettings)
    drift: DriftSettings = field(default_factory=DriftSettings)
    events: EventSettings = field(default_factory=EventSettings)
    schema_registry: SchemaRegistrySettings = field(default_factory=SchemaRegistrySettings)
    feature_groups: tuple[FeatureGroup, ...] = ()
    # An artifact directory, or a registry (stream_scorer.model.registry): then the worker serves its CURRENT
    # version and, between batches, reloads when CURRENT moves (checked every model_reload_seconds).
    model_path: Path = Path("models/model")
    model_reload_seconds: float = 1.0
    # Challenger artifact directories: scored in shadow in the same batch, never deciding.
    challengers: tuple[str, ...] = ()
    reason_codes: int = 3  # top contributing features carried by each prediction (0: none)
    # Ed25519 public key (PEM) as "env:NAME" or "file:/path"; with require_signature, unsigned artifacts are refused.
    model_public_key: str = ""
    require_signature: bool = False
    schemas_dir: Path = _REPO_SCHEMAS
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if self.batch.max_events < 1:
            raise ConfigError("batch.max_events must be >= 1")
        if self.batch.max_wait_seconds <= 0:
            raise ConfigError("batch.max_wait_seconds must be > 0")
        if self.kafka.topic_partitions < 1:
            raise ConfigError("kafka.topic_partitions must be >= 1")
        if self.kafka.worker_slot < 0:
            raise ConfigError("kafka.worker_slot must be >= 0")
        v = self.validation
        if not 0.0 < v.max_invalid_ratio <= 1.0 or v.window_messages < 1 or v.max_consecutive_invalid < 1:
            raise ConfigError(
                "validation: max_invalid_ratio must be in (0, 1], window_messages and max_consecutive_invalid >= 1"
            )
        if v.max_message_bytes < 1 or v.max_future_seconds < 0 or v.max_past_seconds < 0:
            raise ConfigError("validation: max_message_bytes must be >= 1, max_future/past_seconds >= 0")
        if v.feature_max_future_seconds < 0 or not v.feature_range_margin > 0:
            raise ConfigError("validation: feature_max_future_seconds must be >= 0 and feature_range_margin > 0")
        if self.require_signature and not self.model_public_key:
            raise ConfigError('require_signature needs model_public_key ("env:NAME" or "file:/path" of a PEM key)')
        if not 0 <= self.reason_codes <= 50:
            raise ConfigError("reason_codes must be between 0 and 50")
        if self.model_reload_seconds <= 0:
            raise ConfigError("model_reload_seconds must be > 0")
        if len(self.challengers) > 8:
            raise ConfigError(f"at most 8 challengers are scored in shadow, not {len(self.challengers)}")
        if not 0 < self.batch.retry_backoff_seconds <= self.batch.max_retry_backoff_seconds:
            raise ConfigError("batch: 0 < retry_backoff_seconds <= max_retry_backoff_seconds is required")
        if self.batch.max_uncommitted_batches < 1:
            raise ConfigError("batch.max_uncommitted_batches must be >= 1")
        if self.batch.commit_interval_seconds < 0:
            raise ConfigError("batch.commit_interval_seconds must be >= 0")
        if self.batch.flush_timeout_seconds <= 0:
            raise ConfigError("batch.flush_timeout_seconds must be > 0")
        if not 0 <= self.metrics.port <= 65535:
            raise ConfigError(f"metrics.port must be in 0..65535 (0 picks a free port), not {self.metrics.port}")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError(f"log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {self.log_level!r}")
        if not self.redis.url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("redis.url must start with redis://, rediss:// (TLS) or unix://")
        if self.redis.breaker_failures < 1 or self.redis.breaker_reset_seconds <= 0:
            raise ConfigError("redis: breaker_failures must be >= 1 and breaker_reset_seconds > 0")
        names = [g.name for g in self.feature_groups]
        if len(set(names)) != len(names):
            raise ConfigError(f"feature group names repeat: {names}")
        entities = [e.name for e in self.events.entities]
        for group in self.feature_groups:
            if group.entity not in entities:
                raise ConfigError(
                    f"feature group {group.name!r} is of entity {group.entity!r}, which [[events.entities]] does "
                    f"not declare (declared: {entities}); add it with the field that holds its key"
                )
        for schema_id in self.kafka.schema_ids:
            if not schema_id.isdigit():
                raise ConfigError(f"kafka.schema_ids keys are integer schema ids, not {schema_id!r}")
        self._check_transactions()

    @property
    def transaction_timeout_ms(self) -> int:
        """The Kafka transaction timeout under exactly-once: a transaction spans one window (the poll wait, the
        commit interval) and its flush; room for two flushes, not much more."""
        b = self.batch
        return int(1000 * (2 * b.flush_timeout_seconds + b.max_wait_seconds + b.commit_interval_seconds))

    def _check_transactions(self) -> None:
        """librdkafka refuses a transactional producer whose message.timeout.ms exceeds the transaction timeout:
        say so here, not in a restart loop."""
        message_ms = int(self.kafka.client.get("message.timeout.ms", MESSAGE_TIMEOUT_MS))
        if self.kafka.delivery == "exactly_once" and message_ms > self.transaction_timeout_ms:
            raise ConfigError(
                f"exactly-once: message.timeout.ms ({message_ms}) must not exceed the transaction timeout "
                f"({self.transaction_timeout_ms} ms, from batch.flush_timeout_seconds): raise "
                "batch.flush_timeout_seconds or lower kafka.client's message.timeout.ms"
            )

    def group(self, name: str) -> FeatureGroup:
        for group in self.feature_groups:
            if group.name == name:
                return group
        raise ConfigError(f"no feature group named {name!r}; configured: {[g.name for g in self.feature_groups]}")
