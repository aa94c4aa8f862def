"""The native feature-read helpers against their Python references: redis-py's command packing and
``layout.unpack_many``'s numpy parsing, on random inputs (property-based)."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.connection import Connection

from stream_scorer.codec.native import native_function
from stream_scorer.features.layout import HEADER, MAGIC, pack, unpack_many
from tests.unit.conftest import native_or_skip


@pytest.fixture(autouse=True)
def _native() -> None:
    native_or_skip()


arguments = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=20),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
)
names = st.sampled_from(["MGET", "SET", "EVALSHA_RO", "SCRIPT LOAD", b"DEL", "CLIENT  SETNAME"])
commands = st.lists(st.tuples(names, st.lists(arguments, max_size=6)), max_size=5)


@settings(max_examples=300, deadline=None)
@given(commands)
def test_packed_commands_are_the_bytes_redis_py_sends(given_commands: list[tuple[Any, list[Any]]]) -> None:
    pack_commands = native_function("pack_commands")
    assert pack_commands is not None
    calls = [(name, *args) for name, args in given_commands]
    connection = Connection()
    expected = b"".join(b"".join(connection.pack_command(*call)) for call in calls)
    assert pack_commands(calls) == expected


@pytest.mark.parametrize("bad", [None, True, object()])
def test_an_argument_redis_py_refuses_is_refused(bad: object) -> None:
    pack_commands = native_function("pack_commands")
    assert pack_commands is not None
    with pytest.raises(TypeError, match="bytes, str, int or float"):
        pack_commands([("SET", "k", bad)])


def _record(draw: Any, n_features: int) -> bytes | None:
    """A reply: missing, a well-formed record, or one with a single thing wrong."""
    kind = draw(st.sampled_from(["none", "good", "good", "magic", "layout", "version", "count", "size", "nan"]))
    if kind == "none":
        return None
    values = draw(st.lists(st.floats(width=32, allow_nan=False), min_size=n_features, max_size=n_features))
    updated = draw(st.integers(min_value=-(2**63), max_value=2**63 - 1))
    blob = bytearray(pack(values, updated, version=2))
    if kind == "magic":
        blob[0:2] = b"XF"
    elif kind in ("layout", "version", "count"):
        at = {"layout": 2, "version": 4, "count": 6}[kind]
        blob[at : at + 2] = struct.pack("<H", draw(st.integers(0, 65535).filter(lambda v: v not in (1, 2))))
    elif kind == "size":
        blob = blob[: draw(st.integers(0, len(blob) - 1))] if draw(st.booleans()) else blob + b"\0"
    elif kind == "nan" and n_features:
        at = HEADER.size + 4 * draw(st.integers(0, n_features - 1))
        blob[at : at + 4] = struct.pack("<f", draw(st.sampled_from([float("nan"), float("inf"), -float("inf")])))
    return bytes(blob)


@st.composite
def batches(draw: Any) -> tuple[int, list[bytes | None]]:
    n_features = draw(st.integers(0, 6))
    return n_features, [_record(draw, n_features) for _ in range(draw(st.integers(0, 30)))]


@settings(max_examples=300, deadline=None)
@given(batches())
def test_native_and_python_parse_every_reply_alike(batch: tuple[int, list[bytes | None]]) -> None:
    n_features, replies = batch
    native, python = (unpack_many(replies, n_features, 2, native=flag) for flag in (True, False))
    for name in ("values", "updated_at_ms", "present", "malformed"):
        got, expected = getattr(native, name), getattr(python, name)
        assert got.dtype == expected.dtype and got.shape == expected.shape, name
        assert np.array_equal(got, expected), name
    assert native.present.tolist() == [_readable(reply, n_features) for reply in replies]


def _readable(reply: bytes | None, n_features: int) -> bool:
    """The layout's rule, written out: the right size, magic, layout 1, version 2, count, finite values."""
    if reply is None or len(reply) != HEADER.size + 4 * n_features or reply[:2] != MAGIC:
        return False
    return struct.unpack_from("<HHH", reply, 2) == (1, 2, n_features) and bool(
        np.isfinite(np.frombuffer(reply[HEADER.size :], "<f4")).all()
    )
