"""Decoded records to typed columns, by schema; the contract's rules checked column by column (pure).

Nothing here is written for one schema: the field types (:mod:`stream_scorer.events.schema`) say how each
path becomes a column, and the contract (:mod:`stream_scorer.events.contract`) which paths are the id, the
time and the entity keys.
"""

from __future__ import annotations

import math
import operator
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_scorer.batch import Column, EventBatch, Float64Array, KafkaMessage
from stream_scorer.errors import InvalidEventError
from stream_scorer.events.contract import EventContract, FieldRule
from stream_scorer.events.schema import FieldType

_DTYPES = {"boolean": np.bool_, "int": np.int64, "float": np.float64, "timestamp": np.int64, "enum": np.int32}


def getter(path: str) -> Callable[[Mapping[str, Any]], Any]:
    """A function reading the value at a dotted path of a decoded record.

    >>> getter("a.b")({"a": {"b": 3}})
    3
    """
    head, *rest = path.split(".")
    if not rest:
        return lambda record: record[head]

    def dig(record: Mapping[str, Any]) -> Any:
        value = record[head]
        for name in rest:
            value = value[name]
        return value

    return dig


def column_of(values: Sequence[Any], field: FieldType) -> Column:
    """The column of one field's decoded values (None where a nullable field is null).

    >>> from stream_scorer.events.schema import FieldType
    >>> c = column_of(["B", None], FieldType("enum", "enum", nullable=True, symbols=("A", "B")))
    >>> c.values.tolist(), c.present.tolist()
    ([1, 0], [True, False])
    """
    n = len(values)
    present = None
    if field.nullable:
        present = np.fromiter((v is not None for v in values), np.bool_, n)
        if not present.all():
            empty = "" if field.kind == "string" else field.symbols[0] if field.kind == "enum" else 0
            values = [empty if v is None else v for v in values]
    if field.kind == "string":  # object, not fixed-width: a long value costs its own length, NULs are kept
        return Column("string", np.array(values, dtype=object), present)
    if field.kind == "enum":
        code = {s: i for i, s in enumerate(field.symbols)}
        return Column("enum", np.fromiter((code[v] for v in values), np.int32, n), present, field.symbols)
    array: npt.NDArray[Any] = np.fromiter(values, _DTYPES[field.kind], n)
    if field.kind == "timestamp" and field.units_per_ms != 1:
        array //= field.units_per_ms
    return Column(field.kind, array, present)


def as_input(column: Column) -> npt.NDArray[Any]:
    """A column as a model input, the way training datasets hold it: numbers (booleans 0/1, timestamps epoch ms)
    as float64 with NaN for null; enums and strings as text with ``""`` for null."""
    if column.kind == "string":
        return column.values
    if column.kind == "enum":
        text = np.array(column.symbols, dtype=object)[column.values]
        return text if column.present is None else np.where(column.present, text, "")
    numbers: Float64Array = column.values.astype(np.float64)
    return numbers if column.present is None else np.where(column.present, numbers, np.nan)


def read_paths(contract: EventContract, paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """The paths a batch reads as text (the id and entity keys) and as typed columns (``paths``, and what the
    contract's rules, passthrough and time read)."""
    typed = dict.fromkeys([*paths, *(r.field for r in contract.rules), *contract.passthrough])
    if contract.time_field:
        typed[contract.time_field] = None
    return [contract.id_field, *(e.key for e in contract.entities)], list(typed)


def to_batch(
    records: Sequence[Mapping[str, Any]],
    messages: Sequence[KafkaMessage],
    contract: EventContract,
    paths: Sequence[str],
    consumed_at_ms: int,
) -> EventBatch:
    """The columns at ``paths`` (plus those the contract's rules, passthrough and time read) of decoded records,
    the id and entity keys as text, and where each record came from."""
    keys, typed = read_paths(contract, paths)
    raw = _values(records, list(dict.fromkeys([*keys, *typed])))
    fields = {p: column_of(raw[p], contract.fields[p]) for p in typed}
    text = {p: _text(raw[p], contract.fields[p]) for p in dict.fromkeys(keys)}
    return assemble(fields, text, messages, contract, consumed_at_ms)


def from_arrays(
    arrays: Mapping[str, tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]],
    messages: Sequence[KafkaMessage],
    contract: EventContract,
    paths: Sequence[str],
    consumed_at_ms: int,
) -> EventBatch:
    """:func:`to_batch` from decoded arrays (values with nulls as 0 or ``""``, and presence) instead of records."""
    keys, typed = read_paths(contract, paths)
    fields = {p: _column_of_array(*arrays[p], contract.fields[p]) for p in typed}
    text = {p: _text_of_array(*arrays[p], contract.fields[p]) for p in dict.fromkeys(keys)}
    return assemble(fields, text, messages, contract, consumed_at_ms)


def _column_of_array(values: npt.NDArray[Any], present: npt.NDArray[np.bool_], field: FieldType) -> Column:
    if field.kind == "timestamp" and field.units_per_ms != 1:
        values = values // field.units_per_ms
    return Column(field.kind, values, present if field.nullable else None, field.symbols)


def _text_of_array(values: npt.NDArray[Any], present: npt.NDArray[np.bool_], field: FieldType) -> list[str]:
    if field.kind == "string":
        return typing.cast(list[str], values.tolist())
    shown = [field.symbols[v] for v in values.tolist()] if field.kind == "enum" else map(str, values.tolist())
    return [s if p else "" for s, p in zip(shown, present.tolist(), strict=True)]


