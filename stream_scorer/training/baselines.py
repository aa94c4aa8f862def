"""Baseline histograms of the training data, stored in the artifact for drift monitoring (pure).

:mod:`stream_scorer.model.baseline` reads them back and compares live windows with them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_scorer.batch import Float64Array
from stream_scorer.errors import TrainingError
from stream_scorer.model.baseline import PHASE_SLOTS, SCORE, FeatureHistogram, Seasonal, bin_counts, phase_slot
from stream_scorer.model.derive import PERIODS_MS
from stream_scorer.model.fitted_spec import FittedSpec


def baseline_histogram(name: str, values: npt.ArrayLike, bins: int = 10) -> FeatureHistogram:
    """The training distribution of one feature in at most ``bins`` bins of roughly equal share.

    A feature with at most ``bins`` distinct values gets one bin per value (a 0/1 feature gets exactly
    two, a constant feature one). Otherwise the edges are the distinct ``inverted_cdf`` quantiles at
    ``1/bins, ..., (bins-1)/bins`` below the maximum, so a value shared by many rows is never split.

    >>> baseline_histogram("flag", np.array([0.0, 1.0, 1.0, 0.0, 0.0]))
    FeatureHistogram(name='flag', edges=(0.0,), proportions=(0.6, 0.4), count=5, by_phase=None)
    >>> h = baseline_histogram("total", np.arange(100.0), bins=4)
    >>> h.edges, h.proportions
    ((24.0, 49.0, 74.0), (0.25, 0.25, 0.25, 0.25))
    """
    v = np.asarray(values, dtype=np.float64)
    if bins < 2:
        raise TrainingError(f"baseline histograms need bins >= 2, got {bins}")
    if v.ndim != 1 or len(v) == 0 or not np.all(np.isfinite(v)):
        raise TrainingError(f"baseline of {name!r}: values must be a non-empty 1-D array of finite numbers")
    distinct = np.unique(v)
    if len(distinct) <= bins:
        edges = distinct[:-1]
    else:
        cuts = np.unique(np.quantile(v, np.arange(1, bins) / bins, method="inverted_cdf"))
        edges = cuts[cuts < distinct[-1]]  # an edge at the maximum would leave the last bin empty
    hist = FeatureHistogram(name, tuple(edges.tolist()), (), len(v))
    proportions = bin_counts(hist, v) / len(v)
    return FeatureHistogram(name, hist.edges, tuple(proportions.tolist()), len(v))


def baselines(
    names: Sequence[str],
    matrix: Float64Array,
    scores: Float64Array,
    bins: int = 10,
    *,
    seasonal: Mapping[str, Seasonal] | None = None,
    event_time_ms: Float64Array | None = None,
) -> dict[str, Any]:
    """JSON-ready baselines of every feature column and of the model's score, keyed by name (``"score"``).

    The series named in ``seasonal`` (see :func:`seasonal_series`) keep it; one without a function also gets
    its rows counted by slot of its cycle, from ``event_time_ms`` (one epoch-millisecond time per row).

    >>> b = baselines(["flag"], np.array([[0.0], [1.0], [1.0]]), np.array([0.2, 0.7, 0.9]))
    >>> sorted(b), b["flag"]["proportions"]
    (['flag', 'score'], [0.3333333333333333, 0.6666666666666666])
    """
    if matrix.ndim != 2 or matrix.shape[1] != len(names) or scores.shape != (matrix.shape[0],):
        raise TrainingError(
            f"baselines need a (rows, {len(names)}) matrix and one score per row; got {matrix.shape} and {scores.shape}"
        )
    if SCORE in names or len(set(names)) != len(names):
        raise TrainingError(f"feature names must be distinct and not {SCORE!r}")
    seasonal = dict(seasonal or {})
    if event_time_ms is not None and event_time_ms.shape != scores.shape:
        raise TrainingError("seasonal baselines need one event time per row")
    columns = {name: matrix[:, j] for j, name in enumerate(names)} | {SCORE: scores}
    out = {}
    for name, values in columns.items():
        hist = baseline_histogram(name, values, bins)
        by_phase = seasonal.get(name)
        if by_phase is not None and by_phase.function is None:
            # It varies with the hour but is not a function of it: its rows by slot, each slot pooling about an
            # hour around it, so that a five-minute window is not compared with a handful of rows. Without
            # (complete) event times it keeps the plain comparison.
            pool = max(1, round(3600 * PHASE_SLOTS / by_phase.period_seconds))
            period = by_phase.period_seconds
            by_phase = None if event_time_ms is None else phase_counts(hist, values, event_time_ms, period, pool=pool)
        hist = dataclasses.replace(hist, by_phase=by_phase)
        out[name] = hist.to_dict()
    return out


def phase_counts(
    hist: FeatureHistogram, values: Float64Array, event_time_ms: Float64Array, period: int, *, pool: int = 1
) -> Seasonal:
    """How many of the rows fall in each (slot of the cycle, bin of ``hist``); with ``pool`` > 1, each slot
    counts the rows of the ``pool`` slots around it (``pool // 2`` before it, the rest from it on).

    >>> h = FeatureHistogram("x", (0.5,), (0.5, 0.5), 2)
    >>> pc = phase_counts(h, np.array([0.0, 1.0, 1.0]), np.array([0.0, 1000.0, 400_000.0]), 86_400)
    >>> pc.counts[:2]
    ((1, 1), (0, 1))
    >>> phase_counts(h, np.array([0.0, 1.0, 1.0]), np.array([0.0, 1000.0, 400_000.0]), 86_400, pool=3).counts[:3]
    ((1, 2), (1, 2), (0, 1))
    """
    slots = phase_slot(event_time_ms / 1000.0, period)
    bins = len(hist.proportions)
    index = slots * bins + np.searchsorted(np.asarray(hist.edges, np.float64), values, side="left")
    counts = np.bincount(index, minlength=PHASE_SLOTS * bins).reshape(PHASE_SLOTS, bins)
    if pool > 1:
        counts = np.sum([np.roll(counts, shift, axis=0) for shift in range(-(pool // 2), pool - pool // 2)], axis=0)
    return Seasonal(period, tuple(tuple(int(c) for c in row) for row in counts))


def seasonal_series(fitted: FittedSpec, time_column: str) -> dict[str, Seasonal]:
    """The series to compare by time of arrival: each cyclic feature of ``time_column`` (a function of that
    time), and the score when there is one (with the longest of their periods; its slots are counted later).

    A time-of-day feature of the event time is, by construction, the hour the event arrived: a window of an
    hour can only ever show one hour of the day, so it is compared with what that hour gives.
    A cyclic feature of another time (an account's opening, say) keeps the plain comparison.
    """
    series = {
        n.column: Seasonal(PERIODS_MS[n.derive.period][0] // 1000, function=n.derive)
        for n in fitted.numeric
        if n.derive is not None and n.derive.operation in ("sin", "cos") and n.derive.inputs == (time_column,)
    }
    if series:
        series[SCORE] = Seasonal(max(s.period_seconds for s in series.values()))
    return series
