"""Kafka messages to a columnar batch: framing, the strict reader, validation; rejects kept with their reason.

Two input framings are accepted, chosen by configuration:

* ``avro``: the message value is the plain Avro binary body of an event (the configured reader schema);
* ``confluent``: magic byte ``0``, a 4-byte big-endian schema id, then the body. Only the schema ids
  configured are accepted; each maps to its writer schema file, resolved against our reader schema. With a
  schema registry, an id not configured is fetched from it on first sight (:mod:`stream_scorer.codec.registry`).
"""

from __future__ import annotations

import io
import logging
import struct
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import fastavro
import numpy as np
from fastavro.read import SchemaResolutionError

from stream_scorer.batch import EventBatch, KafkaMessage
from stream_scorer.codec.native import NativeDecodeFailed, NativeDecoder
from stream_scorer.codec.registry import SchemaSource, WriterSchemas
from stream_scorer.codec.schemas import CONFLUENT_HEADER, CONFLUENT_MAGIC, Schemas
from stream_scorer.codec.strict import MalformedAvro, Reader, compile_reader
from stream_scorer.errors import InvalidEventError, SchemaError
from stream_scorer.events.columns import RULE_REASONS, check, from_arrays, location, read_paths, to_batch
from stream_scorer.events.contract import EventContract

log = logging.getLogger(__name__)

