"""How one feature group of one entity is stored: a Redis string of packed little-endian bytes.

::

    offset  size  field
    0       2     magic b"SF"
    2       2     layout version (1)
    4       2     feature-group version (from the configuration; a mismatch reads as missing)
    6       2     number of features k
    8       8     updated_at, epoch milliseconds (int64)
    16      4k    the k feature values, float32, in the group's configured order

A whole batch of replies is parsed at once: by the native extension (``stream_scorer_native``) when it is
installed, else with one ``np.frombuffer`` over their concatenation instead of a Python loop over values.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from stream_scorer.codec.native import native_function

MAGIC = b"SF"
LAYOUT_VERSION = 1
HEADER = struct.Struct("<2sHHHq")
_unpack_records = native_function("unpack_records")


def record_dtype(n_features: int) -> np.dtype[np.void]:
    """The numpy dtype of one packed record with ``n_features`` values."""
    return np.dtype(
        [
            ("magic", "S2"),
            ("layout", "<u2"),
            ("version", "<u2"),
            ("n", "<u2"),
            ("updated_at_ms", "<i8"),
            ("values", "<f4", (n_features,)),
        ]
    )


def pack(values: Sequence[float] | npt.NDArray[np.floating], updated_at_ms: int, version: int = 1) -> bytes:
    """Pack one feature group's values.

    >>> blob = pack([1.5, 2.0], updated_at_ms=1_700_000_000_000)
    >>> len(blob)
    24
    >>> unpack_many([blob, None], n_features=2).values.tolist()
    [[1.5, 2.0], [0.0, 0.0]]
    """
    array = np.asarray(values, dtype="<f4")
    return HEADER.pack(MAGIC, LAYOUT_VERSION, version, array.size, updated_at_ms) + array.tobytes()


@dataclass(frozen=True, slots=True)
class GroupValues:
    """One feature group's values for every row of a batch."""

    values: npt.NDArray[np.float64]  # (n, k); zeros where not present
    updated_at_ms: npt.NDArray[np.int64]  # (n,); 0 where not present
    present: npt.NDArray[np.bool_]  # (n,) a well-formed record of the expected version was found
    malformed: npt.NDArray[np.bool_]  # (n,) a record was found but is not one we can read
    available: bool | npt.NDArray[np.bool_] = True  # False (for all rows, or per row): the store could not be asked


def unavailable(n_rows: int, n_features: int) -> GroupValues:
    """A group's values when the feature store could not be asked: nothing present, flagged unavailable."""
    return GroupValues(
        values=np.zeros((n_rows, n_features)),
        updated_at_ms=np.zeros(n_rows, np.int64),
        present=np.zeros(n_rows, bool),
        malformed=np.zeros(n_rows, bool),
        available=False,
    )


def unpack_many(
    replies: Sequence[bytes | None],
    n_features: int,
    version: int = 1,
    other_type: npt.NDArray[np.bool_] | None = None,
    *,
    native: bool = True,
) -> GroupValues:
    """Parse MGET replies (``None`` for a missing key) into arrays. Unreadable records count as missing.

    MGET answers ``None`` for a key holding another Redis type (a hash, a list...) too; ``other_type``
    marks those rows (found apart, by the store): they are flagged malformed, and still not present.
    The native extension parses the replies when it is installed (``native=False``: the Python reference).
    """
    if native and _unpack_records is not None:
        replies = replies if isinstance(replies, list) else list(replies)
        values, updated_at_ms, readable, found = _unpack_records(replies, n_features, version)
    else:
        values, updated_at_ms, readable, found = _unpack_python(replies, n_features, version)
    malformed = found & ~readable
    if other_type is not None:
        if other_type.shape != (len(replies),):
            raise ValueError(f"other_type needs one flag per reply, got shape {other_type.shape}")
        malformed |= other_type
    return GroupValues(values=values, updated_at_ms=updated_at_ms, present=readable, malformed=malformed)


def _unpack_python(
    replies: Sequence[bytes | None], n_features: int, version: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Values, updated_at_ms, readable and found: one ``np.frombuffer`` over the joined replies."""
    dtype = record_dtype(n_features)
    size = dtype.itemsize
    blank = bytes(size)
    right_size = [r is not None and len(r) == size for r in replies]
    joined = b"".join(r if ok else blank for r, ok in zip(replies, right_size, strict=True))  # type: ignore[misc]
    records = np.frombuffer(joined, dtype=dtype, count=len(replies))
    found = np.fromiter((r is not None for r in replies), np.bool_, len(replies))
    readable = (
        np.asarray(right_size, dtype=bool)
        & (records["magic"] == MAGIC)
        & (records["layout"] == LAYOUT_VERSION)
        & (records["version"] == version)
        & (records["n"] == n_features)
    )
    values = records["values"].astype(np.float64)
    readable &= np.isfinite(values).all(axis=1)
    values[~readable] = 0.0
    return values, np.where(readable, records["updated_at_ms"], 0), readable, found
