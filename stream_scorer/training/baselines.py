"""Baseline histograms of the training data, stored in the artifact for drift monitoring (pure).

:mod:`stream_scorer.model.baseline` reads them back and compares live windows with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_scorer.batch import Float64Array
from stream_scorer.errors import TrainingError
from stream_scorer.model.baseline import SCORE, FeatureHistogram, bin_counts


def baseline_histogram(name: str, values: npt.ArrayLike, bins: int = 10) -> FeatureHistogram:
    """The training distribution of one feature in at most ``bins`` bins of roughly equal share.

    A feature with at most ``bins`` distinct values gets one bin per value (a 0/1 feature gets exactly
    two, a constant feature one). Otherwise the edges are the distinct ``inverted_cdf`` quantiles at
    ``1/bins, ..., (bins-1)/bins`` below the maximum, so a value shared by many rows is never split.

    >>> baseline_histogram("flag", np.array([0.0, 1.0, 1.0, 0.0, 0.0]))
    FeatureHistogram(name='flag', edges=(0.0,), proportions=(0.6, 0.4), count=5)
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


def baselines(names: Sequence[str], matrix: Float64Array, scores: Float64Array, bins: int = 10) -> dict[str, Any]:
    """JSON-ready baselines of every feature column and of the model's score, keyed by name (``"score"``).

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
    out = {name: baseline_histogram(name, matrix[:, j], bins).to_dict() for j, name in enumerate(names)}
    out[SCORE] = baseline_histogram(SCORE, scores, bins).to_dict()
    return out