# Reasons an input message is rejected; a fixed set, used as a metric label.
INVALID_REASONS = (
    "empty_value",
    "oversized",
    "bad_magic_byte",
    "unknown_schema_id",
    "incompatible_schema",
    "malformed_avro",
    "trailing_bytes",
    *RULE_REASONS,
)


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
    """Decodes and validates event messages in the configured framing, into the columns that are read.

    The columns are the contract's fields (id, time, entity keys, rules, passthrough) and those added by
    :meth:`read_also` (the served models' inputs); every field is still decoded and checked. With
    ``native``, batches are decoded by :mod:`stream_scorer.codec.native`, by the same rules.
    """

    def __init__(
        self,
        contract: EventContract,
        schemas: Schemas,
        input_format: Literal["avro", "confluent"],
        *,
        max_message_bytes: int = 65536,
        max_future_ms: int = 300_000,
        max_past_ms: int = 0,
        registry: SchemaSource | None = None,
        native: bool = False,
    ) -> None:
        self._contract = contract
        self._native_wanted = native
        self._native: NativeDecoder | None = None
        self.native_fallbacks = 0  # batches the native decoder failed on, decoded by the Python reader
        self.on_native_failure: Callable[[], None] = lambda: None
        self._paths: tuple[str, ...] = ()
        self._schemas = schemas
        self._confluent = input_format == "confluent"
        self._max_bytes = max_message_bytes
        self._max_future_ms = max_future_ms
        self._max_past_ms = max_past_ms
        try:
            self._read_events = compile_reader(schemas.events)
        except MalformedAvro as exc:
            raise SchemaError(f"cannot build a reader for the input schemas: {exc}") from exc
        self._writers = WriterSchemas(schemas.events, schemas.writers_by_id, registry)

    @property
    def native(self) -> bool:
        """Whether batches are decoded by the native extension."""
        return self._native_wanted

    @property
    def contract(self) -> EventContract:
        """The event contract the decoder checks."""
        return self._contract

    def read_also(self, paths: Sequence[str]) -> None:
        """Make the batch carry these fields too (the served models' event inputs); unknown paths raise."""
        if unknown := [p for p in paths if p not in self._contract.fields]:
            raise SchemaError(f"the event schema {self._contract.schema_name} has no fields {unknown}")
        self._paths = tuple(dict.fromkeys([*self._paths, *paths]))

    def decode_one(self, value: bytes | None) -> dict[str, Any]:
        """Decode one message value into a record dict; raise :class:`InvalidEventError` if it is bad."""
        return self._decode_framed(value)[0]

    def _decode_framed(self, value: bytes | None) -> tuple[dict[str, Any], int | None]:
        if not value:
            raise InvalidEventError("empty_value", "message has no value")
        if len(value) > self._max_bytes:
            raise InvalidEventError("oversized", f"{len(value)} bytes, over the {self._max_bytes}-byte limit")
        writer, read = self._schemas.events, self._read_events
        start = 0
        schema_id = None
        if self._confluent:
            if value[0] == CONFLUENT_MAGIC and len(value) < CONFLUENT_HEADER.size:
                raise InvalidEventError("malformed_avro", f"{len(value)} bytes: too short for the Confluent header")
            if value[0] != CONFLUENT_MAGIC:
                raise InvalidEventError("bad_magic_byte", f"expected Confluent magic byte 0, got {value[0]}")
            _, schema_id = CONFLUENT_HEADER.unpack_from(value)
            (writer, read), start = self._writers.writer(schema_id), CONFLUENT_HEADER.size
        try:
            record = self._strict_one(value, start, writer, read)
        except SchemaResolutionError as exc:
            raise InvalidEventError("incompatible_schema", str(exc)[:200], schema_id=schema_id) from exc
        except InvalidEventError as exc:
            exc.schema_id = schema_id
            raise
        except Exception as exc:  # whatever hostile bytes make a decoder raise: the message is malformed, never fatal
            detail = f"{type(exc).__name__}: {exc}"[:200]
            raise InvalidEventError("malformed_avro", detail, schema_id=schema_id) from exc
        return record, schema_id

    def _strict_one(self, value: bytes, start: int, writer: Any, read: Reader) -> dict[str, Any]:
        """Decode strictly (see :mod:`stream_scorer.codec.strict`): the body must be exactly one record in
        Avro's canonical encoding; a newer writer schema is then resolved against the reader schema."""
        try:
            record, end = read(value, start)
        except (IndexError, struct.error) as exc:
            raise InvalidEventError("malformed_avro", "truncated: the body ends inside a value") from exc
        if end != len(value):
            raise InvalidEventError("trailing_bytes", f"{len(value) - end} bytes after the record")
        if writer is not self._schemas.events:  # resolve against the reader schema only when it differs
            body = io.BytesIO(memoryview(value)[start:])
            record = fastavro.schemaless_reader(body, writer, self._schemas.events)
        return typing.cast(dict[str, Any], record)

    def decode(self, messages: Sequence[KafkaMessage], consumed_at_ms: int) -> DecodeResult:
        """Decode and validate a micro-batch; bad messages are returned as errors, never raised. With a schema
        registry, the writer schemas of ids not seen before are fetched first: a registry that cannot answer
        raises :class:`~stream_scorer.errors.SchemaRegistryError` before anything is decoded."""
        if self._confluent:
            self._writers.learn(m.value() for m in messages)
        if self._native_wanted:
            try:
                return self._decode_native(messages, consumed_at_ms)
            except NativeDecodeFailed as exc:
                self.native_fallbacks += 1
                self.on_native_failure()
                log.warning("native decoder failed on a batch (%s); decoded it with the Python reader", exc)
        return self._decode_python(messages, consumed_at_ms)

    def _decode_python(self, messages: Sequence[KafkaMessage], consumed_at_ms: int) -> DecodeResult:
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
        if not records:
            return DecodeResult(batch=EventBatch.empty(), invalid=invalid, valid_flags=valid_flags)
        batch = to_batch(records, origin, self._contract, self._paths, consumed_at_ms)
        return self._checked(batch, origin, positions, schema_ids, DecodeResult(batch, invalid, valid_flags))

    def _decode_native(self, messages: Sequence[KafkaMessage], consumed_at_ms: int) -> DecodeResult:
        keys, typed = read_paths(self._contract, self._paths)
        paths = list(dict.fromkeys([*keys, *typed]))
        if self._native is None or self._native.paths != tuple(paths):
            self._native = NativeDecoder(
                self._schemas, paths, confluent=self._confluent, max_message_bytes=self._max_bytes
            )
        native = self._native
        for schema_id, writer in self._writers.known().items():
            if not native.knows(schema_id):
                native.add_writer(schema_id, writer)
        result = native.decode([m.value() for m in messages])
        refused: list[tuple[int, InvalidEventError]] = [
            (i, InvalidEventError(reason, detail, schema_id=schema_id))
            for i, reason, detail, schema_id in result.rejected
        ]
        for i, schema_id in result.unknown:
            try:
                self._writers.writer(schema_id)
            except InvalidEventError as exc:
                refused.append((i, exc))
        valid_flags = [True] * len(messages)
        invalid: list[InvalidMessage] = []
        for i, error in sorted(refused, key=lambda r: r[0]):
            invalid.append(InvalidMessage(messages[i], _located(error, messages[i])))
            valid_flags[i] = False
        positions = result.positions.tolist()
        if not positions:
            return DecodeResult(batch=EventBatch.empty(), invalid=invalid, valid_flags=valid_flags)
        origin = [messages[i] for i in positions]
        batch = from_arrays(result.columns, origin, self._contract, self._paths, consumed_at_ms)
        schema_ids = [None if s < 0 else s for s in result.schema_ids.tolist()]
        return self._checked(batch, origin, positions, schema_ids, DecodeResult(batch, invalid, valid_flags))

    def _checked(
        self,
        batch: EventBatch,
        origin: list[KafkaMessage],
        positions: list[int],
        schema_ids: list[int | None],
        decoded: DecodeResult,
    ) -> DecodeResult:
        """The decoded batch without the rows that break the contract's rules, which join the invalid."""
        consumed_at_ms = int(batch.consumed_at_ms[0])
        earliest = consumed_at_ms - self._max_past_ms if self._max_past_ms else -(2**63)
        problems = check(batch, self._contract, earliest, consumed_at_ms + self._max_future_ms)
        if not problems:
            return decoded
        for i, err in sorted(problems.items()):
            err.schema_id = schema_ids[i]
            decoded.invalid.append(InvalidMessage(origin[i], _located(err, origin[i])))
            decoded.valid_flags[positions[i]] = False
        keep = np.array([i for i in range(len(origin)) if i not in problems], dtype=np.intp)
        return DecodeResult(batch=batch.take(keep), invalid=decoded.invalid, valid_flags=decoded.valid_flags)


def _located(exc: InvalidEventError, message: KafkaMessage) -> InvalidEventError:
    located = InvalidEventError(
        exc.reason,
        exc.detail,
        topic=message.topic() or "",
        partition=location(message.partition()),
        offset=location(message.offset()),
        schema_id=exc.schema_id,
    )
    located.__cause__ = exc.__cause__
    return located
