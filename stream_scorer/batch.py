"""The columnar batch that flows between stages: one array (or list) per field, never an object per event."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

Float64Array = npt.NDArray[np.float64]
Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
StrArray = npt.NDArray[np.str_]

ColumnKind = Literal["boolean", "int", "float", "enum", "string", "timestamp"]


class KafkaMessage(Protocol):
    """The part of ``confluent_kafka.Message`` that the stages read (tests pass small fakes)."""

    def value(self) -> bytes | None: ...
    def key(self) -> bytes | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def timestamp(self) -> tuple[int, int]: ...


@dataclass(frozen=True, slots=True)
class Column:
    """One decoded event field, typed by its Avro schema.

    ``values`` is a numpy array: bool (``boolean``), int64 (``int``, ``long``), float64 (``float``,
    ``double``), int64 epoch milliseconds (``timestamp``, micros read as milliseconds), int32 codes into
    ``symbols`` (``enum``) or str (``string``). Where the field is a nullable union, ``present`` is False
    on the rows that hold null (their value is 0, or ``""`` for strings); it is None for a required field.
    """

    kind: ColumnKind
    values: npt.NDArray[Any]
    present: BoolArray | None = None
    symbols: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.values)

    def take(self, index: npt.NDArray[np.intp]) -> Column:
        """The rows at ``index``, in that order."""
        return replace(self, values=self.values[index], present=None if self.present is None else self.present[index])


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Decoded events of one micro-batch, column by column, plus where each came from.

    ``fields`` holds the event fields that the configuration and the served models read, by dotted path
    (``order.total``); ``entity_keys`` each configured entity's key of every row, as text (the feature
    store's key). Lists hold what stages only pass through; numpy arrays what they compute on.
    """

    event_id: list[str]
    event_time_ms: Int64Array
    entity_keys: dict[str, list[str]]
    fields: dict[str, Column]
    # Where each event came from: the input message's key, partition and offset.
    key: list[bytes | None]
    partition: npt.NDArray[np.int32]
    offset: Int64Array
    consumed_at_ms: Int64Array

    def __len__(self) -> int:
        return len(self.event_id)

    def take(self, index: npt.NDArray[np.intp]) -> EventBatch:
        """A new batch with the rows at ``index``, in that order."""
        rows = index.tolist()
        return EventBatch(
            event_id=[self.event_id[i] for i in rows],
            event_time_ms=self.event_time_ms[index],
            entity_keys={name: [keys[i] for i in rows] for name, keys in self.entity_keys.items()},
            fields={path: column.take(index) for path, column in self.fields.items()},
            key=[self.key[i] for i in rows],
            partition=self.partition[index],
            offset=self.offset[index],
            consumed_at_ms=self.consumed_at_ms[index],
        )

    @staticmethod
    def empty() -> EventBatch:
        """A batch with no rows."""
        return EventBatch(
            event_id=[],
            event_time_ms=np.zeros(0, np.int64),
            entity_keys={},
            fields={},
            key=[],
            partition=np.zeros(0, np.int32),
            offset=np.zeros(0, np.int64),
            consumed_at_ms=np.zeros(0, np.int64),
        )
