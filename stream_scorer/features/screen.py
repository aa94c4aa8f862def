"""Refuse feature records that parse but cannot be true (pure).

A record read from the feature store is well formed (see :mod:`stream_scorer.features.layout`) but may
still be a writer's bug: an ``updated_at`` far in the future (a unit or clock error; it would otherwise
read as fresh for years), or a value far outside anything the model was trained on (3e38 in a count).
Such a record is treated like an unreadable one: not present, flagged malformed, so that the model
imputes the group and the prediction says so. Small clock skew is tolerated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from stream_scorer.features.layout import GroupValues

Bounds = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]  # per feature of a group: low, high


@dataclass(frozen=True, slots=True)
class Screened:
    """A group's values with the implausible records taken out, and which rows they were."""

    values: GroupValues
    future: npt.NDArray[np.bool_]  # updated_at more than the tolerance ahead of now
    out_of_range: npt.NDArray[np.bool_]  # a value outside the group's bounds


def plausible_range(low: float, high: float, margin: float) -> tuple[float, float]:
    """The values accepted for a feature trained on ``[low, high]``: ``margin`` training ranges beyond
    either end (a constant feature counts its magnitude, at least 1, as its range).

    >>> plausible_range(0.0, 10.0, margin=10.0)
    (-100.0, 110.0)
    >>> plausible_range(5.0, 5.0, margin=10.0)
    (-45.0, 55.0)
    """
    span = high - low if high > low else max(abs(high), 1.0)
    return low - margin * span, high + margin * span


def screen(values: GroupValues, latest_ms: int, bounds: Bounds | None = None) -> Screened:
    """Take out the records updated after ``latest_ms`` or holding a value outside ``bounds``.

    >>> from stream_scorer.features.layout import pack, unpack_many
    >>> group = unpack_many([pack([1.0], 100), pack([1.0], 9_999), pack([3e38], 100), None], n_features=1)
    >>> out = screen(group, latest_ms=1_000, bounds=(np.array([0.0]), np.array([50.0])))
    >>> out.values.present.tolist(), out.values.malformed.tolist()
    ([True, False, False, False], [False, True, True, False])
    >>> out.future.tolist(), out.out_of_range.tolist()
    ([False, True, False, False], [False, False, True, False])
    """
    present = values.present
    future = present & (values.updated_at_ms > latest_ms)
    if bounds is None:
        out_of_range = np.zeros(len(present), dtype=bool)
    else:
        low, high = bounds
        out_of_range = present & ((values.values < low) | (values.values > high)).any(axis=1)
    refused = future | out_of_range
    if not refused.any():
        return Screened(values, future, out_of_range)
    kept = present & ~refused
    screened = dataclasses.replace(
        values,
        values=np.where(kept[:, None], values.values, 0.0),
        updated_at_ms=np.where(kept, values.updated_at_ms, 0),
        present=kept,
        malformed=values.malformed | refused,
    )
    return Screened(screened, future, out_of_range)
