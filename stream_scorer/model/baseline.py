"""Baseline histograms of the training data, stored in the manifest for drift monitoring (pure).

A :class:`FeatureHistogram` cuts the real line at interior ``edges`` ``e0 < e1 < ... < e_last`` into
the bins ``(-inf, e0], (e0, e1], ..., (e_last, inf)`` and keeps the share of training rows in each.
A live monitor counts a window of values into the same bins (:func:`bin_counts`) and compares the
two with the population stability index (:func:`psi`).

A seasonal series (a time-of-day or day-of-week feature of the event time, and the score of a model that
has one) also keeps a :class:`Seasonal`, so that a live window is compared with what the hours its events
arrived in should show instead of with the whole cycle: a cyclic feature of the event time is a function
of that time (:meth:`Seasonal.function_shares`); the score varies with it, and keeps its training rows per
bin in each of :data:`PHASE_SLOTS` slots of its cycle (:meth:`Seasonal.slot_shares`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_scorer.batch import Int64Array
from stream_scorer.errors import ModelArtifactError
from stream_scorer.model.derive import PERIODS_MS, Derivation, derivation_from_dict, derived

SCORE = "score"
PHASE_SLOTS = 288  # slots per cycle: 5 minutes of a day, 35 minutes of a week
_KEYS = frozenset({"edges", "proportions", "count"})
_PHASE_KEY = "by_phase"


def phase_slot(epoch_seconds: npt.ArrayLike, period_seconds: int) -> npt.NDArray[np.intp]:
    """The slot of the cycle that each UTC time falls in (0 .. PHASE_SLOTS - 1).

    >>> phase_slot([0.0, 299.9, 300.0, 86_399.0, 86_400.0], 86_400).tolist()
    [0, 0, 1, 287, 0]
    """
    t = np.asarray(epoch_seconds, dtype=np.float64)
    return (np.mod(t, period_seconds) * (PHASE_SLOTS / period_seconds)).astype(np.intp) % PHASE_SLOTS


@dataclass(frozen=True, slots=True)
class Seasonal:
    """A series compared by the time of day (or week) its window's events arrived, over a cycle of ``period_seconds``.

    Either ``function`` (a cyclic derivation: the series *is* that function of the arrival time) or
    ``counts``, the training rows by slot of the cycle and by bin (``counts[slot][bin]``).
    """

    period_seconds: int
    counts: tuple[tuple[int, ...], ...] = ()
    function: Derivation | None = None

    def function_shares(
        self, edges: npt.ArrayLike, epoch_seconds: npt.ArrayLike, weights: npt.ArrayLike
    ) -> npt.NDArray[np.float64]:
        """The shares of the bins cut at ``edges`` that the function takes at the given times, so weighted.

        >>> day = Seasonal(86_400, function=Derivation("sin", ("t",), period="day"))
        >>> day.function_shares([0.0], [21_600.0, 64_800.0, 0.0], [3.0, 1.0, 0.0]).tolist()  # 6:00, 18:00
        [0.25, 0.75]
        """
        assert self.function is not None
        values = derived(self.function, {self.function.inputs[0]: np.asarray(epoch_seconds, np.float64) * 1000.0})
        w = np.asarray(weights, dtype=np.float64)
        index = np.searchsorted(np.asarray(edges, np.float64), values, side="left")
        counts = np.bincount(index, weights=w, minlength=len(np.atleast_1d(edges)) + 1)
        return counts / w.sum() if w.sum() > 0 else np.full(len(counts), 1.0 / len(counts))

    def slot_shares(self, slot_weights: npt.ArrayLike, overall: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The shares a window should show when its rows arrived in the slots as ``slot_weights`` says.

        Each slot contributes its own training shares, weighted by the window's rows in it; a slot with no
        training row contributes ``overall`` (the whole cycle's shares) instead; so does a window without weight.

        >>> pc = Seasonal(86_400, ((3, 1),) + ((0, 0),) * 287)
        >>> pc.slot_shares([2.0] + [0.0] * 286 + [2.0], [0.5, 0.5]).tolist()
        [0.625, 0.375]
        """
        weights = np.asarray(slot_weights, dtype=np.float64)
        counts = np.asarray(self.counts, dtype=np.float64)
        rows = counts.sum(axis=1, keepdims=True)
        shares = np.divide(counts, rows, out=np.tile(np.asarray(overall, np.float64), (len(counts), 1)), where=rows > 0)
        total = weights.sum()
        return weights @ shares / total if total > 0 else np.asarray(overall, np.float64)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored under the baseline's ``by_phase``."""
        out: dict[str, Any] = {"period_seconds": self.period_seconds}
        if self.function is not None:
            out["function"] = self.function.to_dict()
        else:
            out["counts"] = [list(row) for row in self.counts]
        return out


