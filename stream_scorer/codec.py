"""Avro in and out: the schemas in ``schemas/`` loaded once, events decoded into a columnar batch.

Two input framings are accepted, chosen by configuration:

* ``avro``: the message value is the plain Avro binary body of a ``Transaction``;
* ``confluent``: magic byte ``0``, a 4-byte big-endian schema id, then the body. Only the schema ids
  configured are accepted; each maps to its writer schema file, resolved against our reader schema.

Timestamps stay integers (epoch milliseconds): the ``timestamp-millis`` logical type is not turned
into ``datetime`` objects, which would cost time on the hot path and change nothing on the wire.
"""

from __future__ import annotations

import io
import json
import math
import struct
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import fastavro
import numpy as np
from fastavro.read import SchemaResolutionError

from stream_scorer.avro_strict import MalformedAvro, compile_reader
from stream_scorer.batch import EventBatch
from stream_scorer.errors import InvalidEventError, SchemaError

CONFLUENT_MAGIC = 0
_CONFLUENT_HEADER = struct.Struct(">bI")

# Reasons an input message is rejected; a fixed set, used as a metric label.
INVALID_REASONS = (
    "empty_value",
    "oversized",
    "bad_magic_byte",
    "unknown_schema_id",
    "incompatible_schema",
    "malformed_avro",
    "trailing_bytes",
    "missing_entity_id",
    "invalid_amount",
    "event_time_in_future",
)


class KafkaMessage(Protocol):
    """The part of ``confluent_kafka.Message`` that decoding reads."""

    def value(self) -> bytes | None: ...
    def key(self) -> bytes | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def timestamp(self) -> tuple[int, int]: ...


@dataclass(frozen=True, slots=True)
class Schemas:
    """The parsed contract: transaction (reader), prediction, label, and writer schemas by Confluent id."""

    transaction: Any
    prediction: Any
    label: Any
    writers_by_id: Mapping[int, Any]


def load_schemas(schemas_dir: Path, schema_ids: Mapping[str, str] | None = None) -> Schemas:
    """Parse ``transaction.avsc``, ``prediction.avsc`` and ``label.avsc`` (and the writer schemas by id)."""
    writers = {int(k): _parse(schemas_dir / v) for k, v in (schema_ids or {}).items()}
    return Schemas(
        transaction=_parse(schemas_dir / "transaction.avsc"),
        prediction=_parse(schemas_dir / "prediction.avsc"),
        label=_parse(schemas_dir / "label.avsc"),
        writers_by_id=writers,
    )


def _parse(path: Path) -> Any:
    try:
        return fastavro.parse_schema(_without_logical_types(json.loads(path.read_text())))
    except FileNotFoundError as exc:
        raise SchemaError(f"schema file {path} does not exist") from exc
    except (ValueError, fastavro.schema.SchemaParseException) as exc:
        raise SchemaError(f"schema file {path} does not parse: {exc}") from exc


def _without_logical_types(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_without_logical_types(s) for s in schema]
    return schema


@dataclass(frozen=True, slots=True)
class InvalidMessage:
    """A rejected message and why; the dead-letter topic gets both."""

    message: KafkaMessage
    error: InvalidEventError


@dataclass(frozen=True, slots=True)
class DecodeResult:
    """The valid events as a batch, the rejected messages, and per polled message whether it was valid."""

    batch: EventBatch
    invalid: list[InvalidMessage]
    valid_flags: list[bool]


