"""Freshness of served feature groups: each group's age at scoring time against its max age (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

FRESH: Final = 0
STALE: Final = 1
MISSING: Final = 2
STATUS_NAMES: Final = ("FRESH", "STALE", "MISSING")


@dataclass(frozen=True, slots=True)
class Freshness:
    """Per-row status (FRESH, STALE or MISSING) and age of one feature group."""

    status: npt.NDArray[np.int8]
    age_ms: npt.NDArray[np.int64]  # -1 where MISSING

    @property
    def usable(self) -> npt.NDArray[np.bool_]:
        """Rows whose values may be used as they are; the others are imputed."""
        usable: npt.NDArray[np.bool_] = self.status == FRESH
        return usable


def assess(
    updated_at_ms: npt.NDArray[np.int64], present: npt.NDArray[np.bool_], now_ms: int, max_age_ms: int
) -> Freshness:
    """Classify each row. An updated-at time in the future (clock skew) counts as age 0.

    >>> f = assess(np.array([1000, 0, 500]), np.array([True, False, True]), now_ms=1600, max_age_ms=800)
    >>> f.status.tolist(), f.age_ms.tolist()
    ([0, 2, 1], [600, -1, 1100])
    """
    age = np.maximum(now_ms - np.asarray(updated_at_ms, dtype=np.int64), 0)
    status = np.where(~present, MISSING, np.where(age > max_age_ms, STALE, FRESH)).astype(np.int8)
    return Freshness(status=status, age_ms=np.where(present, age, -1))