def assemble(
    fields: dict[str, Column],
    text: Mapping[str, list[str]],
    messages: Sequence[KafkaMessage],
    contract: EventContract,
    consumed_at_ms: int,
) -> EventBatch:
    """The batch of typed columns, the id and entity keys as text, and where each event came from."""
    n = len(messages)
    if contract.time_field is None:
        event_time = np.fromiter((m.timestamp()[1] for m in messages), np.int64, n)
    else:
        event_time = fields[contract.time_field].values.astype(np.int64, copy=False)
    return EventBatch(
        event_id=text[contract.id_field],
        event_time_ms=event_time,
        entity_keys={e.name: text[e.key] for e in contract.entities},
        fields=fields,
        key=[m.key() for m in messages],
        partition=_locations([m.partition() for m in messages], np.int32),
        offset=_locations([m.offset() for m in messages], np.int64),
        consumed_at_ms=np.full(n, consumed_at_ms, np.int64),
    )


def _values(records: Sequence[Mapping[str, Any]], paths: Sequence[str]) -> dict[str, list[Any]]:
    """The values at each path, one list per path; top-level fields are read together, in C."""
    top = [p for p in paths if "." not in p]
    out: dict[str, list[Any]] = {p: list(map(getter(p), records)) for p in paths if "." in p}
    if len(top) == 1:
        out[top[0]] = [r[top[0]] for r in records]
    elif top:
        rows = zip(*map(operator.itemgetter(*top), records), strict=True)
        out.update(zip(top, map(list, rows), strict=True))
        for p in top:
            out.setdefault(p, [])
    return out


def _text(values: list[Any], field: FieldType) -> list[str]:
    """Ids and keys as text ("" for null)."""
    if field.kind == "string" and not field.nullable:
        return values
    return ["" if v is None else str(v) for v in values]


def _locations(values: list[int | None], dtype: type[np.int32] | type[np.int64]) -> npt.NDArray[Any]:
    """Partitions or offsets as an array, ``-1`` where a message has none."""
    try:
        return np.array(values, dtype)
    except TypeError:  # a None among them
        return np.array([location(v) for v in values], dtype)


def location(value: int | None) -> int:
    """A message's partition or offset, ``-1`` when it has none."""
    return -1 if value is None else value


def check(batch: EventBatch, contract: EventContract, earliest_ms: int, latest_ms: int) -> dict[int, InvalidEventError]:
    """Row -> the first rule it breaks: id and entity keys present and not empty, the declared field rules,
    event time within [earliest_ms, latest_ms]. Values of sensitive fields never appear in the error."""
    problems: dict[int, InvalidEventError] = {}

    def flag(bad: npt.NDArray[np.bool_], reason: str, detail: Callable[[int], str]) -> None:
        for row in np.flatnonzero(bad).tolist():
            if row not in problems:
                problems[row] = InvalidEventError(reason, detail(row))

    ids = np.array([not v for v in batch.event_id], dtype=bool)
    flag(ids, "missing_event_id", _fixed(f"event id {contract.id_field} is null or empty"))
    for entity in contract.entities:
        empty = np.array([not v for v in batch.entity_keys[entity.name]], dtype=bool)
        flag(empty, "missing_entity_id", _fixed(f"entity {entity.name}: key {entity.key} is null or empty"))
    for rule in contract.rules:
        _check_rule(rule, batch.fields[rule.field], flag, rule.field in contract.sensitive)
    flag(
        batch.event_time_ms > latest_ms,
        "event_time_in_future",
        lambda row: f"event time is {(batch.event_time_ms[row] - latest_ms) / 1000:.0f} s past the allowed skew",
    )
    flag(
        batch.event_time_ms < earliest_ms,
        "event_time_too_old",
        lambda row: f"event time is {(earliest_ms - batch.event_time_ms[row]) / 1000:.0f} s before the allowed age",
    )
    return problems


def _fixed(text: str) -> Callable[[int], str]:
    return lambda _row: text


def _check_rule(
    rule: FieldRule,
    column: Column,
    flag: Callable[[npt.NDArray[np.bool_], str, Callable[[int], str]], None],
    sensitive: bool,
) -> None:
    path = rule.field
    present = column.present if column.present is not None else np.ones(len(column), bool)
    values = column.values

    def shown(row: int) -> str:
        return "***" if sensitive else repr(values[row].item())

    if rule.required:
        flag(~present, "missing_field", lambda _: f"{path} is null and required")
    if rule.finite and column.kind == "float":
        flag(present & ~np.isfinite(values), "not_finite", lambda row: f"{path}={shown(row)} must be finite")
    if rule.minimum is not None:
        low = rule.minimum
        below = present & ((values < low) | (np.isnan(values) if column.kind == "float" else False))
        flag(below, "below_minimum", lambda row: f"{path}={shown(row)} is below the minimum {_number(low)}")
    if rule.maximum is not None:
        high = rule.maximum
        above = present & ((values > high) | (np.isnan(values) if column.kind == "float" else False))
        flag(above, "above_maximum", lambda row: f"{path}={shown(row)} is above the maximum {_number(high)}")
    if rule.max_length is not None:
        limit = rule.max_length
        long = np.fromiter((len(v) > limit for v in values.tolist()), bool, len(values))
        flag(present & long, "too_long", lambda row: f"{path} has {len(values[row])} characters, over {limit}")


def _number(value: float) -> str:
    return str(int(value)) if math.isfinite(value) and float(value).is_integer() else str(value)


RULE_REASONS = (
    "missing_event_id",
    "missing_entity_id",
    "missing_field",
    "not_finite",
    "below_minimum",
    "above_maximum",
    "too_long",
    "event_time_in_future",
    "event_time_too_old",
)