def expected_shares(
    hist: FeatureHistogram, arrived: npt.ArrayLike, events: npt.ArrayLike, spanned_seconds: float
) -> npt.ArrayLike:
    """The shares of ``hist``'s bins a live window should show: the training's over the whole cycle, or, for a
    seasonal series whose window has not yet held a whole cycle (``spanned_seconds``), those of the hours its
    events arrived in (``events`` of them at each of the epoch-second times ``arrived``)."""
    seasonal = hist.by_phase
    if seasonal is None or spanned_seconds >= seasonal.period_seconds:
        return hist.proportions
    if seasonal.function is not None:
        return seasonal.function_shares(hist.edges, arrived, events)
    slots = phase_slot(arrived, seasonal.period_seconds)
    by_slot = np.bincount(slots, weights=np.asarray(events, np.float64), minlength=PHASE_SLOTS)
    return seasonal.slot_shares(by_slot, hist.proportions)


@dataclass(frozen=True, slots=True)
class FeatureHistogram:
    """Bins ``(-inf, edges[0]], ..., (edges[-1], inf)`` and the share of ``count`` training rows in each."""

    name: str
    edges: tuple[float, ...]
    proportions: tuple[float, ...]
    count: int
    by_phase: Seasonal | None = None  # a seasonal series: how its window is compared by time of arrival

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in the manifest (the name is the key it is stored under)."""
        out: dict[str, Any] = {"edges": list(self.edges), "proportions": list(self.proportions), "count": self.count}
        if self.by_phase is not None:
            out[_PHASE_KEY] = self.by_phase.to_dict()
        return out


def bin_counts(hist: FeatureHistogram, values: npt.ArrayLike) -> Int64Array:
    """How many of ``values`` fall in each of ``hist``'s bins (NaN values are not counted).

    >>> h = FeatureHistogram("x", edges=(0.0, 10.0), proportions=(0.2, 0.5, 0.3), count=10)
    >>> bin_counts(h, np.array([-1.0, 0.0, 0.5, 10.0, 11.0, np.nan])).tolist()
    [2, 2, 1]
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    # side="left": a value equal to an edge belongs to the bin the edge closes, (e_prev, e].
    index = np.searchsorted(np.asarray(hist.edges, dtype=np.float64), v, side="left")
    return np.bincount(index, minlength=len(hist.edges) + 1).astype(np.int64)


