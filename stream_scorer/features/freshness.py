"""Freshness of served feature groups: each group's age at scoring time against its max age (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

FRESH: Final = 0
STALE: Final = 1
MISSING: Final = 2
UNAVAILABLE: Final = 3  # the feature store could not be asked (down, slow, or its circuit breaker is open)
STATUS_NAMES: Final = ("FRESH", "STALE", "MISSING", "UNAVAILABLE")


@dataclass(frozen=True, slots=True)
class Freshness:
    """Per-row status (FRESH, STALE, MISSING or UNAVAILABLE) and age of one feature group."""

    status: npt.NDArray[np.int8]
    age_ms: npt.NDArray[np.int64]  # -1 where MISSING or UNAVAILABLE

    @property
    def usable(self) -> npt.NDArray[np.bool_]:
        """Rows whose values may be used as they are; the others are imputed."""
        usable: npt.NDArray[np.bool_] = self.status == FRESH
        return usable


def assess(
    updated_at_ms: npt.NDArray[np.int64],
    present: npt.NDArray[np.bool_],
    now_ms: int,
    max_age_ms: int,
    available: bool | npt.NDArray[np.bool_] = True,
) -> Freshness:
    """Classify each row. An updated-at time slightly in the future (clock skew) counts as age 0; one more
    than ``max_age_ms`` ahead (a writer's unit or clock error) counts as STALE, so it cannot stay fresh forever.

    >>> f = assess(np.array([1000, 0, 500]), np.array([True, False, True]), now_ms=1600, max_age_ms=800)
    >>> f.status.tolist(), f.age_ms.tolist()
    ([0, 2, 1], [600, -1, 1100])
    >>> assess(np.array([1000]), np.array([False]), now_ms=1600, max_age_ms=800, available=False).status.tolist()
    [3]
    >>> both = assess(np.array([1000, 1000]), np.array([True, False]), 1600, 800, np.array([True, False]))
    >>> both.status.tolist(), both.age_ms.tolist()
    ([0, 3], [600, -1])

    ``available`` is per row on a Redis Cluster, where one node may fail while the others answer.
    """
    if available is False:
        n = len(present)
        return Freshness(status=np.full(n, UNAVAILABLE, np.int8), age_ms=np.full(n, -1, np.int64))
    signed_age = now_ms - np.asarray(updated_at_ms, dtype=np.int64)
    age = np.maximum(signed_age, 0)
    stale = (age > max_age_ms) | (signed_age < -max_age_ms)
    status = np.where(~present, MISSING, np.where(stale, STALE, FRESH)).astype(np.int8)
    if available is not True:
        status[~np.asarray(available, dtype=bool)] = UNAVAILABLE
    return Freshness(status=status, age_ms=np.where(present, age, -1))
