"""The Avro schemas, parsed once: the configured event schema (and its writer schemas by Confluent id), and
the prediction and label schemas of ``schemas/``; plain Avro and Confluent framing of single records.

Timestamps stay integers (epoch milliseconds): the ``timestamp-millis`` logical type is not turned
into ``datetime`` objects, which would cost time on the hot path and change nothing on the wire.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro

from stream_scorer.errors import SchemaError

CONFLUENT_MAGIC = 0
CONFLUENT_HEADER = struct.Struct(">bI")


@dataclass(frozen=True, slots=True)
class Schemas:
    """The parsed contract: the events' reader schema (parsed, and its JSON with logical types), the
    prediction and label schemas, and writer schemas by Confluent id."""

    events: Any
    events_json: Mapping[str, Any]
    prediction: Any
    label: Any
    writers_by_id: Mapping[int, Any]
    label_json: Mapping[str, Any] = field(default_factory=dict)


def load_schemas(
    schemas_dir: Path,
    events: Path | None = None,
    schema_ids: Mapping[str, str] | None = None,
    label: Path | None = None,
) -> Schemas:
    """Parse the event schema (``events``), ``prediction.avsc`` and ``label.avsc`` (or ``label``) of
    ``schemas_dir``, and the writer schemas by id (paths)."""
    writers = {int(k): _parse(Path(v))[0] for k, v in (schema_ids or {}).items()}
    parsed, raw = _parse(events) if events is not None else (None, {})
    label_parsed, label_raw = _parse(label or schemas_dir / "label.avsc")
    return Schemas(
        events=parsed,
        events_json=raw,
        prediction=_parse(schemas_dir / "prediction.avsc")[0],
        label=label_parsed,
        writers_by_id=writers,
        label_json=label_raw,
    )


def _parse(path: Path) -> tuple[Any, dict[str, Any]]:
    try:
        raw = json.loads(path.read_text())
        return fastavro.parse_schema(strip_logical_types(raw)), raw
    except FileNotFoundError as exc:
        raise SchemaError(f"schema file {path} does not exist") from exc
    except (ValueError, fastavro.schema.SchemaParseException) as exc:
        raise SchemaError(f"schema file {path} does not parse: {exc}") from exc


def strip_logical_types(schema: Any) -> Any:
    """A schema's JSON without its logical types: timestamps read as the integers they are."""
    if isinstance(schema, dict):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [strip_logical_types(s) for s in schema]
    return schema


def encode(schema: Any, record: Mapping[str, Any]) -> bytes:
    """Plain Avro binary of one record."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema, record)
    return out.getvalue()


def decode(schema: Any, value: bytes) -> Any:
    """Plain Avro binary of one record back to a dict (for consumers of predictions and labels)."""
    return fastavro.schemaless_reader(io.BytesIO(value), schema, schema)


def confluent_frame(schema_id: int, body: bytes) -> bytes:
    """Wrap an Avro body in the Confluent wire format: magic byte 0 and the 4-byte schema id.

    >>> confluent_frame(7, b"x")
    b'\\x00\\x00\\x00\\x00\\x07x'
    """
    return CONFLUENT_HEADER.pack(CONFLUENT_MAGIC, schema_id) + body