class EventDecoder:
    """Decodes and validates transaction messages in the configured framing."""

    def __init__(
        self,
        schemas: Schemas,
        input_format: Literal["avro", "confluent"],
        *,
        max_message_bytes: int = 65536,
        max_future_ms: int = 300_000,
        sensitive_fields: Sequence[str] = (),
    ) -> None:
        self._schemas = schemas
        self._confluent = input_format == "confluent"
        self._max_bytes = max_message_bytes
        self._max_future_ms = max_future_ms
        self._sensitive = frozenset(sensitive_fields)
        try:
            self._read_transaction = compile_reader(schemas.transaction)
            self._read_writers = {id(w): compile_reader(w) for w in schemas.writers_by_id.values()}
        except MalformedAvro as exc:
            raise SchemaError(f"cannot build a reader for the input schemas: {exc}") from exc

    def decode_one(self, value: bytes | None) -> dict[str, Any]:
        """Decode one message value into a record dict; raise :class:`InvalidEventError` if it is bad."""
        return self._decode_framed(value)[0]

    def _decode_framed(self, value: bytes | None) -> tuple[dict[str, Any], int | None]:
        if not value:
            raise InvalidEventError("empty_value", "message has no value")
        if len(value) > self._max_bytes:
            raise InvalidEventError("oversized", f"{len(value)} bytes, over the {self._max_bytes}-byte limit")
        writer = self._schemas.transaction
        start = 0
        schema_id = None
        if self._confluent:
            if value[0] == CONFLUENT_MAGIC and len(value) < _CONFLUENT_HEADER.size:
                raise InvalidEventError("malformed_avro", f"{len(value)} bytes: too short for the Confluent header")
            if value[0] != CONFLUENT_MAGIC:
                raise InvalidEventError("bad_magic_byte", f"expected Confluent magic byte 0, got {value[0]}")
            _, schema_id = _CONFLUENT_HEADER.unpack_from(value)
            found = self._schemas.writers_by_id.get(schema_id)
            if found is None:
                raise InvalidEventError(
                    "unknown_schema_id", f"schema id {schema_id} is not configured", schema_id=schema_id
                )
            writer, start = found, _CONFLUENT_HEADER.size
        try:
            record = self._strict_one(value, start, writer)
        except SchemaResolutionError as exc:
            raise InvalidEventError("incompatible_schema", str(exc)[:200], schema_id=schema_id) from exc
        except InvalidEventError as exc:
            exc.schema_id = schema_id
            raise
        except Exception as exc:  # whatever hostile bytes make a decoder raise: the message is malformed, never fatal
            detail = f"{type(exc).__name__}: {exc}"[:200]
            raise InvalidEventError("malformed_avro", detail, schema_id=schema_id) from exc
        return record, schema_id

    def _strict_one(self, value: bytes, start: int, writer: Any) -> dict[str, Any]:
        """Decode strictly (see :mod:`stream_scorer.avro_strict`): the body must be exactly one record in
        Avro's canonical encoding; a newer writer schema is then resolved against the reader schema."""
        read = self._read_transaction if writer is self._schemas.transaction else self._read_writers[id(writer)]
        try:
            record, end = read(value, start)
        except (IndexError, struct.error) as exc:
            raise InvalidEventError("malformed_avro", "truncated: the body ends inside a value") from exc
        if end != len(value):
            raise InvalidEventError("trailing_bytes", f"{len(value) - end} bytes after the record")
        if writer is not self._schemas.transaction:  # resolve against the reader schema only when it differs
            body = io.BytesIO(memoryview(value)[start:])
            record = fastavro.schemaless_reader(body, writer, self._schemas.transaction)
        return typing.cast(dict[str, Any], record)

    def decode(self, messages: Sequence[KafkaMessage], consumed_at_ms: int) -> DecodeResult:
        """Decode and validate a micro-batch; bad messages are returned as errors, never raised."""
        records: list[dict[str, Any]] = []
        origin: list[KafkaMessage] = []
        invalid: list[InvalidMessage] = []
        valid_flags = [True] * len(messages)
        positions: list[int] = []
        schema_ids: list[int | None] = []
        for position, message in enumerate(messages):
            try:
                record, schema_id = self._decode_framed(message.value())
                records.append(record)
                schema_ids.append(schema_id)
                origin.append(message)
                positions.append(position)
            except InvalidEventError as exc:
                invalid.append(InvalidMessage(message, _located(exc, message)))
                valid_flags[position] = False
        problems = validate_records(records, consumed_at_ms + self._max_future_ms, self._sensitive)
        if problems:
            for i, err in problems.items():
                err.schema_id = schema_ids[i]
                invalid.append(InvalidMessage(origin[i], _located(err, origin[i])))
                valid_flags[positions[i]] = False
            keep = [i for i in range(len(records)) if i not in problems]
            records = [records[i] for i in keep]
            origin = [origin[i] for i in keep]
        return DecodeResult(batch=to_batch(records, origin, consumed_at_ms), invalid=invalid, valid_flags=valid_flags)


ENTITY_FIELDS = ("event_id", "card_id", "merchant_id", "device_id")


