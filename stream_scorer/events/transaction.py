"""The Transaction event contract, in one place: its fields and the kinds a model may read them as, its
entities, the rules Avro cannot express (validation), and records turned into a batch's columns.

``schemas/transaction.avsc`` is the schema; :class:`~stream_scorer.batch.EventBatch` holds its columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from stream_scorer.batch import EventBatch, KafkaMessage
from stream_scorer.errors import InvalidEventError, ModelArtifactError

ENTITIES: Final = ("card", "merchant", "device")  # feature groups are keyed by one of these

# Event fields a model may read directly, with the kinds each may be read as: a number (a numeric spec
# entry), a category (one-hot or hashed), or both (the MCC code and card_present, a 0/1 flag).
EVENT_FIELDS: Final[dict[str, frozenset[str]]] = {
    "amount": frozenset({"numeric"}),
    "card_present": frozenset({"numeric", "string"}),
    "merchant_category_code": frozenset({"numeric", "string"}),
    **{
        name: frozenset({"string"})
        for name in (
            "currency",
            "country",
            "card_country",
            "channel",
            "entry_mode",
            "merchant_id",
            "card_id",
            "device_id",
        )
    },
}


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


def location(value: int | None) -> int:
    """A message's partition or offset, ``-1`` when it has none."""
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
        partition=np.fromiter((location(m.partition()) for m in messages), np.int32, n),
        offset=np.fromiter((location(m.offset()) for m in messages), np.int64, n),
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


def canonical_event_column(name: str, values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A training column as the worker sees the event field: the MCC as an integer, card_present as 0/1.

    Training files may hold these as strings ("0742", "true"); the worker reads them as numbers, so the
    categories learned from the file must be the worker's. Other columns pass through unchanged.

    >>> canonical_event_column("event.merchant_category_code", np.array(["0742", "5411"], dtype=object)).tolist()
    [742.0, 5411.0]
    >>> canonical_event_column("event.card_present", np.array(["true", "0", ""], dtype=object)).tolist()
    [1.0, 0.0, nan]
    """
    if values.dtype.kind not in "OUS" or name not in ("event.merchant_category_code", "event.card_present"):
        return values
    flags = {"true": 1.0, "false": 0.0, "1": 1.0, "0": 0.0, "": np.nan}
    try:
        if name == "event.card_present":
            return np.array([flags[str(v).strip().lower()] for v in values], dtype=np.float64)
        return np.array([float(int(v)) if str(v).strip() else np.nan for v in values], dtype=np.float64)
    except (KeyError, ValueError) as exc:
        raise ModelArtifactError(f"{name} holds a value the event field cannot: {exc}") from exc
