"""Read a tabular dataset file (CSV, Avro container or Parquet) into named columns, and take labels from it.

Numeric columns are float64 with NaN for missing; string columns are object arrays of ``str`` with ``""``
for missing (the feature spec treats ``""`` as missing too). In a CSV a column is numeric when every
non-empty value parses as a float, so a column that is empty throughout is numeric (all NaN), and only an
empty field is missing: ``NA`` or ``null`` make the column a string column. Avro and Parquet columns take
their kind from the schema, and fields of nested records are dotted columns (``event.total``); booleans become
0/1 and timestamps epoch milliseconds. Parquet needs the
optional ``pyarrow`` (``pip install stream-scorer[parquet]``).
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

import fastavro
import numpy as np
import numpy.typing as npt

from stream_scorer.batch import Float64Array
from stream_scorer.errors import ModelArtifactError, TrainingError
from stream_scorer.events.schema import FieldType
from stream_scorer.training.featurespec import as_categories

TableFormat = Literal["auto", "csv", "avro", "parquet"]
_SUFFIXES: dict[str, TableFormat] = {".csv": "csv", ".avro": "avro", ".parquet": "parquet"}
_AVRO_NUMERIC = frozenset({"boolean", "int", "long", "float", "double"})
_AVRO_STRING = frozenset({"string", "enum"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Table:
    """Columns of a dataset file by name, all ``rows`` long; ``fingerprint`` is the sha256 of the file bytes."""

    columns: dict[str, npt.NDArray[Any]]
    rows: int
    fingerprint: str
    source: str
    # A CSV's text of the columns read as numbers: a string field that looks numeric ("02134") keeps it.
    text: dict[str, npt.NDArray[Any]] = field(default_factory=dict)

    def kind(self, column: str) -> Literal["numeric", "string"]:
        """Whether ``column`` holds numbers (float64) or strings."""
        return "numeric" if self.columns[column].dtype.kind == "f" else "string"


def read_table(path: Path, fmt: TableFormat = "auto") -> Table:
    """Read ``path``; raise :class:`TrainingError` if it is missing, empty, ragged, not UTF-8 or unreadable."""
    if fmt == "auto":
        if path.suffix.lower() not in _SUFFIXES:
            raise TrainingError(
                f"dataset {path}: cannot tell the format from {path.suffix!r}; use .csv, .avro or .parquet"
            )
        fmt = _SUFFIXES[path.suffix.lower()]
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise TrainingError(f"dataset {path} does not exist") from exc
    except OSError as exc:
        raise TrainingError(f"dataset {path} cannot be read: {exc.strerror}") from exc
    text: dict[str, npt.NDArray[Any]] = {}
    if fmt == "csv":
        columns = _csv_columns(path, raw, text)
    elif fmt == "avro":
        columns = _avro_columns(path, raw)
    elif fmt == "parquet":
        columns = _parquet_columns(path, raw)
    else:
        raise TrainingError(f"dataset format must be auto, csv, avro or parquet, not {fmt!r}")
    rows = len(next(iter(columns.values()))) if columns else 0
    if rows == 0:
        raise TrainingError(f"dataset {path} is empty: it needs at least one row")
    return Table(columns, rows, hashlib.sha256(raw).hexdigest(), str(path), text)


def _csv_columns(path: Path, raw: bytes, texts: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
    try:
        text = raw.decode("utf-8-sig")  # tolerate the byte-order mark spreadsheets write
    except UnicodeDecodeError as exc:
        raise TrainingError(f"dataset {path} is not UTF-8 text (byte {exc.start})") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise TrainingError(f"dataset {path} is empty: it needs a header and at least one row")
        if "" in header or len(set(header)) < len(header):
            raise TrainingError(f"dataset {path}: header names must be non-empty and distinct: {header}")
        body: list[list[str]] = []
        for row in reader:
            if not row:
                continue  # blank line
            if len(row) != len(header):
                raise TrainingError(
                    f"dataset {path}: line {reader.line_num} has {len(row)} values, the header {len(header)}"
                )
            body.append(row)
    except csv.Error as exc:
        raise TrainingError(f"dataset {path}: line {reader.line_num} is not valid CSV: {exc}") from exc
    columns = list(zip(*body, strict=True)) if body else [() for _ in header]
    out = {name: _csv_column(values) for name, values in zip(header, columns, strict=True)}
    numeric = [(n, v) for n, v in zip(header, columns, strict=True) if out[n].dtype.kind == "f"]
    texts.update((n, np.array(v, dtype=object)) for n, v in numeric)
    return out


def _csv_column(values: tuple[str, ...]) -> npt.NDArray[Any]:
    try:
        return np.array([v if v.strip() else "nan" for v in values], dtype=np.float64)
    except ValueError:
        return np.array(values, dtype=object)


def _avro_columns(path: Path, raw: bytes) -> dict[str, npt.NDArray[Any]]:
    try:
        reader = fastavro.reader(io.BytesIO(raw))
        schema = reader.writer_schema
        if not isinstance(schema, dict) or schema.get("type") != "record":
            raise TrainingError(f"dataset {path}: the Avro schema must be a record, not {schema}")
        kinds = _avro_fields(path, schema["fields"], ())
        records = cast(list[dict[str, Any]], list(reader))
    except TrainingError:
        raise
    except Exception as exc:  # fastavro raises ValueError, EOFError, struct.error ... on a corrupt file
        raise TrainingError(f"dataset {path} is not a readable Avro container file: {exc}") from exc
    return {".".join(at): _avro_column(kind, (_dig(r, at) for r in records)) for at, kind in kinds.items()}


def _avro_fields(
    path: Path, fields: list[dict[str, Any]], prefix: tuple[str, ...], named: dict[str, Any] | None = None
) -> dict[tuple[str, ...], str]:
    """Column kinds by field path. A nested (non-null) record becomes dotted columns: record ``event`` with a
    field ``total`` is the column ``event.total``, which is how the model names its inputs. A type given
    by name (an enum used twice) reads as the type it names."""
    named = {} if named is None else named
    kinds: dict[tuple[str, ...], str] = {}
    for f in fields:
        t = _named(f["type"], named)
        if isinstance(t, dict) and t.get("type") == "record":
            kinds.update(_avro_fields(path, t["fields"], (*prefix, f["name"]), named))
        else:
            kinds[(*prefix, f["name"])] = _avro_kind(path, {**f, "type": t}, named)
    return kinds


def _named(schema: Any, named: dict[str, Any]) -> Any:
    """``schema`` with a reference by name resolved; a named type met here is remembered."""
    if isinstance(schema, list):
        return [_named(s, named) for s in schema]
    if isinstance(schema, str):
        return named.get(schema, schema)
    if isinstance(schema, dict) and schema.get("type") in ("record", "enum", "fixed") and "name" in schema:
        named[schema["name"]] = schema
        named[schema["name"].rsplit(".", 1)[-1]] = schema
        if "namespace" in schema:
            named[f"{schema['namespace']}.{schema['name']}"] = schema
    return schema


def _dig(record: dict[str, Any], at: tuple[str, ...]) -> Any:
    value: Any = record
    for name in at:
        value = value[name]
    return value


def _avro_kind(path: Path, field: dict[str, Any], named: dict[str, Any]) -> str:
    types = field["type"] if isinstance(field["type"], list) else [field["type"]]
    types = [_named(t, named) for t in types if t != "null"]
    if len(types) != 1:
        raise TrainingError(
            f"dataset {path}: field {field['name']!r} is a union of {types}; only [null, T] is supported"
        )
    t = types[0]
    name = t if isinstance(t, str) else t.get("type")
    logical = None if isinstance(t, str) else t.get("logicalType")
    if logical in ("timestamp-millis", "timestamp-micros", "local-timestamp-millis", "local-timestamp-micros"):
        return "timestamp"
    if logical is None and name in _AVRO_NUMERIC:
        return "numeric"
    if logical in (None, "uuid") and name in _AVRO_STRING:
        return "string"
    what = f"{name} ({logical})" if logical else name
    raise TrainingError(
        f"dataset {path}: field {field['name']!r} is of type {what}; only numbers, booleans, timestamps, "
        "strings and enums (or their nullable unions) are supported, not nested records, arrays or maps"
    )


def _avro_column(kind: str, values: Iterator[Any]) -> npt.NDArray[Any]:
    if kind == "string":
        return np.array(["" if v is None else str(v) for v in values], dtype=object)  # str: a uuid reads as UUID
    if kind == "timestamp":
        # fastavro hands back datetimes; the trainer wants epoch milliseconds (naive ones are taken as UTC).
        values = (None if v is None else _epoch_ms(v) for v in values)
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _epoch_ms(value: datetime) -> float:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return (aware - _EPOCH).total_seconds() * 1000.0


def _parquet_columns(path: Path, raw: bytes) -> dict[str, npt.NDArray[Any]]:
    try:
        pa = importlib.import_module("pyarrow")
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError as exc:
        raise TrainingError(
            f"dataset {path}: reading Parquet needs pyarrow; install stream-scorer[parquet] (or use CSV or Avro)"
        ) from exc
    try:
        table = pq.read_table(pa.BufferReader(raw))
        while any(pa.types.is_struct(f.type) for f in table.schema):  # nested records: dotted columns, as in Avro
            table = table.flatten()
    except (pa.ArrowException, OSError) as exc:
        raise TrainingError(f"dataset {path} is not a readable Parquet file: {exc}") from exc
    columns: dict[str, npt.NDArray[Any]] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        t = column.type
        if pa.types.is_timestamp(t):
            column = column.cast(pa.timestamp("ms", tz=t.tz), safe=False).cast(pa.int64())  # micros: floored
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(t):
            values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
            columns[name] = np.asarray(values, dtype=np.float64)  # nulls come back as NaN
        elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
            columns[name] = np.array(["" if v is None else str(v) for v in column.to_pylist()], dtype=object)
        else:
            raise TrainingError(
                f"dataset {path}: column {name!r} is of type {t}; "
                "only numbers, booleans, timestamps and strings are supported"
            )
    return columns


def labels_from(table: Table, column: str) -> Float64Array:
    """The 0/1 labels in ``column`` as float64; raise :class:`TrainingError` on a missing column, NaN or other values.

    >>> t = Table({"label": np.array([0.0, 1.0, 1.0])}, rows=3, fingerprint="", source="inline")
    >>> labels_from(t, "label").tolist()
    [0.0, 1.0, 1.0]
    """
    labels = _label_column(table, column)
    if labels.dtype.kind != "f":
        raise TrainingError(f"dataset {table.source}: label column {column!r} holds strings; binary labels are 0 or 1")
    if n_nan := int(np.isnan(labels).sum()):
        raise TrainingError(f"dataset {table.source}: {n_nan} labels in {column!r} are missing (NaN)")
    if (bad := np.isin(labels, (0.0, 1.0), invert=True)).any():
        others = np.unique(labels[bad])[:5].tolist()
        raise TrainingError(f"dataset {table.source}: labels in {column!r} must be 0 or 1; found also {others}")
    return np.array(labels, dtype=np.float64)


def class_labels_from(table: Table, column: str) -> tuple[tuple[str, ...], npt.NDArray[np.int64]]:
    """The sorted class names in ``column`` (numbers as decimal strings) and each row's class index.

    Raise :class:`TrainingError` on a missing column or a missing (empty or NaN) label.

    >>> t = Table({"y": np.array(["cat", "dog", "cat"], dtype=object)}, rows=3, fingerprint="", source="inline")
    >>> class_labels_from(t, "y")
    (('cat', 'dog'), array([0, 1, 0]))
    """
    values = _label_column(table, column)
    missing = np.isnan(values) if values.dtype.kind == "f" else values == ""
    if n_missing := int(missing.sum()):
        raise TrainingError(f"dataset {table.source}: {n_missing} labels in {column!r} are missing (empty or NaN)")
    # Numbers sort as numbers (2 before 10), then are named by their decimal strings.
    classes, codes = np.unique(values if values.dtype.kind == "f" else values.astype(str), return_inverse=True)
    return tuple(str(c) for c in as_categories(classes).tolist()), codes.reshape(-1).astype(np.int64)


def _label_column(table: Table, column: str) -> npt.NDArray[Any]:
    if column not in table.columns:
        raise TrainingError(f"dataset {table.source} has no label column {column!r}; columns: {sorted(table.columns)}")
    return table.columns[column]


def input_columns(table: Table, names: Sequence[str]) -> dict[str, npt.NDArray[Any]]:
    """The dataset columns a spec reads."""
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise TrainingError(f"dataset {table.source} lacks the columns {missing}; it has {sorted(table.columns)}")
    return {n: table.columns[n] for n in names}


def with_event_fields(table: Table, event_fields: Mapping[str, FieldType]) -> Table:
    """The table with its ``event.<path>`` columns read as the worker reads those event fields (a boolean or
    integer field written as text, "true" or "0742", becomes a number); raise :class:`TrainingError` when a
    value cannot be one."""
    columns = dict(table.columns)
    try:
        for name, values in table.columns.items():
            field = event_fields.get(name.removeprefix("event.")) if name.startswith("event.") else None
            if field is not None and field.kind in ("string", "enum") and name in table.text:
                columns[name] = np.array([v.strip() and v for v in table.text[name]], dtype=object)  # text stays text
            else:
                columns[name] = canonical_column(name, values, field)
    except ModelArtifactError as exc:
        raise TrainingError(f"dataset {table.source}: {exc}") from exc
    return Table(columns, table.rows, table.fingerprint, table.source, table.text)


def canonical_column(name: str, values: npt.NDArray[Any], field: FieldType | None) -> npt.NDArray[Any]:
    """A training column as the worker sees its event field: booleans as 0/1 and integers as numbers, also
    when a file holds them as text. Other columns pass through unchanged.

    >>> canonical_column("event.code", np.array(["0742", ""], dtype=object), FieldType("int", "int")).tolist()
    [742.0, nan]
    >>> canonical_column("event.flag", np.array(["true", "0"], dtype=object), FieldType("boolean", "boolean")).tolist()
    [1.0, 0.0]
    """
    if field is None or values.dtype.kind not in "OUS" or field.kind not in ("boolean", "int", "timestamp"):
        return values
    flags = {"true": 1.0, "false": 0.0, "1": 1.0, "0": 0.0, "": np.nan}
    try:
        if field.kind == "boolean":
            return np.array([flags[str(v).strip().lower()] for v in values], dtype=np.float64)
        return np.array([float(int(v)) if str(v).strip() else np.nan for v in values], dtype=np.float64)
    except (KeyError, ValueError) as exc:
        raise ModelArtifactError(f"{name} holds a value its {field.avro} event field cannot: {exc}") from exc
