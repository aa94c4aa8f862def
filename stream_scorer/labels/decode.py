"""Label records from the labels topic: decoded by the label schema, with configurable field names."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import fastavro

from stream_scorer.batch import KafkaMessage
from stream_scorer.codec import InvalidMessage
from stream_scorer.codec.schemas import CONFLUENT_HEADER, CONFLUENT_MAGIC
from stream_scorer.errors import InvalidEventError
from stream_scorer.labels.join import Label


@dataclass(frozen=True, slots=True)
class LabelFields:
    """The names of a label record's event id, 0/1 label and label time (epoch ms) fields."""

    event_id: str = "event_id"
    label: str = "label"
    label_time: str = "label_time"
    time_units_per_ms: int = 1  # 1000 when the label time is timestamp-micros
    confluent: bool = False  # the values are in the Confluent framing (magic byte, schema id, then the body)


LABEL_FIELDS = LabelFields()  # the names in schemas/label.avsc


def decode_labels(
    schema: Any, messages: Sequence[KafkaMessage], names: LabelFields = LABEL_FIELDS
) -> tuple[list[Label], list[InvalidMessage]]:
    """Decode label records; a bad one becomes an :class:`InvalidMessage` (for the dead-letter topic)."""
    labels: list[Label] = []
    invalid: list[InvalidMessage] = []
    for message in messages:
        topic, partition, offset = message.topic() or "", message.partition() or 0, message.offset() or 0
        value = message.value() or b""
        if names.confluent:
            if len(value) < CONFLUENT_HEADER.size or value[0] != CONFLUENT_MAGIC:
                error = InvalidEventError(
                    "bad_magic_byte", "not a Confluent-framed label", topic=topic, partition=partition, offset=offset
                )
                invalid.append(InvalidMessage(message, error))
                continue
            value = value[CONFLUENT_HEADER.size :]
        try:
            body = io.BytesIO(value)
            record: dict[str, Any] = fastavro.schemaless_reader(body, schema, schema)  # type: ignore[assignment]
        except Exception as exc:  # fastavro raises many types on garbage
            detail = f"not a Label record ({type(exc).__name__})"
            error = InvalidEventError("malformed_avro", detail, topic=topic, partition=partition, offset=offset)
            invalid.append(InvalidMessage(message, error))
            continue
        if body.tell() != len(value):
            detail = "bytes left after the Label record"
            error = InvalidEventError("trailing_bytes", detail, topic=topic, partition=partition, offset=offset)
            invalid.append(InvalidMessage(message, error))
            continue
        event_id, label, at = record[names.event_id], record[names.label], record[names.label_time]
        if event_id is None or event_id == "" or label not in (0, 1) or not isinstance(at, int):
            detail = f"{names.label} must be 0 or 1, {names.event_id} non-empty and {names.label_time} set"
            error = InvalidEventError("invalid_label", detail, topic=topic, partition=partition, offset=offset)
            invalid.append(InvalidMessage(message, error))
            continue
        source = f"{topic}/{partition}/{offset}"
        labels.append(Label(str(event_id), int(label), at // names.time_units_per_ms, source))
    return labels, invalid