def psi(expected_proportions: npt.ArrayLike, actual_counts: npt.ArrayLike, epsilon: float = 1e-4) -> float:
    """Population stability index ``sum((a - e) * ln(a / e))`` of the actual against the expected shares.

    So that an empty bin does not give an infinite index, both distributions are smoothed: ``epsilon``
    is added to every bin's share, then the shares are renormalized to sum to 1. ``nan`` when there
    are no actual counts. Raises ``ValueError`` when the arrays do not match (a caller's bug).

    >>> psi([0.5, 0.5], [50, 50])
    0.0
    >>> round(psi([0.5, 0.5], [90, 10]), 4)
    0.8784
    >>> psi([0.5, 0.5], [0, 0])
    nan
    """
    e = np.asarray(expected_proportions, dtype=np.float64)
    counts = np.asarray(actual_counts, dtype=np.float64)
    if e.ndim != 1 or e.shape != counts.shape or len(e) == 0:
        raise ValueError(f"psi needs 1-D arrays of equal, non-zero length; got {e.shape} and {counts.shape}")
    if not (epsilon > 0 and np.all(e >= 0) and np.all(counts >= 0)):
        raise ValueError("psi needs non-negative proportions and counts and epsilon > 0")
    total = counts.sum()
    if total == 0:
        return float("nan")
    e = (e + epsilon) / np.sum(e + epsilon)
    a = counts / total
    a = (a + epsilon) / np.sum(a + epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def baselines_from_dict(d: object) -> dict[str, FeatureHistogram]:
    """Read :func:`baselines`'s form; raise :class:`ModelArtifactError` saying what is wrong.

    >>> baselines_from_dict({"x": {"edges": [1.0], "proportions": [0.5, 0.6], "count": 10}})
    Traceback (most recent call last):
    ...
    stream_scorer.errors.ModelArtifactError: baseline 'x': proportions must sum to 1, not 1.1
    """
    if not isinstance(d, Mapping):
        raise ModelArtifactError(f"baselines must be a JSON object, not {type(d).__name__}")
    return {str(name): _histogram(str(name), entry) for name, entry in d.items()}


def _histogram(name: str, entry: object) -> FeatureHistogram:
    where = f"baseline {name!r}"
    if not isinstance(entry, Mapping) or not _KEYS <= set(entry) <= _KEYS | {_PHASE_KEY}:
        raise ModelArtifactError(f"{where}: expected an object with the keys {sorted(_KEYS)} (and {_PHASE_KEY!r})")
    edges, proportions, count = entry["edges"], entry["proportions"], entry["count"]
    if not isinstance(edges, list | tuple) or not isinstance(proportions, list | tuple):
        raise ModelArtifactError(f"{where}: edges and proportions must be lists of numbers")
    e = tuple(_number(v, where, "edges") for v in edges)
    p = tuple(_number(v, where, "proportions") for v in proportions)
    if any(b <= a for a, b in itertools.pairwise(e)):
        raise ModelArtifactError(f"{where}: edges must be strictly increasing")
    if len(p) != len(e) + 1:
        raise ModelArtifactError(f"{where}: {len(e)} edges need {len(e) + 1} proportions, got {len(p)}")
    if not all(0.0 <= v <= 1.0 for v in p):
        raise ModelArtifactError(f"{where}: proportions must be in [0, 1]")
    if abs(math.fsum(p) - 1.0) > 1e-9:
        raise ModelArtifactError(f"{where}: proportions must sum to 1, not {math.fsum(p):.12g}")
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise ModelArtifactError(f"{where}: count must be a positive integer, got {count!r}")
    by_phase = _seasonal(where, entry[_PHASE_KEY], len(p)) if _PHASE_KEY in entry else None
    return FeatureHistogram(name, e, p, count, by_phase)


def _seasonal(where: str, entry: object, bins: int) -> Seasonal:
    period = entry.get("period_seconds") if isinstance(entry, Mapping) else None
    if isinstance(period, bool) or not isinstance(period, int) or period <= 0:
        raise ModelArtifactError(f"{where}: {_PHASE_KEY}.period_seconds must be a positive integer, got {period!r}")
    assert isinstance(entry, Mapping)
    if "function" in entry:
        function = entry["function"]
        d = derivation_from_dict(function) if isinstance(function, Mapping) else None
        if d is None or d.operation not in ("sin", "cos") or PERIODS_MS[d.period][0] != period * 1000:
            raise ModelArtifactError(f"{where}: {_PHASE_KEY}.function must be a cyclic derivation of that period")
        return Seasonal(period, function=d)
    counts = entry.get("counts")
    if not isinstance(counts, list) or len(counts) != PHASE_SLOTS:
        raise ModelArtifactError(f"{where}: {_PHASE_KEY}.counts must be a list of {PHASE_SLOTS} slots")
    if not all(
        isinstance(row, list)
        and len(row) == bins
        and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in row)
        for row in counts
    ):
        raise ModelArtifactError(f"{where}: each slot of {_PHASE_KEY}.counts needs {bins} non-negative integers")
    return Seasonal(period, tuple(tuple(row) for row in counts))


def _number(value: object, where: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ModelArtifactError(f"{where}: {what} must be finite numbers, got {value!r}")
    return float(value)
