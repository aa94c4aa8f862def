"""Rolling windows of pairs kept as one running :class:`Aggregate`, updated as pairs enter and leave (pure).

* :class:`CountWindow` holds the last ``count`` observations in a ring buffer of (score, decision, label)
  slots, about 11 bytes a slot. A slot whose pair was later replaced is emptied, so the support can dip
  below ``count`` until that slot is overwritten.
* :class:`TimeWindow` holds one aggregate per time bucket of ``bucket_seconds`` (by arrival time), so
  memory is O(buckets), not O(pairs): about ``2 * auc_bins * 4`` bytes a non-empty bucket (8 KB with 1000
  AUC bins). A bucket ``[b w, (b + 1) w)`` leaves when ``now >= (b + 1) w + seconds``, so a pair is
  counted for between ``seconds`` and ``seconds + w`` after it arrives.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from stream_scorer.batch import BoolArray, Float64Array, Int64Array
from stream_scorer.labels.aggregates import Aggregate, Layout, add_pairs


class CountWindow:
    """The last ``count`` observations, by sequence number (the n-th observation of a series has seq n)."""

    def __init__(self, count: int, layout: Layout) -> None:
        self.count = count
        self.total = Aggregate.zeros(layout)
        self._layout = layout
        self._scores = np.zeros(count)
        self._decisions = np.zeros(count, dtype=np.bool_)
        self._labels = np.zeros(count, dtype=np.bool_)
        self._live = np.zeros(count, dtype=np.bool_)
        self._end = 0  # one past the newest seq pushed

    def revert(self, seqs: Int64Array) -> None:
        """Remove the pairs observed as ``seqs`` that are still in the window (a contradicting label arrived)."""
        slots = seqs[(seqs >= self._end - self.count) & (seqs < self._end)] % self.count
        slots = slots[self._live[slots]]
        self._apply(slots, sign=-1)
        self._live[slots] = False

    def push(self, scores: Float64Array, decisions: BoolArray, labels: BoolArray, live: BoolArray) -> None:
        """Append observations (``live`` false: superseded within the batch, so it only takes a slot)."""
        size = len(scores)
        keep = min(size, self.count)  # older observations of a big batch would leave at once
        slots = np.arange(self._end + size - keep, self._end + size) % self.count
        self._apply(slots[self._live[slots]], sign=-1)
        tail = slice(size - keep, size)
        self._scores[slots], self._decisions[slots] = scores[tail], decisions[tail]
        self._labels[slots], self._live[slots] = labels[tail], live[tail]
        self._apply(slots[live[tail]], sign=1)
        self._end += size

    def _apply(self, slots: Int64Array, sign: int) -> None:
        if slots.size:
            scores, decisions, labels = self._scores[slots], self._decisions[slots], self._labels[slots]
            add_pairs([self.total], self._layout, scores, decisions, labels, sign=sign)


class TimeWindow:
    """Pairs that arrived within the last ``seconds``, summed per bucket of ``bucket_seconds``."""

    def __init__(self, seconds: float, bucket_seconds: float, layout: Layout) -> None:
        self.seconds = seconds
        self.bucket_seconds = bucket_seconds
        self.total = Aggregate.zeros(layout)
        self._layout = layout
        self._buckets: dict[int, Aggregate] = {}
        self._heap: list[int] = []  # bucket indices, oldest first; may repeat a bucket emptied and refilled
        self._floor = -(2**62)  # buckets below this have left; it never moves back

    def advance(self, now: float) -> None:
        """Evict the buckets that ``now`` has pushed out of the window."""
        self._floor = max(self._floor, math.floor((now - self.seconds) / self.bucket_seconds))
        while self._heap and self._heap[0] < self._floor:
            bucket = self._buckets.pop(heapq.heappop(self._heap), None)
            if bucket is not None:
                self.total.revert(bucket)

    def holds(self, at: float) -> bool:
        return math.floor(at / self.bucket_seconds) >= self._floor

    def add(self, scores: Float64Array, decisions: BoolArray, labels: BoolArray, ats: Float64Array) -> None:
        """Add the pairs whose bucket is still in the window (a pair that arrives too late is not counted)."""
        self._apply(scores, decisions, labels, ats, add=True)

    def revert(self, scores: Float64Array, decisions: BoolArray, labels: BoolArray, ats: Float64Array) -> None:
        """Remove pairs added before whose bucket is still in the window."""
        self._apply(scores, decisions, labels, ats, add=False)

    def _apply(
        self, scores: Float64Array, decisions: BoolArray, labels: BoolArray, ats: Float64Array, add: bool
    ) -> None:
        indices = np.floor(ats / self.bucket_seconds).astype(np.int64)
        # The floor only rises, so a pair inside now was inside when it was added.
        for index in set(indices[indices >= self._floor].tolist()):
            rows = indices == index
            bucket = self._buckets.get(index)
            if add and bucket is None:
                bucket = self._buckets[index] = Aggregate.zeros(self._layout, np.int32)
                heapq.heappush(self._heap, index)
            if bucket is not None:
                targets = [bucket, self.total]
                add_pairs(targets, self._layout, scores[rows], decisions[rows], labels[rows], sign=1 if add else -1)
                if bucket.n == 0:
                    del self._buckets[index]
