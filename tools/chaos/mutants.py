"""Hostile input for the decoder's fuzz tests: seeded mutants of valid Transaction bodies (pure).

Families: bit flips, truncation, appended bytes, garbage, empty and null values, huge values (up to the
broker's maximum message size), and encodings fastavro would read leniently: enum and union indexes out
of range, boolean bytes other than 0 or 1, invalid UTF-8, NaN and infinite numbers.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from stream_scorer.codec.columns import string, varints

BROKER_MAX_MESSAGE_BYTES = 1_048_588  # Kafka's default message.max.bytes (a record batch, overhead included)
HUGE_SIZES = (65_536, 65_537, 999_700, 999_900, 1_040_000)  # around the input and the producer limits
# Field positions in schemas/transaction.avsc: enums, the boolean, the nullable union, strings, the double.
ENUMS, BOOLEAN, UNION, STRINGS, DOUBLE = (6, 10, 11), 12, 13, (0, 2, 3, 4, 8, 9), 5


def long(n: int) -> bytes:
    """The Avro encoding of one ``long``."""
    return varints(np.array([n]))[0]


def transaction_fields(record: Mapping[str, Any], enum_indexes: Sequence[int] = (0, 0, 0)) -> list[bytes]:
    """The Avro body of a Transaction, field by field in schema order (``ip_address`` null).

    Built by hand, not by fastavro, so that a test can swap one field's bytes for ones fastavro would
    never write.
    """
    r = record
    return [
        string(str(r["event_id"])),
        long(int(r["event_time"])),
        string(str(r["card_id"])),
        string(str(r["merchant_id"])),
        string(str(r["device_id"])),
        struct.pack("<d", float(r["amount"])),
        long(enum_indexes[0]),
        long(int(r["merchant_category_code"])),
        string(str(r["country"])),
        string(str(r["card_country"])),
        long(enum_indexes[1]),
        long(enum_indexes[2]),
        b"\x01" if r["card_present"] else b"\x00",
        b"\x00",
    ]


def replaced(fields: Sequence[bytes], index: int, raw: bytes) -> bytes:
    """The body with field ``index`` replaced by ``raw``."""
    return b"".join(raw if i == index else part for i, part in enumerate(fields))


def mutants(rng: np.random.Generator, good: Sequence[bytes], fields: Sequence[bytes], n: int) -> Iterator[bytes | None]:
    """``n`` seeded mutants, cycling through the families; ``good`` are valid bodies, ``fields`` one split up."""

    def huge(_: bytes) -> bytes:
        size = int(rng.choice(HUGE_SIZES)) if rng.random() < 0.5 else int(rng.integers(65_537, 1_040_000))
        return rng.bytes(size)

    families: list[Callable[[bytes], bytes | None]] = [
        lambda b: bytes(x ^ (1 << int(rng.integers(8))) if rng.random() < 0.05 else x for x in b),  # bit flips
        lambda b: b[: int(rng.integers(0, len(b)))],  # truncation
        lambda b: b + rng.bytes(int(rng.integers(1, 16))),  # appended bytes
        lambda b: rng.bytes(int(rng.integers(1, 200))),  # garbage
        lambda b: b"" if rng.random() < 0.5 else None,  # empty, tombstone
        lambda b: replaced(fields, UNION, long(int(rng.integers(-5, 6))) + string("10.0.0.1")),  # wrong union
        lambda b: replaced(fields, int(rng.choice(ENUMS)), long(int(rng.integers(-12, 12)))),  # wrong enum
        lambda b: replaced(fields, BOOLEAN, bytes([int(rng.integers(0, 256))])),  # boolean bytes
        lambda b: replaced(fields, int(rng.choice(STRINGS)), long(2) + rng.bytes(2)),  # invalid UTF-8
        lambda b: replaced(fields, DOUBLE, struct.pack("<d", float(rng.choice([np.nan, np.inf, -np.inf, -1.0])))),
        lambda b: b[:1] + b[1:][::-1],  # reversed
    ]
    for i in range(n):
        family = huge if i % 40 == 39 else families[i % len(families)]
        yield family(good[i % len(good)])
