"""The native decoder against the Python one, on random schemas, records and mutated bytes (no servers).

For every batch both decoders must agree: the same messages accepted with the same columns, and the same
rejection reason for every other message. The Python reader is the reference (its own tests check it
against fastavro and the Avro specification).
"""

from __future__ import annotations

import io
import itertools
import math
from typing import Any

import fastavro
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_scorer.codec import EventDecoder, confluent_frame
from stream_scorer.codec.schemas import Schemas, strip_logical_types
from stream_scorer.events.contract import build_contract
from tests.support import FakeMessage
from tests.unit.conftest import native_or_skip

NOW = 1_700_000_000_000
PRIMITIVES = ["boolean", "int", "long", "float", "double", "string", "bytes"]
_names = itertools.count()


@st.composite
def field_types(draw: st.DrawFn, depth: int = 0) -> Any:
    """A random Avro field type: primitives, enums, fixed, nullable and wider unions, records, arrays, maps."""
    choice = draw(st.sampled_from(["primitive", "nullable", "enum", "fixed", "union", "record", "array", "map"]))
    if choice == "primitive" or depth > 1:
        return draw(st.sampled_from(PRIMITIVES))
    if choice == "nullable":
        branch = draw(st.sampled_from([*PRIMITIVES, "enum"]))
        if branch == "enum":
            branch = {"type": "enum", "name": f"E{next(_names)}", "symbols": ["A", "B", "C"]}
        return ["null", branch]
    if choice == "enum":
        symbols = draw(st.lists(st.sampled_from("ABCDEFG"), min_size=1, max_size=5, unique=True))
        return {"type": "enum", "name": f"E{next(_names)}", "symbols": symbols}
    if choice == "fixed":
        return {"type": "fixed", "name": f"F{next(_names)}", "size": draw(st.integers(0, 4))}
    if choice == "union":
        return ["null", "string", "long"]
    if choice == "record":
        fields = draw(st.lists(field_types(depth + 1), min_size=1, max_size=3))
        return {
            "type": "record",
            "name": f"N{next(_names)}",
            "fields": [{"name": f"n{i}", "type": t} for i, t in enumerate(fields)],
        }
    return {"type": choice, ("items" if choice == "array" else "values"): draw(field_types(depth + 1))}


def value_of(draw: st.DrawFn, schema: Any) -> Any:
    """A random value of a field type."""
    if isinstance(schema, list):
        return value_of(draw, draw(st.sampled_from(schema)))
    kind = schema if isinstance(schema, str) else schema["type"]
    simple: dict[str, st.SearchStrategy[Any]] = {
        "null": st.none(),
        "boolean": st.booleans(),
        "int": st.integers(-(2**31), 2**31 - 1),
        "long": st.integers(-(2**63), 2**63 - 1),
        "float": st.floats(width=32, allow_nan=False),
        "double": st.floats(allow_nan=True),
        "string": st.text(max_size=8),
        "bytes": st.binary(max_size=8),
    }
    if kind in simple:
        return draw(simple[kind])
    if kind == "enum":
        return draw(st.sampled_from(schema["symbols"]))
    if kind == "fixed":
        return draw(st.binary(min_size=schema["size"], max_size=schema["size"]))
    if kind == "record":
        return {f["name"]: value_of(draw, f["type"]) for f in schema["fields"]}
    if kind == "array":
        return [value_of(draw, schema["items"]) for _ in range(draw(st.integers(0, 3)))]
    keys = draw(st.lists(st.text(max_size=3), max_size=3, unique=True))
    return {k: value_of(draw, schema["values"]) for k in keys}


def mutate(draw: st.DrawFn, body: bytes) -> bytes:
    """The body cut short, with a byte changed, inserted or appended, or unchanged."""
    how = draw(st.sampled_from(["same", "cut", "flip", "insert", "append"]))
    at = draw(st.integers(0, max(len(body) - 1, 0)))
    byte = bytes([draw(st.one_of(st.sampled_from([0, 1, 2, 0x7F, 0x80, 0xFF]), st.integers(0, 255)))])
    if how == "cut":
        return body[:at]
    if how == "flip" and body:
        return body[:at] + byte + body[at + 1 :]
    if how == "insert":
        return body[:at] + byte + body[at:]
    return body + byte if how == "append" else body


def decoders(schema: dict[str, Any], confluent: bool) -> list[EventDecoder]:
    parsed = fastavro.parse_schema(strip_logical_types(schema))
    schemas = Schemas(events=parsed, events_json=schema, prediction=None, label=None, writers_by_id={1: parsed})
    contract = build_contract(schema, id_field="id", time_field="", entities=())
    out = []
    for native in (False, True):
        decoder = EventDecoder(contract, schemas, "confluent" if confluent else "avro", native=native)
        decoder.read_also(list(contract.fields))
        out.append(decoder)
    return out


def same_column(a: Any, b: Any, path: str) -> None:
    assert a.kind == b.kind and a.symbols == b.symbols, path
    assert (a.present is None) == (b.present is None), path
    if a.present is not None:
        assert a.present.tolist() == b.present.tolist(), path
    left, right = a.values.tolist(), b.values.tolist()
    assert len(left) == len(right), path
    for x, y in zip(left, right, strict=True):
        same = x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))
        assert same and type(x) is type(y), (path, x, y)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.lists(field_types(), min_size=1, max_size=6), st.booleans())
