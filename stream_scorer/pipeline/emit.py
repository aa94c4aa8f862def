"""Encode a scored batch into ``Prediction`` records (``schemas/prediction.avsc``), column by column.

Each record carries the event id and the input message's key, and the configured passthrough fields.

The encoder writes the Avro binary itself, for the one schema it was built for: the fields of
``prediction.avsc`` in order. :class:`PredictionEncoder` checks at construction that the parsed schema
still has exactly that shape and refuses to start otherwise, so a schema edit cannot silently produce
wrong bytes. Its tests compare it byte for byte with fastavro.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from stream_scorer.batch import Column, EventBatch
from stream_scorer.codec import columns as avro
from stream_scorer.codec.native import native_encoder
from stream_scorer.errors import SchemaError
from stream_scorer.features.freshness import STATUS_NAMES
from stream_scorer.model.artifact import LogisticModel
from stream_scorer.pipeline import ScoredBatch

# (name, Avro type) of each field, in order; the freshness item is (group: string, status: enum, age_ms: [null, long]).
_EXPECTED = [
    ("event_id", "string"),
    ("model_name", "string"),
    ("model_version", "string"),
    ("score", "double"),
    ("threshold", "double"),
    ("decision", "boolean"),
    ("imputed", "boolean"),
    ("feature_freshness", "array"),
    ("event_time", "long"),
    ("consumed_at", "long"),
    ("scored_at", "long"),
    ("reasons", "array"),
    ("shadow", "array"),
    ("key", "union"),
    ("passthrough", "map"),
]
_ITEM = [("group", "string"), ("status", "enum"), ("age_ms", "union")]
_SHADOW = [("model_name", "string"), ("model_version", "string"), ("score", "double"), ("decision", "boolean")]
_BOOL = (b"\x00", b"\x01")
_PASSTHROUGH_BRANCHES = ("null", "boolean", "long", "double", "string")  # the passthrough map's value union
_KEY_HEAD = [bytes((2, n << 1)) for n in range(64)]  # union branch 1 (bytes), then a length under 64


def _key(key: bytes) -> bytes:
    return b"\x02" + avro.string_bytes(key)


def union_values(column: Column) -> list[bytes]:
    """A column's values as branches of the passthrough union: null (0), boolean (1), long (2), double (3),
    string (4); enums as their symbols, timestamps as epoch milliseconds."""
    if column.kind == "boolean":
        encoded = [b"\x02" + _BOOL[v] for v in column.values.tolist()]
    elif column.kind in ("int", "timestamp"):
        encoded = [b"\x04" + v for v in avro.varints(column.values)]
    elif column.kind == "float":
        encoded = [b"\x06" + v for v in avro.doubles(column.values)]
    else:
        text = column.values.tolist() if column.kind == "string" else [column.symbols[c] for c in column.values]
        encoded = [b"\x08" + avro.string(t) for t in text]
    if column.present is None:
        return encoded
    return [v if p else b"\x00" for v, p in zip(encoded, column.present.tolist(), strict=True)]


def _type_name(avro_type: Any) -> str:
    if isinstance(avro_type, list):
        return "union"
    if isinstance(avro_type, dict):
        return str(avro_type["type"])
    return str(avro_type)


class PredictionEncoder:
    """Encodes scored batches; built once per (schema, model)."""

    def __init__(
        self,
        schema: Any,
        model: LogisticModel,
        challengers: Sequence[LogisticModel] = (),
        passthrough: Sequence[str] = (),
        frame: bytes = b"",
        native: bool | None = None,
    ) -> None:
        fields = schema["fields"]
        shape = [(f["name"], _type_name(f["type"])) for f in fields]
        item = fields[7]["type"]["items"] if len(fields) > 7 and isinstance(fields[7]["type"], dict) else {}
        item_shape = [(f["name"], _type_name(f["type"])) for f in item.get("fields", [])]
        symbols = item.get("fields", [{}, {}])[1].get("type", {}).get("symbols") if item_shape == _ITEM else None
        union = item.get("fields", [{}, {}, {}])[2].get("type") if item_shape == _ITEM else None
        shadow = fields[12]["type"]["items"] if shape == _EXPECTED else {}
        values = fields[14]["type"]["values"] if shape == _EXPECTED else None
        shadow_shape = [(f["name"], _type_name(f["type"])) for f in shadow.get("fields", [])]
        if (
            shape != _EXPECTED
            or shadow_shape != _SHADOW
            or item_shape != _ITEM
            or tuple(symbols or ()) != STATUS_NAMES
            or union != ["null", "long"]
            or values != list(_PASSTHROUGH_BRANCHES)
            or fields[13]["type"] != ["null", "bytes"]
        ):
            raise SchemaError("prediction.avsc no longer has the shape the prediction encoder writes; update emit.py")
        self._frame = frame  # the Confluent header (magic byte, schema id) of every record, or nothing
        self._head = avro.string(model.name) + avro.string(model.version)
        self._threshold_value = float(model.threshold)
        self._threshold = avro.doubles(np.array([model.threshold]))[0]
        self._status = [bytes((2 * i,)) for i in range(len(STATUS_NAMES))]  # enum index as a zigzag varint
        self._feature = [avro.string(name) for name in model.feature_names]
        self._challengers = [avro.string(c.name) + avro.string(c.version) for c in challengers]
        self._passthrough = [(path, avro.string(path)) for path in passthrough]
        # The native encoder (stream_scorer_native) where it is installed, unless told otherwise.
        self._native = native_encoder() if native is None or native else None
        if native and self._native is None:
            raise SchemaError("a native prediction encoder was asked for, but stream_scorer_native is not installed")

    @property
    def native(self) -> bool:
        """Whether the native extension encodes."""
        return self._native is not None

    def encode(self, scored: ScoredBatch) -> list[bytes]:
        """One Avro-encoded ``Prediction`` per event of the batch."""
        batch = scored.batch
        n = len(batch)
        if n == 0:
            return []
        if self._native is not None:
            return self._encode_native(scored, n)
        names = list(scored.freshness)
        # The freshness array: a block of len(names) items, then the end-of-array marker.
        group_parts: list[list[bytes]] = []
        for name in names:
            freshness = scored.freshness[name]
            label = avro.string(name)
            ages = freshness.age_ms
            present = ages >= 0
            encoded_ages = avro.varints(ages[present])
            age_parts: list[bytes] = [b"\x00"] * n  # union branch 0: null
            for row, encoded in zip(np.flatnonzero(present).tolist(), encoded_ages, strict=True):
                age_parts[row] = b"\x02" + encoded  # union branch 1: long
            status = self._status
            group_parts.append(
                [label + status[s] + a for s, a in zip(freshness.status.tolist(), age_parts, strict=True)]
            )
        block = avro.varints(np.array([len(names)]))[0] if names else b""
        freshness_bytes = (
            [block + b"".join(parts) + b"\x00" for parts in zip(*group_parts, strict=True)] if names else [b"\x00"] * n
        )
        scores = avro.doubles(scored.scores)
        flags = [_BOOL[d] + _BOOL[i] for d, i in zip(scored.decisions.tolist(), scored.imputed.tolist(), strict=True)]
        times = avro.varints(
            np.column_stack(
                [batch.event_time_ms, batch.consumed_at_ms, np.full(n, scored.scored_at_ms, np.int64)]
            ).ravel()
        )
        reasons = self._reasons(scored, n)
        shadow = self._shadow(scored, n)
        keys = [b"\x00" if k is None else _KEY_HEAD[len(k)] + k if len(k) < 64 else _key(k) for k in batch.key]
        passthrough = self._passthrough_maps(batch, n)
        head, threshold, frame = self._head, self._threshold, self._frame
        return [
            b"".join(
                (
                    frame,
                    avro.string(event_id),
                    head,
                    scores[i],
                    threshold,
                    flags[i],
                    freshness_bytes[i],
                    times[3 * i],
                    times[3 * i + 1],
                    times[3 * i + 2],
                    reasons[i],
                    shadow[i],
                    keys[i],
                    passthrough[i],
                )
            )
            for i, event_id in enumerate(batch.event_id)
        ]

    def _encode_native(self, scored: ScoredBatch, n: int) -> list[bytes]:
        batch = scored.batch
        assert self._native is not None
        reasons = scored.reason_index if scored.reason_index.ndim == 2 else np.zeros((0, 0), np.int64)
        values = scored.reason_value if scored.reason_value.ndim == 2 else np.zeros((0, 0))
        encoded: list[bytes] = self._native(
            self._frame,
            batch.event_id,
            self._head,
            np.ascontiguousarray(scored.scores, np.float64),
            self._threshold_value,
            np.ascontiguousarray(scored.decisions, np.bool_),
            np.ascontiguousarray(scored.imputed, np.bool_),
            [
                (avro.string(name), np.ascontiguousarray(f.status, np.int8), np.ascontiguousarray(f.age_ms, np.int64))
                for name, f in scored.freshness.items()
            ],
            np.ascontiguousarray(batch.event_time_ms, np.int64),
            np.ascontiguousarray(batch.consumed_at_ms, np.int64),
            int(scored.scored_at_ms),
            np.ascontiguousarray(reasons, np.int64),
            np.ascontiguousarray(values, np.float64),
            self._feature,
            self._challengers,
            np.ascontiguousarray(scored.shadow_scores, np.float64),
            np.ascontiguousarray(scored.shadow_decisions, np.bool_),
            batch.key,
            self._passthrough_maps(batch, n) if self._passthrough else None,
        )
        return encoded

    def _reasons(self, scored: ScoredBatch, n: int) -> list[bytes]:
        """The reasons array of every row: a block of k (feature, contribution) records, then the end marker."""
        k = scored.reason_index.shape[1] if scored.reason_index.ndim == 2 else 0
        if k == 0 or scored.reason_index.shape[0] != n:
            return [b"\x00"] * n
        block = avro.varints(np.array([k]))[0]
        values = avro.doubles(scored.reason_value.ravel())
        feature = self._feature
        return [
            block + b"".join(feature[f] + values[row * k + j] for j, f in enumerate(index)) + b"\x00"
            for row, index in enumerate(scored.reason_index.tolist())
        ]

    def _passthrough_maps(self, batch: EventBatch, n: int) -> list[bytes]:
        """The passthrough map of every row: one block of (path, value) entries, then the end marker."""
        if not self._passthrough:
            return [b"\x00"] * n
        block = avro.varints(np.array([len(self._passthrough)]))[0]
        entries = [[name + v for v in union_values(batch.fields[path])] for path, name in self._passthrough]
        return [block + b"".join(row) + b"\x00" for row in zip(*entries, strict=True)]

    def _shadow(self, scored: ScoredBatch, n: int) -> list[bytes]:
        """The shadow array of every row: a block of (name, version, score, decision) per challenger, then the end."""
        heads = self._challengers
        if not heads or scored.shadow_scores.shape != (n, len(heads)):
            return [b"\x00"] * n
        m = len(heads)
        block = avro.varints(np.array([m]))[0]
        values = avro.doubles(scored.shadow_scores.ravel())  # row-major: challenger j of row i at i * m + j
        decisions = scored.shadow_decisions.ravel().tolist()
        columns = [
            [heads[j] + v + _BOOL[d] for v, d in zip(values[j::m], decisions[j::m], strict=True)] for j in range(m)
        ]
        if m == 1:
            return [block + item + b"\x00" for item in columns[0]]
        return [block + b"".join(items) + b"\x00" for items in zip(*columns, strict=True)]
