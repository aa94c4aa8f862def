"""Avro binary primitives, vectorized where a batch allows it (pure).

The hot path writes one ``Prediction`` per event; a generic writer (fastavro's ``schemaless_writer``)
spends about 20 µs a record walking the schema. The pieces here encode whole columns at once; the
prediction encoder in :mod:`stream_scorer.pipeline.emit` joins them, and its tests check it byte for byte
against fastavro.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_SHIFTS = np.arange(0, 70, 7, dtype=np.uint64)  # ten 7-bit groups cover 64 bits


def varints(values: npt.NDArray[np.int64]) -> list[bytes]:
    """Avro ``long`` encodings (zigzag, then base-128 varint) of every value.

    >>> varints(np.array([0, -1, 1, 63, 64, -65, 1_700_000_000_000]))
    [b'\\x00', b'\\x01', b'\\x02', b'~', b'\\x80\\x01', b'\\x81\\x01', b'\\x80\\xa0\\xab\\xfe\\xf9b']
    """
    v = np.asarray(values, dtype=np.int64)
    if v.size == 0:
        return []
    zigzag = ((v << 1) ^ (v >> 63)).view(np.uint64)
    groups = (zigzag[:, None] >> _SHIFTS[None, :]) & np.uint64(0x7F)
    # Bytes needed: the highest non-zero 7-bit group, at least one.
    nonzero = groups != 0
    lengths = np.where(nonzero.any(axis=1), 10 - np.argmax(nonzero[:, ::-1], axis=1), 1)
    index = np.arange(10)[None, :]
    keep = index < lengths[:, None]
    continuation = index < (lengths[:, None] - 1)
    encoded = (groups | np.where(continuation, np.uint64(0x80), np.uint64(0))).astype(np.uint8)
    flat = encoded[keep].tobytes()
    ends = np.cumsum(lengths).tolist()
    starts = [0, *ends[:-1]]
    return [flat[s:e] for s, e in zip(starts, ends, strict=True)]


def string(text: str) -> bytes:
    """Avro ``string``: the UTF-8 length as a long, then the bytes.

    >>> string("ab")
    b'\\x04ab'
    """
    data = text.encode()
    n = len(data)
    return (bytes((n << 1,)) if n < 64 else varints(np.array([n]))[0]) + data


def string_bytes(data: bytes) -> bytes:
    """Avro ``bytes``: the length as a long, then the bytes.

    >>> string_bytes(b"ab")
    b'\\x04ab'
    """
    n = len(data)
    return (bytes((n << 1,)) if n < 64 else varints(np.array([n]))[0]) + data


def doubles(values: npt.NDArray[np.float64]) -> list[bytes]:
    """Avro ``double`` (8 bytes, little-endian) of every value."""
    flat = np.asarray(values, dtype="<f8").tobytes()
    return [flat[i : i + 8] for i in range(0, len(flat), 8)]
