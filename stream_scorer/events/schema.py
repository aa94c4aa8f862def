"""The fields of an event schema that a configuration can name: leaves of the record, by dotted path (pure).

A leaf is a field of a primitive type, an enum, or a nullable union ``["null", T]`` of one; fields of
nested records are named by their path (``order.buyer.id``). Arrays, maps, fixed, bytes and other
unions are not leaves: the worker still decodes (and validates) them, but a configuration cannot read them.

>>> schema = {"type": "record", "name": "Click", "fields": [
...     {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
...     {"name": "user", "type": {"type": "record", "name": "User", "fields": [{"name": "id", "type": "long"}]}},
...     {"name": "ref", "type": ["null", "string"]}]}
>>> {path: (t.kind, t.nullable) for path, t in leaf_fields(schema).items()}
{'ts': ('timestamp', False), 'user.id': ('int', False), 'ref': ('string', True)}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stream_scorer.batch import ColumnKind
from stream_scorer.errors import SchemaError

_KINDS: Mapping[str, ColumnKind] = {
    "boolean": "boolean",
    "int": "int",
    "long": "int",
    "float": "float",
    "double": "float",
    "string": "string",
}
_TIME_UNITS = {  # raw units per millisecond (a local timestamp is read as if it were UTC, as training reads it)
    "timestamp-millis": 1,
    "timestamp-micros": 1000,
    "local-timestamp-millis": 1,
    "local-timestamp-micros": 1000,
}


@dataclass(frozen=True, slots=True)
class FieldType:
    """What a leaf field holds: its column kind, whether it may be null, its symbols (enums) and, for
    timestamps, how many raw units make a millisecond (1 for ``timestamp-millis``, 1000 for ``-micros``)."""

    kind: ColumnKind
    avro: str
    nullable: bool = False
    symbols: tuple[str, ...] = ()
    units_per_ms: int = 1

    @property
    def numeric(self) -> bool:
        """Whether a model may read the field as a number (booleans as 0/1, timestamps as epoch ms)."""
        return self.kind in ("boolean", "int", "float", "timestamp")


def leaf_fields(schema: Mapping[str, Any]) -> dict[str, FieldType]:
    """Every leaf of a record schema (its JSON, logical types kept), by dotted path, in schema order."""
    if not isinstance(schema, Mapping) or schema.get("type") != "record":
        raise SchemaError("an event schema must be an Avro record")
    out: dict[str, FieldType] = {}
    _walk(schema, "", out, {})
    return out


def _walk(record: Mapping[str, Any], prefix: str, out: dict[str, FieldType], named: dict[str, Any]) -> None:
    _remember(record, named)
    for field in record["fields"]:
        path = f"{prefix}{field['name']}"
        kind = _resolve(field["type"], named)
        if isinstance(kind, Mapping) and kind.get("type") == "record":
            _walk(kind, f"{path}.", out, named)
            continue
        leaf = _leaf(kind, named)
        if leaf is not None:
            out[path] = leaf


def _remember(schema: Any, named: dict[str, Any]) -> None:
    if isinstance(schema, Mapping) and "name" in schema and schema.get("type") in ("record", "enum", "fixed"):
        named[schema["name"]] = schema
        if "namespace" in schema:
            named[f"{schema['namespace']}.{schema['name']}"] = schema


def _resolve(schema: Any, named: dict[str, Any]) -> Any:
    if isinstance(schema, str) and schema in named:
        return named[schema]
    if isinstance(schema, Mapping) and schema.get("type") in _KINDS and "logicalType" not in schema:
        return schema["type"]
    _remember(schema, named)
    return schema


def _leaf(schema: Any, named: dict[str, Any]) -> FieldType | None:
    nullable = False
    if isinstance(schema, list):
        branches = [_resolve(s, named) for s in schema]
        others = [b for b in branches if b != "null"]
        if len(others) != 1 or len(branches) != 2:
            for branch in branches:
                _remember(branch, named)
            return None
        schema, nullable = others[0], True
    if isinstance(schema, str):
        return FieldType(_KINDS[schema], schema, nullable) if schema in _KINDS else None
    if not isinstance(schema, Mapping):
        return None
    _remember(schema, named)
    kind, logical = schema.get("type"), schema.get("logicalType")
    if logical in _TIME_UNITS and kind == "long":
        return FieldType("timestamp", f"long ({logical})", nullable, units_per_ms=_TIME_UNITS[logical])
    if kind == "enum":
        return FieldType("enum", "enum", nullable, tuple(schema["symbols"]))
    if isinstance(kind, str) and kind in _KINDS:  # another logical type (time-micros, uuid, date) keeps its name
        return FieldType(_KINDS[kind], f"{kind} ({logical})" if logical else kind, nullable)
    return None
