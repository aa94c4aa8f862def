"""Dead-letter records: the original bytes of a rejected message, with headers that say why (pure).

Headers (all UTF-8 strings):

=========================  ===========================================================
``dlq.error.class``        the reason code, e.g. ``malformed_avro`` (a fixed set)
``dlq.error.reason``       a short description; never contains a sensitive field's value
``dlq.original.topic``     where the message was consumed from
``dlq.original.partition``
``dlq.original.offset``
``dlq.original.timestamp`` the original message timestamp (epoch ms)
``dlq.schema.id``          the Confluent schema id, when the message had one
=========================  ===========================================================

The key and the value are the original ones, byte for byte, so a fixed message can be replayed as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stream_scorer.codec import InvalidMessage


@dataclass(frozen=True, slots=True)
class DeadLetters:
    """Keys, values and headers of the dead-letter records of one batch, in input order."""

    keys: list[bytes | None]
    values: list[bytes]
    headers: list[list[tuple[str, bytes]]]


def dead_letters(invalid: Sequence[InvalidMessage]) -> DeadLetters:
    """Dead-letter records for the rejected messages of a batch."""
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
        keys.append(message.key())
        values.append(message.value() or b"")
        headers.append(header)
    return DeadLetters(keys, values, headers)
