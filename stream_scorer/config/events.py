"""The settings of the events themselves: their contract, and the schema registry their writer schemas come from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stream_scorer.config.secrets import mask_url, resolve_secret
from stream_scorer.errors import ConfigError
from stream_scorer.events.contract import Entity, FieldRule


@dataclass(frozen=True, slots=True, kw_only=True)
class EventSettings:
    """The events the worker scores: their schema, and which fields are the id, the time and the entity keys."""

    schema: Path | None = None  # the reader schema (.avsc); a relative path is read from the settings file's folder
    id_field: str = "event_id"
    time_field: str = "event_time"  # a long or timestamp field; "" to use the Kafka message timestamp
    entities: tuple[Entity, ...] = ()
    rules: tuple[FieldRule, ...] = ()
    # Event fields copied into every prediction's passthrough map, so that consumers need no join.
    passthrough: tuple[str, ...] = ()
    # "native": the stream_scorer_native extension (arrow-avro) decodes, and the worker refuses to start
    # without it; "python": the strict Python reader and fastavro; "auto": native where it is installed.
    decoder: Literal["auto", "native", "python"] = "auto"


@dataclass(frozen=True, slots=True, kw_only=True)
class SchemaRegistrySettings:
    """A Confluent-compatible schema registry (Confluent, Apicurio's ccompat API, Karapace) for input in the
    Confluent framing: a schema id not in ``kafka.schema_ids`` is fetched from it on first sight."""

    url: str = ""  # e.g. "http://127.0.0.1:18081/apis/ccompat/v7"; "" for none
    username: str = ""
    password: str = ""  # "env:NAME" or "file:/path"
    timeout_seconds: float = 2.0
    # With kafka.output_format = "confluent": register the prediction schema under "<output topic>-value" at
    # startup (true), or require its latest version there to be ours (false).
    auto_register: bool = True

    def __post_init__(self) -> None:
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"schema_registry.url must start with http:// or https://, not {self.url!r}")
        if self.timeout_seconds <= 0:
            raise ConfigError("schema_registry.timeout_seconds must be > 0")

    def secret(self) -> str:
        """The password, resolved from its reference (never log it)."""
        return resolve_secret(self.password, "schema_registry.password") if self.password else ""

    def __repr__(self) -> str:
        shown = "***" if self.password else ""
        return f"SchemaRegistrySettings(url={mask_url(self.url)!r}, username={self.username!r}, password={shown!r})"
