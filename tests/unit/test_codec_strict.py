"""The strict decoder against fastavro: equal on every valid body, stricter on the lenient ones (no servers)."""

from __future__ import annotations

import io
import struct

import fastavro
import numpy as np
import pytest

from stream_scorer.codec.strict import MalformedAvro, compile_reader

RICH = fastavro.parse_schema(
    {
        "type": "record",
        "name": "Rich",
        "namespace": "t",
        "fields": [
            {"name": "flag", "type": "boolean"},
            {"name": "i", "type": "int"},
            {"name": "l", "type": "long"},
            {"name": "f", "type": "float"},
            {"name": "d", "type": "double"},
            {"name": "raw", "type": "bytes"},
            {"name": "s", "type": "string"},
            {"name": "e", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]}},
            {"name": "fx", "type": {"type": "fixed", "name": "Four", "size": 4}},
            {"name": "opt", "type": ["null", "string", "long"]},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "scores", "type": {"type": "map", "values": "double"}},
            {
                "name": "inner",
                "type": {
                    "type": "record",
                    "name": "Inner",
                    "fields": [{"name": "c", "type": "t.Color"}, {"name": "next", "type": ["null", "t.Inner"]}],
                },
            },
            {"name": "again", "type": "Inner"},
            {"name": "none", "type": "null"},
        ],
    }
)


def rich(rng: np.random.Generator) -> dict[str, object]:
    def inner(depth: int) -> dict[str, object]:
        nxt = inner(depth - 1) if depth and rng.random() < 0.6 else None
        return {"c": str(rng.choice(["RED", "GREEN", "BLUE"])), "next": nxt}

    return {
        "flag": bool(rng.random() < 0.5),
        "i": int(rng.integers(-(2**31), 2**31)),
        "l": int(rng.integers(-(2**63), 2**63 - 1)),
        "f": float(np.float32(rng.normal())),
        "d": float(rng.normal() * 1e6),
        "raw": rng.bytes(int(rng.integers(0, 20))),
        "s": "".join(rng.choice(list("aé€😀 z"), int(rng.integers(0, 12)))),
        "e": str(rng.choice(["RED", "GREEN", "BLUE"])),
        "fx": rng.bytes(4),
        "opt": [None, "x" * int(rng.integers(0, 70)), int(rng.integers(-5, 5))][int(rng.integers(0, 3))],
        "tags": [str(j) for j in range(int(rng.integers(0, 5)))],
        "scores": {f"k{j}": float(j) for j in range(int(rng.integers(0, 4)))},
        "inner": inner(3),
        "again": inner(1),
        "none": None,
    }


def encode(record: dict[str, object]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, RICH, record)
    return out.getvalue()


def test_every_valid_body_reads_as_fastavro_reads_it() -> None:
    read = compile_reader(RICH)
    rng = np.random.default_rng(3)
    for _ in range(500):
        body = encode(rich(rng))
        value, end = read(body, 0)
        assert end == len(body)
        assert value == fastavro.schemaless_reader(io.BytesIO(body), RICH, None)


FLAT = fastavro.parse_schema(
    {**RICH, "name": "Flat", "fields": [f for f in RICH["fields"] if f["name"] not in ("f", "tags", "scores")]}
)


@pytest.mark.parametrize("schema", [RICH, FLAT], ids=["rich", "without arrays, maps and floats"])
def test_mutants_are_either_read_as_fastavro_reads_them_or_refused(schema: object) -> None:
    read = compile_reader(schema)
    rng = np.random.default_rng(4)
    accepted = refused = 0
    for _ in range(3000):
        record = rich(rng)
        out = io.BytesIO()
        fastavro.schemaless_writer(out, schema, record)
        body = bytearray(out.getvalue())
        for _ in range(int(rng.integers(1, 4))):
            body[int(rng.integers(0, len(body)))] = int(rng.integers(0, 256))
        try:
            value, end = read(bytes(body), 0)
        except (MalformedAvro, IndexError, struct.error, UnicodeDecodeError):
            refused += 1
            continue
        if end != len(body):
            refused += 1
            continue
        accepted += 1
        expected = fastavro.schemaless_reader(io.BytesIO(bytes(body)), schema, None)
        assert repr(value) == repr(expected)  # repr: a NaN equals a NaN
        if schema is FLAT:  # what is accepted is canonical (blocks and float NaN payloads may differ)
            again = io.BytesIO()
            fastavro.schemaless_writer(again, schema, value)
            assert again.getvalue() == bytes(body)
    assert accepted > 100 and refused > 100


def test_blocks_with_sizes_and_several_blocks_read_as_one_array() -> None:
    schema = fastavro.parse_schema({"type": "array", "items": "long"})
    # two blocks: 2 items with a byte size (negative count), then 1 item, then the end
    body = b"\x03" + b"\x04" + b"\x02\x04" + b"\x02" + b"\x06" + b"\x00"
    assert compile_reader(schema)(body, 0) == ([1, 2, 3], len(body))


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"\x80\x00", "overlong"),
        (b"\xff" * 10 + b"\x01", "longer than 10 bytes"),
        (b"\xff" * 9 + b"\x7f", "past 64 bits"),
    ],
)
def test_varints_must_be_canonical_and_fit_64_bits(body: bytes, match: str) -> None:
    with pytest.raises(MalformedAvro, match=match):
        compile_reader("long")(body, 0)


def test_the_largest_and_smallest_longs_and_ints_read() -> None:
    for n in (2**63 - 1, -(2**63), 0, -1):
        out = io.BytesIO()
        fastavro.schemaless_writer(out, "long", n)
        assert compile_reader("long")(out.getvalue(), 0) == (n, len(out.getvalue()))
    with pytest.raises(MalformedAvro, match="32 bits"):
        compile_reader("int")(b"\x80\x80\x80\x80\x10", 0)


@pytest.mark.parametrize(
    ("schema", "body", "match"),
    [
        ({"type": "array", "items": "null"}, b"\xfe\xff\xff\xff\x0f", "items with 0 bytes left"),  # 2**31 nulls
        ({"type": "array", "items": "long"}, b"\x03\x06\x02\x04\x00", "a block of 3 bytes that holds 2"),
        ({"type": "map", "values": "long"}, b"\x04\x02k\x02\x02k\x04\x00", "a map key given twice"),
        ({"type": "error", "name": "Oops", "fields": [{"name": "b", "type": "boolean"}]}, b"\x07", "boolean byte 7"),
    ],
)
def test_blocks_that_lie_and_odd_types(schema: object, body: bytes, match: str) -> None:
    with pytest.raises(MalformedAvro, match=match):
        compile_reader(fastavro.parse_schema(schema))(body, 0)


def test_a_fixed_of_negative_size_is_refused_when_the_reader_is_compiled() -> None:
    # fastavro accepts it; inside an array it would move the read position backwards, forever.
    import fastavro

    from stream_scorer.codec.strict import MalformedAvro, compile_reader

    schema = fastavro.parse_schema({"type": "array", "items": {"type": "fixed", "name": "F", "size": -1}})
    with pytest.raises(MalformedAvro, match="size -1"):
        compile_reader(schema)
