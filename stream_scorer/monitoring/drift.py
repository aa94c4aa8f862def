"""Live drift of the model's inputs and score against the training baselines, over sliding time windows.

:class:`DriftMonitor` counts each micro-batch into the bins of the baselines stored in the model
artifact (:mod:`stream_scorer.model.baseline`): the bins follow the baseline's own ``edges``, so a
live window and the training data are always compared bin for bin. Counts are kept per time bucket
(``bucket_seconds``) in a ring, and every window keeps a running total: a batch is added to its
bucket and to every window's total, and a bucket is subtracted from a window's total when it leaves
that window. Reading therefore costs one PSI per (series, window) on the totals, never a pass over
past events, and memory is ``O(buckets x series x bins)``.

A window of ``w`` seconds holds the current bucket and the ``w / bucket_seconds - 1`` before it, so it
covers between ``w - bucket_seconds`` and ``w`` seconds of traffic.

Empty bins: :func:`~stream_scorer.model.baseline.psi` adds ``epsilon`` (1e-4) to the share of every
bin of both distributions and renormalizes them to sum to 1, so a bin that is empty on either side
gives a large but finite term instead of an infinite index. An empty window gives ``nan`` for every
series, with ``events == 0`` as its support, never 0.

The KS statistic reported here is the *binned* Kolmogorov-Smirnov distance: the largest gap between
the baseline's and the window's cumulative shares at the baseline's edges. It never exceeds the
exact KS distance of the raw values (the CDFs are compared at the edges only).

Seasonal series (a time-of-day or day-of-week feature of the event time, and then the score: see
:func:`~stream_scorer.training.baselines.seasonal_series`) are compared with what the hours the window's
events arrived in should show, not with the whole cycle. Each bucket keeps the mean wall-clock time its
events arrived. A cyclic feature's expected shares are the bins its function takes at those times; the
score's are the training shares of each slot of the cycle, weighted by the window's events in that slot
(:class:`~stream_scorer.model.baseline.Seasonal`). A window that holds a whole cycle of traffic (as long
as the cycle, and open that long) is compared with the whole cycle.

Features the artifact has no baseline for (older artifacts) are skipped; so is the score.
:class:`DriftCollector` exports the current monitor's numbers at scrape time.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from stream_scorer.batch import Float64Array, Int64Array
from stream_scorer.model.baseline import SCORE, FeatureHistogram, baselines_from_dict, expected_shares, psi

FEATURE_PSI = "stream_scorer_feature_psi"
PREDICTION_PSI = "stream_scorer_prediction_psi"
WINDOW_EVENTS = "stream_scorer_drift_window_events"
FEATURE_KS = "stream_scorer_feature_ks"
DEFAULT_WINDOWS = (300.0, 3600.0)
_NEVER = np.iinfo(np.int64).min  # the bucket id of a ring slot that was never written


@dataclass(frozen=True, slots=True)
class WindowDrift:
    """One sliding window against the baseline: PSI of every tracked series, binned KS of every feature.

    ``psi`` is keyed by feature name and ``"score"``; ``ks`` by feature name. Both are ``nan`` when
    ``events`` (the rows observed in the window) is 0.
    """

    seconds: int
    label: str
    events: int
    psi: dict[str, float]
    ks: dict[str, float]


def window_label(seconds: int) -> str:
    """The label value of a window: the largest unit that divides it.

    >>> [window_label(s) for s in (300, 3600, 5400, 86400, 45)]
    ['5m', '1h', '90m', '1d', '45s']
    """
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def binned_ks(expected_proportions: npt.ArrayLike, actual_counts: npt.ArrayLike) -> float:
    """Largest gap between the cumulative shares of two binnings of the same edges; ``nan`` without counts.

    >>> binned_ks([0.5, 0.5], [50, 50])
    0.0
    >>> binned_ks([0.25, 0.25, 0.5], [0, 10, 10])
    0.25
    >>> binned_ks([1.0], [0])
    nan
    """
    e = np.asarray(expected_proportions, dtype=np.float64)
    counts = np.asarray(actual_counts, dtype=np.float64)
    total = counts.sum()
    if total == 0:
        return float("nan")
    gap = np.abs(np.cumsum(e)[:-1] - np.cumsum(counts)[:-1] / total)
    return float(gap.max()) if len(gap) else 0.0


class DriftMonitor:
    """Binned counts of the model's features and score over sliding windows, compared with the baselines.

    ``baselines`` is the artifact's dict form (keyed by feature name and ``"score"``); ``feature_names``
    is the column order of the matrices passed to :meth:`observe`. Raises
    :class:`~stream_scorer.errors.ModelArtifactError` for malformed baselines and ``ValueError`` for
    windows that are not distinct positive multiples of ``bucket_seconds``. Thread-safe: the worker
    observes while the metrics endpoint reads.

    >>> clock = iter([0.0, 1.0, 2.0, 400.0]).__next__
    >>> b = {"x": {"edges": [0.0], "proportions": [0.5, 0.5], "count": 10}}
    >>> m = DriftMonitor(b, ["x"], clock=clock)
    >>> m.observe(np.array([[-1.0], [1.0]]), np.array([0.1, 0.9]))
    >>> [(w.label, w.events, w.psi) for w in m.psi()]
    [('5m', 2, {'x': 0.0}), ('1h', 2, {'x': 0.0})]
    >>> [(w.label, w.events) for w in m.psi()]
    [('5m', 0), ('1h', 2)]
    """

    def __init__(
        self,
        baselines: Mapping[str, object],
        feature_names: Sequence[str],
        *,
        windows: Sequence[float] = DEFAULT_WINDOWS,
        bucket_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if bucket_seconds <= 0:
            raise ValueError(f"bucket_seconds must be a positive number of seconds, got {bucket_seconds}")
        if not windows or len(set(windows)) != len(windows):
            raise ValueError(f"windows must be distinct, at least one; got {tuple(windows)}")
        spans = [round(w / bucket_seconds) for w in windows]
        if any(
            w <= 0 or w != int(w) or not math.isclose(span * bucket_seconds, w)
            for w, span in zip(windows, spans, strict=True)
        ):
            raise ValueError(
                f"windows must be whole seconds and multiples of bucket_seconds={bucket_seconds}; got {tuple(windows)}"
            )
        hists = baselines_from_dict(dict(baselines))
        # Each tracked series: its column (-1 for the score), its baseline, and where its bins start.
        series = [(j, hists[name]) for j, name in enumerate(feature_names) if name in hists and name != SCORE]
        if SCORE in hists:
            series.append((-1, hists[SCORE]))
        self.features = tuple(h.name for j, h in series if j >= 0)
        self.windows = tuple(int(w) for w in windows)  # whole seconds, for the labels
        self._k = len(feature_names)
        tracked = [j for j, _ in series if j >= 0]
        self._n_features = len(tracked)
        self._features = None if tracked == list(range(self._k)) else np.asarray(tracked, np.intp)
        self._bucket_seconds = bucket_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._hists: tuple[FeatureHistogram, ...] = tuple(h for _, h in series)
        self._columns = tuple(j for j, _ in series)
        self._edges = tuple(np.asarray((*h.edges, np.inf), dtype=np.float64) for h in self._hists)
        sizes = [len(h.proportions) for h in self._hists]
        self._starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)
        self._bins = int(self._starts[-1])
        self._spans = tuple(spans)
        ring = max(self._spans)
        self._lock = threading.Lock()
        self._ring = np.zeros((ring, self._bins), np.int64)
        self._ring_events = np.zeros(ring, np.int64)
        self._ring_ids = np.full(ring, _NEVER, np.int64)
        self._ring_wall = np.zeros(ring, np.float64)  # the wall-clock time each bucket opened (seasonal series)
        self._ring_late = np.zeros(ring, np.float64)  # and the sum, over its events, of their arrival after that
        self._totals = np.zeros((len(self.windows), self._bins), np.int64)
        self._events = np.zeros(len(self.windows), np.int64)
        self._head = self._bucket(clock())
        self._low = [self._head - span + 1 for span in self._spans]  # oldest bucket each window holds

    def observe(self, matrix: Float64Array, scores: Float64Array) -> None:
        """Add one batch: ``matrix`` is (rows, features) in ``feature_names`` order, ``scores`` one per row."""
        n = scores.shape[0] if scores.ndim == 1 else -1
        if matrix.shape != (n, self._k):
            raise ValueError(f"observe needs a (rows, {self._k}) matrix and one score per row; got {matrix.shape}")
        if n == 0:
            return
        counts = self._count(matrix, scores)
        bucket, wall = self._bucket(self._clock()), self._wall_clock()
        with self._lock:
            self._advance(bucket)
            slot = self._head % len(self._ring)
            if self._ring_ids[slot] != self._head:
                self._ring[slot] = 0
                self._ring_events[slot] = 0
                self._ring_ids[slot] = self._head
                self._ring_wall[slot] = wall
                self._ring_late[slot] = 0.0
            self._ring_late[slot] += (wall - self._ring_wall[slot]) * n
            self._ring[slot] += counts
            self._ring_events[slot] += n
            self._totals += counts
            self._events += n

    def psi(self) -> tuple[WindowDrift, ...]:
        """PSI (and binned KS) of every tracked series in every window, as of now."""
        bucket = self._bucket(self._clock())
        with self._lock:
            self._advance(bucket)
            totals, events = self._totals.copy(), self._events.copy()
            ids, ring_events = self._ring_ids.copy(), self._ring_events.copy()
            arrived = self._ring_wall + self._ring_late / np.maximum(self._ring_events, 1)  # mean arrival time
            lows, head = list(self._low), self._head
        out = []
        for w, seconds in enumerate(self.windows):
            psis: dict[str, float] = {}
            kss: dict[str, float] = {}
            inside = (ids >= lows[w]) & (ids <= head)
            times, weights = arrived[inside], ring_events[inside]
            spanned = (head - ids[inside].min() + 1) * self._bucket_seconds if inside.any() else 0.0
            for i, (hist, column) in enumerate(zip(self._hists, self._columns, strict=True)):
                counts = totals[w, self._starts[i] : self._starts[i + 1]]
                expected = expected_shares(hist, times, weights, spanned)
                psis[hist.name] = psi(expected, counts)
                if column >= 0:
                    kss[hist.name] = binned_ks(expected, counts)
            out.append(WindowDrift(seconds, window_label(seconds), int(events[w]), psis, kss))
        return tuple(out)

    def _bucket(self, now: float) -> int:
        return int(now // self._bucket_seconds)

    def _count(self, matrix: Float64Array, scores: Float64Array) -> Int64Array:
        """Bin counts of every series, laid end to end.

        Each column is sorted once, then one searchsorted of its (few) edges into it counts the values
        at or below every edge: far cheaper than searching every value among the edges. NaN sorts
        last, past the ``inf`` closing the last bin, so it is not counted.
        """
        features = self._features
        columns = np.empty((len(self._columns), len(scores)), np.float64)
        columns[: self._n_features] = matrix.T if features is None else matrix.T[features]
        if self._n_features < len(self._columns):
            columns[-1] = scores
        columns.sort(axis=1)
        at_or_below = np.empty(self._bins, np.int64)
        for row, edges, start in zip(columns, self._edges, self._starts[:-1].tolist(), strict=True):
            # side="right": a value equal to an edge is in the bin that edge closes, (e_prev, e], as in bin_counts.
            at_or_below[start : start + len(edges)] = np.searchsorted(row, edges, side="right")
        counts = at_or_below.copy()
        counts[1:] -= at_or_below[:-1]
        firsts = self._starts[:-1]
        counts[firsts] = at_or_below[firsts]
        return counts

    def _advance(self, bucket: int) -> None:
        """Move the head to ``bucket``, subtracting from each window the buckets that leave it (lock held)."""
        if bucket <= self._head:
            return  # same bucket, or a clock that stepped back: count it in the current bucket
        ring = len(self._ring)
        for w, span in enumerate(self._spans):
            low = bucket - span + 1
            if low > self._head:
                self._totals[w] = 0
                self._events[w] = 0
            else:
                for old in range(self._low[w], low):
                    slot = old % ring
                    if self._ring_ids[slot] == old:
                        self._totals[w] -= self._ring[slot]
                        self._events[w] -= self._ring_events[slot]
            self._low[w] = low
        self._head = bucket


class DriftSource(Protocol):
    """What serves a model (the worker): its current drift monitor, ``None`` when it has no baselines."""

    def current_drift(self) -> DriftMonitor | None: ...


class DriftCollector(Collector):
    """Exports the served model's drift at scrape time.

    The worker swaps monitors on a model reload, so each scrape asks ``source`` for the current one:
    series of features the new model does not have disappear with it.
    """

    def __init__(self, source: DriftSource, *, registry: CollectorRegistry) -> None:
        self._source = source
        registry.register(self)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        feature_psi, prediction_psi, events, feature_ks = self._families()
        monitor = self._source.current_drift()
        for window in monitor.psi() if monitor is not None else ():
            events.add_metric([window.label], window.events)
            for name, value in window.psi.items():
                if name == SCORE:
                    prediction_psi.add_metric([window.label], value)
                else:
                    feature_psi.add_metric([name, window.label], value)
            for name, value in window.ks.items():
                feature_ks.add_metric([name, window.label], value)
        yield from (feature_psi, prediction_psi, events, feature_ks)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families()

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                FEATURE_PSI,
                "PSI of each model feature in a sliding window against training.",
                labels=["feature", "window"],
            ),
            GaugeMetricFamily(PREDICTION_PSI, "PSI of the champion's score against training.", labels=["window"]),
            GaugeMetricFamily(
                WINDOW_EVENTS, "Rows observed in each drift window (the PSI's support).", labels=["window"]
            ),
            GaugeMetricFamily(
                FEATURE_KS, "Binned KS distance of each model feature against training.", labels=["feature", "window"]
            ),
        )
