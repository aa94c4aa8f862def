"""Dead-letter records: the original bytes of a rejected message, with headers that say why (pure).

Headers (all UTF-8 strings):

==============================  ===========================================================
``dlq.error.class``             the reason code, e.g. ``malformed_avro`` (a fixed set)
``dlq.error.reason``            a short description; never contains a sensitive field's value
``dlq.original.topic``          where the message was consumed from
``dlq.original.partition``
``dlq.original.offset``
``dlq.original.timestamp``      the original message timestamp (epoch ms)
``dlq.schema.id``               the Confluent schema id, when the message had one
``dlq.original_size``           only when the value was cut: its size in bytes
``dlq.value_truncated``         only when the value was cut: ``true``
``dlq.original_key_size``       only when the key was cut: its size in bytes
``dlq.key_truncated``           only when the key was cut: ``true``
==============================  ===========================================================

The key and the value are the original ones, byte for byte (a null value stays null, an empty one
empty), so a fixed message can be replayed as is. The one exception is a record that would not fit
the producer's (or the dead-letter topic's) maximum message size: then the value, and the key if it
alone is too big, is cut to fit and the headers above say so; the original stays on the input topic
at the partition and offset named in the headers. Without this, a message the broker accepted on the
input topic could never be dead-lettered and would block its partition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stream_scorer.codec import InvalidMessage

# librdkafka's default message.max.bytes; wiring passes the configured (or the topic's smaller) one.
DEFAULT_MAX_RECORD_BYTES = 1_000_000
# A record alone in a batch: the batch header (61 bytes) and the record's varint lengths and attributes.
_RECORD_OVERHEAD = 128
_HEADER_OVERHEAD = 10  # two varint lengths per header


@dataclass(frozen=True, slots=True)
class DeadLetters:
    """Keys, values and headers of the dead-letter records of one batch, in input order."""

    keys: list[bytes | None]
    values: list[bytes | None]
    headers: list[list[tuple[str, bytes]]]


def dead_letters(invalid: Sequence[InvalidMessage], max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> DeadLetters:
    """Dead-letter records for the rejected messages of a batch, each at most ``max_record_bytes``."""
    ordered = sorted(invalid, key=lambda item: (item.error.partition, item.error.offset))
    keys, values, headers = [], [], []
    for item in ordered:
        error, message = item.error, item.message
        header = [
            ("dlq.error.class", error.reason.encode()),
            ("dlq.error.reason", error.detail.encode()),
            ("dlq.original.topic", error.topic.encode()),
            ("dlq.original.partition", str(error.partition).encode()),
            ("dlq.original.offset", str(error.offset).encode()),
            ("dlq.original.timestamp", str(message.timestamp()[1]).encode()),
        ]
        if error.schema_id is not None:
            header.append(("dlq.schema.id", str(error.schema_id).encode()))
        key, value = _fit_one(message.key(), message.value(), header, max_record_bytes)
        keys.append(key)
        values.append(value)
        headers.append(header)
    return DeadLetters(keys, values, headers)


def record_budget(max_record_bytes: int) -> int:
    """The bytes left for key, value and headers in a record of at most ``max_record_bytes``.

    The headroom covers the record's framing in a batch of its own (librdkafka counts it in the limit).

    >>> record_budget(1_000_000)
    999872
    """
    return max_record_bytes - _RECORD_OVERHEAD


def _fit_one(
    key: bytes | None, value: bytes | None, header: list[tuple[str, bytes]], max_record_bytes: int
) -> tuple[bytes | None, bytes | None]:
    """Cut the key and the value so that the record fits; say so in ``header`` (which grows).

    The key keeps what the value leaves of the budget, and at least half of it when both are too big.
    """
    key_size, value_size = len(key or b""), len(value or b"")
    budget = record_budget(max_record_bytes) - sum(len(k) + len(v) + _HEADER_OVERHEAD for k, v in header)
    if key_size + value_size <= budget:
        return key, value
    budget = max(0, budget - 2 * (64 + 2 * _HEADER_OVERHEAD))  # room for the headers that say what was cut
    key_room = budget - min(value_size, budget // 2)
    if key is not None and key_size > key_room:
        key = key[:key_room]
        header += [("dlq.original_key_size", str(key_size).encode()), ("dlq.key_truncated", b"true")]
    value_room = budget - len(key or b"")
    if value is not None and value_size > value_room:
        value = value[:value_room]
        header += [("dlq.original_size", str(value_size).encode()), ("dlq.value_truncated", b"true")]
    return key, value