def validate_records(
    records: Sequence[Mapping[str, Any]], latest_event_time_ms: int, sensitive: frozenset[str] = frozenset()
) -> dict[int, InvalidEventError]:
    """Check what Avro cannot: entity ids present, amounts finite and not negative, event time not too far
    ahead. Index -> error. Values of ``sensitive`` fields are masked in the error text."""
    problems: dict[int, InvalidEventError] = {}
    for i, r in enumerate(records):
        if not (r["event_id"] and r["card_id"] and r["merchant_id"] and r["device_id"]):
            empty = [k for k in ENTITY_FIELDS if not r[k]]
            problems[i] = InvalidEventError("missing_entity_id", f"empty {', '.join(empty)}")
        elif not (math.isfinite(r["amount"]) and r["amount"] >= 0):
            shown = mask("amount", r["amount"], sensitive)
            problems[i] = InvalidEventError("invalid_amount", f"amount={shown} must be finite and >= 0")
        elif r["event_time"] > latest_event_time_ms:
            ahead = (r["event_time"] - latest_event_time_ms) / 1000.0
            problems[i] = InvalidEventError(
                "event_time_in_future", f"event_time is {ahead:.0f} s past the allowed skew"
            )
    return problems


def mask(field: str, value: Any, sensitive: frozenset[str]) -> str:
    """A field's value for a log line or header: ``***`` when the field is sensitive.

    >>> mask("card_id", "4111-1111", frozenset({"card_id"})), mask("amount", 12.5, frozenset({"card_id"}))
    ('***', '12.5')
    """
    return "***" if field in sensitive else str(value)


def _located(exc: InvalidEventError, message: KafkaMessage) -> InvalidEventError:
    located = InvalidEventError(
        exc.reason,
        exc.detail,
        topic=message.topic() or "",
        partition=_int(message.partition()),
        offset=_int(message.offset()),
        schema_id=exc.schema_id,
    )
    located.__cause__ = exc.__cause__
    return located


def _int(value: int | None) -> int:
    return -1 if value is None else value


def to_batch(
    records: Sequence[Mapping[str, Any]], messages: Sequence[KafkaMessage] | None, consumed_at_ms: int
) -> EventBatch:
    """Turn decoded records (and the messages they came from, if any) into columns."""
    n = len(records)
    if n == 0:
        return EventBatch.empty()
    if messages is None:
        messages = [_NoMessage()] * n

    def col(name: str) -> list[Any]:
        return [r[name] for r in records]

    return EventBatch(
        event_id=col("event_id"),
        event_time_ms=np.fromiter((r["event_time"] for r in records), np.int64, n),
        card_id=col("card_id"),
        merchant_id=col("merchant_id"),
        device_id=col("device_id"),
        amount=np.fromiter((r["amount"] for r in records), np.float64, n),
        currency=np.array(col("currency")),
        merchant_category_code=np.fromiter((r["merchant_category_code"] for r in records), np.int32, n),
        country=np.array(col("country")),
        card_country=np.array(col("card_country")),
        channel=np.array(col("channel")),
        entry_mode=np.array(col("entry_mode")),
        card_present=np.fromiter((r["card_present"] for r in records), np.bool_, n),
        key=[m.key() for m in messages],
        partition=np.fromiter((_int(m.partition()) for m in messages), np.int32, n),
        offset=np.fromiter((_int(m.offset()) for m in messages), np.int64, n),
        consumed_at_ms=np.full(n, consumed_at_ms, np.int64),
    )


class _NoMessage:
    """Stands in for the message of a record that did not come from Kafka (training data, tests)."""

    def value(self) -> bytes | None:
        return None

    def key(self) -> bytes | None:
        return None

    def topic(self) -> str | None:
        return None

    def partition(self) -> int | None:
        return None

    def offset(self) -> int | None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (0, 0)


def encode(schema: Any, record: Mapping[str, Any]) -> bytes:
    """Plain Avro binary of one record."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema, record)
    return out.getvalue()


def decode(schema: Any, value: bytes) -> Any:
    """Plain Avro binary of one record back to a dict (for consumers of predictions and labels)."""
    return fastavro.schemaless_reader(io.BytesIO(value), schema, schema)


def confluent_frame(schema_id: int, body: bytes) -> bytes:
    """Wrap an Avro body in the Confluent wire format: magic byte 0 and the 4-byte schema id.

    >>> confluent_frame(7, b"x")
    b'\\x00\\x00\\x00\\x00\\x07x'
    """
    return _CONFLUENT_HEADER.pack(CONFLUENT_MAGIC, schema_id) + body
