"""The columnar batch that flows between stages: one array (or list) per field, never an object per event."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Float64Array = npt.NDArray[np.float64]
Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
StrArray = npt.NDArray[np.str_]


class KafkaMessage(Protocol):
    """The part of ``confluent_kafka.Message`` that the stages read (tests pass small fakes)."""

    def value(self) -> bytes | None: ...
    def key(self) -> bytes | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def timestamp(self) -> tuple[int, int]: ...


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Decoded transaction events of one micro-batch, column by column, plus where each came from.

    String columns that stages only pass through (ids, keys) stay Python lists; columns that stages
    compute on are numpy arrays.
    """

    event_id: list[str]
    event_time_ms: Int64Array
    card_id: list[str]
    merchant_id: list[str]
    device_id: list[str]
    amount: Float64Array
    currency: StrArray
    merchant_category_code: npt.NDArray[np.int32]
    country: StrArray
    card_country: StrArray
    channel: StrArray
    entry_mode: StrArray
    card_present: BoolArray
    # Where each event came from: the input message's key, partition and offset.
    key: list[bytes | None]
    partition: npt.NDArray[np.int32]
    offset: Int64Array
    consumed_at_ms: Int64Array

    def __len__(self) -> int:
        return len(self.event_id)

    def entity_ids(self, entity: str) -> list[str]:
        """The id column of an entity type: ``card``, ``merchant`` or ``device``."""
        ids: list[str] = getattr(self, f"{entity}_id")
        return ids

    def take(self, index: npt.NDArray[np.intp]) -> EventBatch:
        """A new batch with the rows at ``index``, in that order."""
        columns: dict[str, Any] = {}
        for f in fields(self):
            column = getattr(self, f.name)
            columns[f.name] = column[index] if isinstance(column, np.ndarray) else [column[i] for i in index]
        return EventBatch(**columns)

    @staticmethod
    def empty() -> EventBatch:
        """A batch with no rows."""
        return EventBatch(
            event_id=[],
            event_time_ms=np.zeros(0, np.int64),
            card_id=[],
            merchant_id=[],
            device_id=[],
            amount=np.zeros(0),
            currency=np.zeros(0, "<U1"),
            merchant_category_code=np.zeros(0, np.int32),
            country=np.zeros(0, "<U1"),
            card_country=np.zeros(0, "<U1"),
            channel=np.zeros(0, "<U1"),
            entry_mode=np.zeros(0, "<U1"),
            card_present=np.zeros(0, bool),
            key=[],
            partition=np.zeros(0, np.int32),
            offset=np.zeros(0, np.int64),
            consumed_at_ms=np.zeros(0, np.int64),
        )