def test_native_and_python_decoders_agree(data: st.DataObject, types: list[Any], confluent: bool) -> None:
    native_or_skip()
    schema = {
        "type": "record",
        "name": "Event",
        "namespace": "t",
        "fields": [{"name": "id", "type": "string"}, *({"name": f"f{i}", "type": t} for i, t in enumerate(types))],
    }
    python, native = decoders(schema, confluent)
    parsed = fastavro.parse_schema(strip_logical_types(schema))
    values = []
    for i in range(data.draw(st.integers(1, 6))):
        record = {"id": f"e{i}", **{f"f{j}": value_of(data.draw, t) for j, t in enumerate(types)}}
        out = io.BytesIO()
        fastavro.schemaless_writer(out, parsed, record)
        body = mutate(data.draw, out.getvalue())
        values.append(confluent_frame(1, body) if confluent else body)
    messages = [FakeMessage(v, offset_value=i) for i, v in enumerate(values)]
    expected, got = python.decode(messages, NOW), native.decode(messages, NOW)
    assert got.valid_flags == expected.valid_flags
    assert [i.error.reason for i in got.invalid] == [i.error.reason for i in expected.invalid]
    assert [i.message.offset() for i in got.invalid] == [i.message.offset() for i in expected.invalid]
    assert got.batch.event_id == expected.batch.event_id
    assert set(got.batch.fields) == set(expected.batch.fields)
    for path, column in expected.batch.fields.items():
        same_column(column, got.batch.fields[path], path)


@pytest.mark.parametrize(
    ("writer_field", "reader_field", "reason"),
    [
        ({"name": "n", "type": "int"}, {"name": "n", "type": "long"}, None),  # promoted
        ({"name": "n", "type": "int"}, {"name": "n", "type": "double"}, None),
        ({"name": "n", "type": "string"}, {"name": "n", "type": "long"}, "incompatible_schema"),
        (
            {"name": "n", "type": {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}},
            {"name": "n", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
            "incompatible_schema",  # this record holds "C", which the reader lacks
        ),
    ],
)
def test_writer_schemas_are_resolved_like_fastavro(writer_field: Any, reader_field: Any, reason: str | None) -> None:
    native_or_skip()
    reader = {"type": "record", "name": "R", "fields": [{"name": "id", "type": "string"}, reader_field]}
    writer = {"type": "record", "name": "R", "fields": [{"name": "id", "type": "string"}, writer_field]}
    value = "C" if "symbols" in str(writer_field) else ("x" if writer_field["type"] == "string" else 7)
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(writer), {"id": "e", "n": value})
    parsed = fastavro.parse_schema(reader)
    results = []
    for native in (False, True):
        schemas = Schemas(parsed, reader, None, None, {2: fastavro.parse_schema(writer)})
        decoder = EventDecoder(
            build_contract(reader, id_field="id", time_field="", entities=()), schemas, "confluent", native=native
        )
        decoder.read_also(["n"])
        results.append(decoder.decode([FakeMessage(confluent_frame(2, out.getvalue()))], NOW))
    for result in results:
        assert [i.error.reason for i in result.invalid] == ([reason] if reason else [])
    if reason is None:
        python, native = (r.batch.fields["n"] for r in results)
        assert python.values.tolist() == native.values.tolist() == [7]
    np.testing.assert_array_equal(results[0].valid_flags, results[1].valid_flags)


def test_a_batch_arrow_avro_fails_on_is_decoded_by_the_python_reader() -> None:
    native_or_skip()
    # arrow-avro 60.1 builds no rows for a fixed of size 0 inside a record, and says so at flush
    inner = {
        "type": "record",
        "name": "In",
        "fields": [{"name": "b", "type": "boolean"}, {"name": "z", "type": {"type": "fixed", "name": "Z", "size": 0}}],
    }
    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "id", "type": "string"}, {"name": "in", "type": inner}],
    }
    _, native = decoders(schema, confluent=False)
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), {"id": "e", "in": {"b": True, "z": b""}})
    result = native.decode([FakeMessage(out.getvalue())], NOW)
    assert native.native_fallbacks == 1
    assert result.batch.event_id == ["e"] and result.batch.fields["in.b"].values.tolist() == [True]


def test_without_the_extension_auto_is_the_python_reader_and_native_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from stream_scorer.codec import native as module
    from stream_scorer.errors import SchemaError
    from stream_scorer.pipeline.emit import PredictionEncoder
    from tests.support import FRAUD_SCHEMAS, small_model

    monkeypatch.setattr(module, "_native", None)
    assert not module.native_available() and not module.use_native("auto") and not module.use_native("python")
    with pytest.raises(SchemaError, match="not installed"):
        module.use_native("native")
    encoder = PredictionEncoder(FRAUD_SCHEMAS.prediction, small_model(("event.amount_log",)))
    assert not encoder.native  # the Python encoder, unasked
