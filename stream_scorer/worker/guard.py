"""Stop the worker when too much input is invalid, rather than dead-letter a whole topic (pure)."""

from __future__ import annotations

import collections
from collections.abc import Sequence

from stream_scorer.errors import InvalidInputRateError


class InvalidInputGuard:
    """Trips after ``max_consecutive`` invalid messages in a row, or when more than ``max_ratio`` of the
    last ``window`` messages were invalid (checked once the window is full).

    >>> guard = InvalidInputGuard(max_consecutive=3, max_ratio=0.9, window=100)
    >>> guard.observe([True, False, False, True, False, False])
    >>> guard.observe([False, False])
    Traceback (most recent call last):
    ...
    stream_scorer.errors.InvalidInputRateError: 3 invalid messages in a row (limit 3): stopping without committing
    """

    def __init__(self, *, max_consecutive: int, max_ratio: float, window: int) -> None:
        self._max_consecutive = max_consecutive
        self._max_ratio = max_ratio
        self._recent: collections.deque[bool] = collections.deque(maxlen=window)
        self._invalid_in_window = 0
        self.consecutive = 0

    def snapshot(self) -> tuple[list[bool], int, int]:
        """The guard's state, to restore when a window is rewound and its messages are read again."""
        return list(self._recent), self._invalid_in_window, self.consecutive

    def restore(self, state: tuple[list[bool], int, int]) -> None:
        recent, self._invalid_in_window, self.consecutive = state
        self._recent.clear()
        self._recent.extend(recent)

    def observe(self, valid_flags: Sequence[bool]) -> None:
        """Feed one batch's per-message validity, in poll order; raise :class:`InvalidInputRateError` to stop."""
        for valid in valid_flags:
            if len(self._recent) == self._recent.maxlen and not self._recent[0]:
                self._invalid_in_window -= 1
            self._recent.append(valid)
            if valid:
                self.consecutive = 0
                continue
            self._invalid_in_window += 1
            self.consecutive += 1
            if self.consecutive >= self._max_consecutive:
                raise InvalidInputRateError(
                    f"{self.consecutive} invalid messages in a row (limit {self._max_consecutive}): "
                    "stopping without committing"
                )
        full = len(self._recent) == self._recent.maxlen
        if full and self._invalid_in_window > self._max_ratio * len(self._recent):
            raise InvalidInputRateError(
                f"{self._invalid_in_window} of the last {len(self._recent)} messages were invalid "
                f"(limit {self._max_ratio:.0%}): stopping without committing"
            )
