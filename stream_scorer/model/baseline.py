"""Baseline histograms of the training data, stored in the manifest for drift monitoring (pure).

A :class:`FeatureHistogram` cuts the real line at interior ``edges`` ``e0 < e1 < ... < e_last`` into
the bins ``(-inf, e0], (e0, e1], ..., (e_last, inf)`` and keeps the share of training rows in each.
A live monitor counts a window of values into the same bins (:func:`bin_counts`) and compares the
two with the population stability index (:func:`psi`).
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

SCORE = "score"
_KEYS = frozenset({"edges", "proportions", "count"})


@dataclass(frozen=True, slots=True)
class FeatureHistogram:
    """Bins ``(-inf, edges[0]], ..., (edges[-1], inf)`` and the share of ``count`` training rows in each."""

    name: str
    edges: tuple[float, ...]
    proportions: tuple[float, ...]
    count: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in the manifest (the name is the key it is stored under)."""
        return {"edges": list(self.edges), "proportions": list(self.proportions), "count": self.count}


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
    if not isinstance(entry, Mapping) or set(entry) != _KEYS:
        raise ModelArtifactError(f"{where}: expected an object with exactly the keys {sorted(_KEYS)}")
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
    return FeatureHistogram(name, e, p, count)


def _number(value: object, where: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ModelArtifactError(f"{where}: {what} must be finite numbers, got {value!r}")
    return float(value)
