"""The packed feature layout and freshness: pure, so tested without Redis."""

from __future__ import annotations

import numpy as np
import pytest

from stream_scorer.features.freshness import FRESH, MISSING, STALE, assess
from stream_scorer.features.layout import HEADER, pack, unpack_many


def test_pack_unpack_round_trip_keeps_float32_values_and_times() -> None:
    values = np.array([[1.25, -3.5, 1e6], [0.0, 7.0, 2.5]])
    blobs = [pack(row, updated_at_ms=1_000 + i, version=3) for i, row in enumerate(values)]
    out = unpack_many(blobs, n_features=3, version=3)
    assert out.values.tolist() == values.tolist()
    assert out.updated_at_ms.tolist() == [1000, 1001]
    assert out.present.tolist() == [True, True]
    assert out.malformed.tolist() == [False, False]


def test_missing_keys_are_missing_not_malformed() -> None:
    out = unpack_many([None, pack([1.0], 5)], n_features=1)
    assert out.present.tolist() == [False, True]
    assert out.malformed.tolist() == [False, False]
    assert out.values[0].tolist() == [0.0]


@pytest.mark.parametrize(
    "blob",
    [
        b"garbage",  # wrong size
        pack([1.0, 2.0], 5)[:-1],  # truncated
        pack([1.0, 2.0, 3.0], 5),  # another feature count
        pack([1.0, 2.0], 5, version=2),  # another group version
        b"XX" + pack([1.0, 2.0], 5)[2:],  # wrong magic
        pack([float("nan"), 2.0], 5),  # non-finite value
        HEADER.pack(b"SF", 9, 1, 2, 5) + bytes(8),  # unknown layout version
    ],
)
def test_unreadable_records_are_flagged_and_served_as_missing(blob: bytes) -> None:
    out = unpack_many([blob, pack([1.0, 2.0], 5)], n_features=2, version=1)
    assert out.present.tolist() == [False, True]
    assert out.malformed.tolist() == [True, False]
    assert out.values[0].tolist() == [0.0, 0.0]


def test_empty_batch() -> None:
    out = unpack_many([], n_features=4)
    assert out.values.shape == (0, 4) and out.present.shape == (0,)


def test_freshness_boundaries() -> None:
    now, max_age = 10_000, 1_000
    updated = np.array([now, now - 1_000, now - 1_001, now + 500, 0])
    present = np.array([True, True, True, True, False])
    f = assess(updated, present, now, max_age)
    assert f.status.tolist() == [FRESH, FRESH, STALE, FRESH, MISSING]
    assert f.age_ms.tolist() == [0, 1000, 1001, 0, -1]  # a future time (clock skew) counts as age 0
    assert f.usable.tolist() == [True, True, False, True, False]
