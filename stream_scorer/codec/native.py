"""The native decoder: message values to columns in the ``stream_scorer_native`` extension (built from
``native/`` with arrow-avro), with the same rules and rejection reasons as the Python reader.

The extension is optional: without it (no Rust toolchain when the package was installed) the worker
decodes with :mod:`stream_scorer.codec.strict` and fastavro, and says so at startup and in a metric.
"""

from __future__ import annotations

import importlib
import json
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import fastavro
import numpy as np
import numpy.typing as npt

from stream_scorer.codec.schemas import Schemas, strip_logical_types
from stream_scorer.errors import SchemaError


def _load() -> ModuleType | None:
    try:
        return importlib.import_module("stream_scorer_native")
    except ImportError:  # not built: the Python reader is used
        return None


_native = _load()

DecoderChoice = Literal["auto", "native", "python"]


class NativeDecodeFailed(RuntimeError):
    """arrow-avro failed on bodies the strict check had accepted (an arrow-avro defect): decode the batch
    with the Python reader instead."""


def native_available() -> bool:
    """Whether the native extension is installed."""
    return _native is not None


def native_encoder() -> Callable[..., list[bytes]] | None:
    """The extension's prediction encoder (see :mod:`stream_scorer.pipeline.emit`), or None without it."""
    return None if _native is None else typing.cast(Callable[..., list[bytes]], _native.encode_predictions)


def native_function(name: str) -> Callable[..., Any] | None:
    """One of the extension's batch helpers (``pack_commands``, ``unpack_records``: the per-key work of a
    feature read, see :mod:`stream_scorer.features.nodes` and :mod:`stream_scorer.features.layout`), or None
    without the extension."""
    return None if _native is None else typing.cast(Callable[..., Any], getattr(_native, name))


def use_native(choice: DecoderChoice) -> bool:
    """Whether ``events.decoder`` selects the native decoder; ``native`` without the extension raises."""
    if choice == "native" and _native is None:
        raise SchemaError("events.decoder = 'native' but the stream_scorer_native extension is not installed")
    return choice != "python" and _native is not None


_PRIMITIVES = frozenset(("null", "boolean", "int", "long", "float", "double", "bytes", "string"))


def qualified(schema: Any, namespace: str = "") -> Any:
    """A schema's JSON with every name written in full and no ``namespace`` keys, as the writer schemas'
    canonical forms are (arrow-avro matches named types by the names written).

    >>> qualified({"type": "record", "name": "R", "namespace": "a", "fields": [
    ...     {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["X"]}}, {"name": "f", "type": "E"}]})
    {'type': 'record', 'name': 'a.R', 'fields': [{'name': 'e', 'type': {'type': 'enum', 'name': 'a.E', \
'symbols': ['X']}}, {'name': 'f', 'type': 'a.E'}]}
    """
    if isinstance(schema, str):
        named = schema not in _PRIMITIVES and "." not in schema and namespace
        return f"{namespace}.{schema}" if named else schema
    if isinstance(schema, list):
        return [qualified(branch, namespace) for branch in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: v for k, v in schema.items() if k != "namespace"}
    if schema.get("type") in ("record", "error", "enum", "fixed") and "name" in schema:
        name = schema["name"]
        space = schema.get("namespace", namespace) if "." not in name else ""
        out["name"] = f"{space}.{name}" if space else name
        namespace = out["name"].rsplit(".", 1)[0] if "." in out["name"] else ""
    if "fields" in schema:
        out["fields"] = [{**f, "type": qualified(f["type"], namespace)} for f in schema["fields"]]
    for key in ("items", "values"):
        if key in schema:
            out[key] = qualified(schema[key], namespace)
    if isinstance(schema.get("type"), (dict, list)):
        out["type"] = qualified(schema["type"], namespace)
    return out


@dataclass(frozen=True, slots=True)
class NativeResult:
    """One batch decoded natively: the positions of the decoded messages and their schema ids (-1: none),
    the rejected ``(position, reason, detail, schema id)``, the ``(position, schema id)`` of ids the decoder
    has not been given, and per path its values and presence."""

    positions: npt.NDArray[np.int64]
    schema_ids: npt.NDArray[np.int64]
    rejected: list[tuple[int, str, str, int | None]]
    unknown: list[tuple[int, int]]
    columns: dict[str, tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]]


class NativeDecoder:
    """The extension's decoder for one reader schema, framing and set of paths; writer schemas are added
    by Confluent id with :meth:`add_writer`."""

    def __init__(self, schemas: Schemas, paths: Sequence[str], *, confluent: bool, max_message_bytes: int) -> None:
        if _native is None:
            raise SchemaError("the stream_scorer_native extension is not installed")
        self.paths = tuple(paths)
        self._failed: type[Exception] = _native.DecodeFailed
        reader_json = json.dumps(qualified(strip_logical_types(schemas.events_json)))
        canonical = fastavro.schema.to_parsing_canonical_form(schemas.events)
        try:
            self._decoder = _native.Decoder(reader_json, canonical, list(self.paths), confluent, max_message_bytes)
        except ValueError as exc:
            raise SchemaError(f"the native decoder cannot read the event schema: {exc}") from exc

    def knows(self, schema_id: int) -> bool:
        """Whether the writer schema of ``schema_id`` was added."""
        return bool(self._decoder.knows(schema_id))

    def add_writer(self, schema_id: int, writer: Any) -> None:
        """Add the writer schema (parsed by fastavro) of a Confluent schema id."""
        try:
            self._decoder.add_writer(schema_id, fastavro.schema.to_parsing_canonical_form(writer))
        except ValueError as exc:
            raise SchemaError(f"the native decoder cannot read writer schema id {schema_id}: {exc}") from exc

    def decode(self, values: list[bytes | None]) -> NativeResult:
        """Decode message values; bad ones are returned as rejected, never raised. Raise
        :class:`NativeDecodeFailed` when arrow-avro fails on good ones."""
        try:
            positions, schema_ids, rejected, unknown, columns = self._decoder.decode(values)
        except self._failed as exc:
            raise NativeDecodeFailed(str(exc)) from exc
        return NativeResult(positions, schema_ids, rejected, unknown, dict(zip(self.paths, columns, strict=True)))
