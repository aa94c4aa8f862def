"""A circuit breaker around the feature store: when Redis is down or slow, score with imputed features.

Closed: every batch asks the store; a failed call is retried once. After ``failures`` failed batches
in a row the breaker opens: for ``reset_seconds`` no call is made and every group is served as
UNAVAILABLE (imputed, and flagged in the prediction). Then one batch tries again (half-open): success
closes the breaker, failure opens it for another period. A transient fault never drops an event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from stream_scorer.config import FeatureGroup
from stream_scorer.errors import FeatureStoreError
from stream_scorer.features.layout import GroupValues, unavailable
from stream_scorer.features.store import FeatureLookup

log = logging.getLogger(__name__)

CLOSED: Final = 0
HALF_OPEN: Final = 1
OPEN: Final = 2


class CircuitBreakerLookup:
    """A :class:`FeatureLookup` that degrades instead of failing."""

    def __init__(
        self,
        lookup: FeatureLookup,
        *,
        failures: int,
        reset_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        on_state: Callable[[int], None] | None = None,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self._lookup = lookup
        self._failures = failures
        self._reset_seconds = reset_seconds
        self._clock = clock
        self._on_state = on_state
        self._on_error = on_error
        self.state = CLOSED
        self._failed_in_a_row = 0
        self._opened_at = 0.0

    def fetch(
        self, groups: Sequence[FeatureGroup], ids_by_entity: Mapping[str, Sequence[str]]
    ) -> dict[str, GroupValues]:
        """The store's answer, or every group UNAVAILABLE when the store cannot answer."""
        if self.state == OPEN:
            if self._clock() - self._opened_at < self._reset_seconds:
                return _all_unavailable(groups, ids_by_entity)
            self._set(HALF_OPEN)
        attempts = 2 if self.state == CLOSED else 1
        for attempt in range(attempts):
            try:
                result = self._lookup.fetch(groups, ids_by_entity)
            except FeatureStoreError as exc:
                if self._on_error is not None:
                    self._on_error()
                log.warning("feature store call failed (attempt %d of %d): %s", attempt + 1, attempts, exc)
                continue
            self._failed_in_a_row = 0
            if self.state != CLOSED:
                log.info("feature store answers again: circuit closed")
                self._set(CLOSED)
            return result
        self._failed_in_a_row += 1
        if self.state == HALF_OPEN or self._failed_in_a_row >= self._failures:
            self._opened_at = self._clock()
            if self.state != OPEN:
                log.warning("circuit open: serving imputed features for %.1f s", self._reset_seconds)
            self._set(OPEN)
        return _all_unavailable(groups, ids_by_entity)

    def _set(self, state: int) -> None:
        self.state = state
        if self._on_state is not None:
            self._on_state(state)


def _all_unavailable(
    groups: Sequence[FeatureGroup], ids_by_entity: Mapping[str, Sequence[str]]
) -> dict[str, GroupValues]:
    return {g.name: unavailable(len(ids_by_entity[g.entity]), len(g.features)) for g in groups}
