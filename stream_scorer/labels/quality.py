"""Rolling model quality over joined (score, label) pairs, per model version and per window.

The join layer calls :meth:`RollingQuality.observe_many` with the pairs it joined; a scrape reads
:meth:`RollingQuality.snapshot`, computed from running sums in O(bins) (see ``labels.aggregates`` for
the metrics and ``labels.windows`` for count and time windows).

Last label wins: observing a key (event id) again for the same model version reverts its earlier pair
from every window still holding it, then adds the new pair as a new arrival. To find the earlier pair,
each series indexes ``key -> (score, decision, label, arrival, seq)`` for the pairs still inside some
window, in arrival order; entries leave from the oldest once no window holds them. That costs about
250 bytes per indexed pair (tuple, floats, ordered-dict node; measured) plus the key string (~85 bytes
for a UUID), for ``max(largest count window, pairs arriving within the longest time window)`` pairs: a
24 h window at 100 labels/s would index 8.6 M pairs, ~2.9 GB: so the index is capped at ``max_indexed``
keys per series (default 200,000, ~70 MB), oldest out first. A label contradicting a pair that has left the
index is added as a new pair (the earlier one stays counted until its windows drop it); the join layer
still counts it as contradicting. Out-of-order arrival times can delay an entry's eviction.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from stream_scorer.batch import BoolArray, Float64Array
from stream_scorer.labels.aggregates import Layout, WindowMetrics, read_metrics
from stream_scorer.labels.windows import CountWindow, TimeWindow

__all__ = ["RollingQuality", "WindowMetrics", "WindowSpec"]

_BUFFERED = 256  # single observations applied as one batch (a vectorized pass costs ~30 µs, a pair ~1 µs)
# (score, decision, label, arrival time, seq) of a key's latest pair.
_Entry = tuple[float, bool, bool, float, int]


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """A named window: the last ``count`` labels, or the labels that arrived in the last ``seconds``.

    ``bucket_seconds`` overrides the time bucket width of a time window (e.g. 600 for a day).
    """

    name: str
    count: int | None = None
    seconds: float | None = None
    bucket_seconds: float | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("WindowSpec needs a name, e.g. WindowSpec('1h', seconds=3600)")
        if (self.count is None) == (self.seconds is None):
            raise ValueError(f"window {self.name!r}: set exactly one of count= (labels) or seconds=")
        if self.count is not None and self.count < 1:
            raise ValueError(f"window {self.name!r}: count must be >= 1, got {self.count}")
        if self.seconds is not None and not (math.isfinite(self.seconds) and self.seconds > 0):
            raise ValueError(f"window {self.name!r}: seconds must be finite and > 0, got {self.seconds}")
        if self.bucket_seconds is not None and (self.seconds is None or not 0 < self.bucket_seconds <= self.seconds):
            raise ValueError(f"window {self.name!r}: bucket_seconds needs seconds= and must be in (0, seconds]")


class _Series:
    """The windows and replacement index of one (model, version)."""

    def __init__(
        self, specs: Sequence[WindowSpec], layout: Layout, bucket_seconds: float, max_indexed: int = 200_000
    ) -> None:
        self.max_indexed = max_indexed
        self.windows: list[tuple[str, CountWindow | TimeWindow]] = [
            (
                spec.name,
                CountWindow(spec.count, layout)
                if spec.count is not None
                else TimeWindow(spec.seconds or 0.0, spec.bucket_seconds or bucket_seconds, layout),
            )
            for spec in specs
        ]
        self.counts = [w for _, w in self.windows if isinstance(w, CountWindow)]
        self.times = [w for _, w in self.windows if isinstance(w, TimeWindow)]
        self.index: OrderedDict[str, _Entry] = OrderedDict()
        self.seq = 0
        self.pending: list[tuple[str, float, bool, bool, float]] = []  # single observations not yet applied

    def flush(self, now: float) -> None:
        """Evict what ``now`` has pushed out, then apply the pending single observations as one batch."""
        self.advance(now)  # first, so that a pair already out of a time window is not added
        if self.pending:
            keys, scores, decisions, labels, ats = zip(*self.pending, strict=True)
            self.pending = []
            self.observe(keys, np.array(scores), np.array(decisions), np.array(labels), np.array(ats))
            self.advance(now)  # then, to forget the keys the batch pushed out of the count windows

    def observe(
        self, keys: Sequence[str], scores: Float64Array, decisions: BoolArray, labels: BoolArray, ats: Float64Array
    ) -> None:
        first = self.seq
        live = np.ones(len(keys), dtype=np.bool_)
        replaced: list[_Entry] = []
        rows = zip(keys, scores.tolist(), decisions.tolist(), labels.tolist(), ats.tolist(), strict=True)
        for seq, (key, score, decision, label, at) in enumerate(rows, start=first):
            previous = self.index.pop(key, None)
            if previous is not None:
                if previous[4] >= first:
                    live[previous[4] - first] = False  # superseded within this batch: never added
                else:
                    replaced.append(previous)
            self.index[key] = (score, decision, label, at, seq)
        if replaced:
            old_scores, old_decisions, old_labels, old_ats, old_seqs = (
                np.array(c) for c in zip(*replaced, strict=True)
            )
            for count_window in self.counts:
                count_window.revert(old_seqs)
            for time_window in self.times:
                time_window.revert(old_scores, old_decisions, old_labels, old_ats)
        for count_window in self.counts:
            count_window.push(scores, decisions, labels, live)
        for time_window in self.times:
            time_window.add(scores[live], decisions[live], labels[live], ats[live])
        self.seq += len(keys)

    def advance(self, now: float) -> None:
        for time_window in self.times:
            time_window.advance(now)
        oldest_counted = self.seq - max((w.count for w in self.counts), default=0)
        while self.index:
            entry = self.index[next(iter(self.index))]
            if entry[4] >= oldest_counted or any(w.holds(entry[3]) for w in self.times):
                break
            self.index.popitem(last=False)
        while len(self.index) > self.max_indexed:  # the memory cap: the oldest can no longer be replaced
            self.index.popitem(last=False)


class RollingQuality:
    """Rolling quality metrics per (model, version, window), fed joined pairs and read at scrape time.

    Thread-safe: the worker observes while the metrics endpoint snapshots.

    >>> quality = RollingQuality([WindowSpec("10k", count=10_000), WindowSpec("1h", seconds=3600)], clock=lambda: 0.0)
    >>> quality.observe("e1", "fraud", "3", 0.9, True, 1, 0.0)
    >>> quality.observe("e2", "fraud", "3", 0.7, True, 0, 0.0)
    >>> [(m.window, m.n, m.precision, m.recall) for m in quality.snapshot()]
    [('10k', 2, 0.5, 1.0), ('1h', 2, 0.5, 1.0)]
    >>> quality.observe("e2", "fraud", "3", 0.7, True, 1, 1.0)  # the label was wrong
    >>> [(m.window, m.n, m.precision, m.auc) for m in quality.snapshot()]
    [('10k', 2, 1.0, nan), ('1h', 2, 1.0, nan)]
    """

    def __init__(
        self,
        windows: Sequence[WindowSpec],
        *,
        bins: int = 10,
        auc_bins: int = 1000,
        k_percents: Sequence[float] = (1.0, 5.0),
        bucket_seconds: float = 60.0,
        max_indexed: int = 200_000,
        retire_after_seconds: float = 86_400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not windows or len({w.name for w in windows}) != len(windows):
            raise ValueError(
                f"RollingQuality needs at least one window and unique names, got {[w.name for w in windows]}"
            )
        if not all(0 < k <= 100 for k in k_percents):
            raise ValueError(f"k_percents must be in (0, 100], got {tuple(k_percents)}")
        if not (math.isfinite(bucket_seconds) and bucket_seconds > 0):
            raise ValueError(f"bucket_seconds must be finite and > 0, got {bucket_seconds}")
        self._specs = tuple(windows)
        self._layout = Layout(bins, auc_bins)
        self._k_percents = tuple(float(k) for k in k_percents)
        self._bucket_seconds = bucket_seconds
        self._max_indexed = max_indexed
        self._retire_after = retire_after_seconds  # a model version without a new pair this long is dropped
        self._last_seen: dict[tuple[str, str], float] = {}
        self._clock = clock
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str], _Series] = {}

    def observe(self, key: str, model: str, version: str, score: float, decision: bool, label: int, at: float) -> None:
        """Observe one joined pair; ``at`` is the label's arrival time in seconds. Raises ``ValueError`` on bad input.

        Buffered: up to 256 pairs a series are applied together, in order, before any read or batch of it.
        """
        if not (0.0 <= score <= 1.0 and label in (0, 1) and math.isfinite(at)):
            raise ValueError(
                f"need a score in [0, 1], a 0/1 label, a finite time; got {score}, {label}, {at} ({model})"
            )
        with self._lock:
            series = self._get(model, version)
            series.pending.append((key, float(score), bool(decision), label == 1, float(at)))
            if len(series.pending) >= _BUFFERED:
                series.flush(self._clock())

    def observe_many(
        self,
        keys: Sequence[str],
        model: str,
        version: str,
        *,
        scores: npt.ArrayLike,
        decisions: npt.ArrayLike,
        labels: npt.ArrayLike,
        ats: npt.ArrayLike,
    ) -> None:
        """Observe a batch of joined pairs of one model version, in arrival order (a later duplicate key wins).

        ``scores`` in [0, 1]; ``decisions`` the model's decision per pair (score >= its threshold);
        ``labels`` 0 or 1; ``ats`` the labels' arrival times in seconds. Raises ``ValueError`` otherwise.
        """
        score = np.asarray(scores, dtype=np.float64)
        decision = np.asarray(decisions, dtype=np.bool_)
        label_values = np.asarray(labels)
        at = np.asarray(ats, dtype=np.float64)
        if not len(keys) == len(score) == len(decision) == len(label_values) == len(at):
            raise ValueError("observe_many needs one key, score, decision, label and time per pair")
        if not np.all((score >= 0.0) & (score <= 1.0)):
            raise ValueError(f"scores must be probabilities in [0, 1] ({model} {version})")
        if not np.all((label_values == 0) | (label_values == 1)):
            raise ValueError(f"labels must be 0 or 1 ({model} {version})")
        if not np.all(np.isfinite(at)):
            raise ValueError(f"label arrival times must be finite ({model} {version})")
        now = self._clock()
        with self._lock:
            series = self._get(model, version)
            series.flush(now)
            series.observe(keys, score, decision, label_values.astype(np.bool_), at)
            series.advance(now)

    def snapshot(self) -> list[WindowMetrics]:
        """Every metric of every (model, version, window), after evicting what the clock has pushed out."""
        now = self._clock()
        with self._lock:
            for retired in [k for k, at in self._last_seen.items() if now - at > self._retire_after]:
                del self._series[retired], self._last_seen[retired]  # a retired model version stops exporting
            out = []
            for (model, version), series in self._series.items():
                series.flush(now)
                for name, window in series.windows:
                    out.append(
                        read_metrics(
                            window.total, self._layout, self._k_percents, model=model, version=version, window=name
                        )
                    )
            return out

    def indexed(self) -> int:
        """How many keys are indexed for replacement, over every series (the memory that replacement costs)."""
        now = self._clock()
        with self._lock:
            for series in self._series.values():
                series.flush(now)
            return sum(len(series.index) for series in self._series.values())

    def _get(self, model: str, version: str) -> _Series:
        self._last_seen[(model, version)] = self._clock()
        series = self._series.get((model, version))
        if series is None:
            series = _Series(self._specs, self._layout, self._bucket_seconds, self._max_indexed)
            self._series[(model, version)] = series
        return series
