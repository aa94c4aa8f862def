"""Additive sums over (score, decision, label) pairs, and the quality metrics read from them (pure).

An :class:`Aggregate` of a union of disjoint pair sets is the sum of their aggregates, so a rolling
window is kept by ``update`` (pairs enter) and ``revert`` (pairs leave), never recomputed, and every
metric is read from the sums in O(bins). A metric that is undefined on the pairs (no pair, no
predicted positive, no positive...) is ``nan``, never 0.

Log loss clips scores to ``[1e-15, 1 - 1e-15]``, scikit-learn's long-standing ``eps=1e-15`` (recent
releases clip at the float's machine epsilon instead), so a confident miss costs at most
``-log(1e-15) ~ 34.5``; away from 0 and 1 the two agree exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_scorer.batch import BoolArray, Float64Array

LOG_LOSS_EPS = 1e-15
# Slots of Aggregate.stats; the reliability sums follow (count, score sum, label sum per bin).
_N, _POS, _TP, _FP, _FN, _TN, _LOG_LOSS, _SQUARED_ERROR, _RELIABILITY = range(9)
NAN = math.nan
_FEW = 8  # up to this many pairs, scalar updates beat one vectorized pass (~30 µs)


@dataclass(frozen=True, slots=True)
class Layout:
    """How many bins an aggregate keeps on [0, 1]: ``reliability_bins`` for calibration, ``auc_bins`` per class."""

    reliability_bins: int = 10
    auc_bins: int = 1000

    def __post_init__(self) -> None:
        if self.reliability_bins < 1 or self.auc_bins < 1:
            raise ValueError(
                f"bins must be >= 1, got reliability_bins={self.reliability_bins} auc_bins={self.auc_bins}"
            )


class Aggregate:
    """Sums over a set of pairs: ``stats`` (counts, loss sums, reliability sums) and ``hist``, the counts of
    ``[negatives, positives]`` scores in ``auc_bins`` equal-width bins.
    """

    __slots__ = ("hist", "stats")

    def __init__(self, stats: Float64Array, hist: npt.NDArray[np.integer[Any]]) -> None:
        self.stats = stats
        self.hist = hist

    @classmethod
    def zeros(cls, layout: Layout, hist_dtype: type[np.integer[Any]] = np.int64) -> Aggregate:
        """The aggregate of no pair; ``hist_dtype=np.int32`` halves the memory of a time bucket."""
        return cls(np.zeros(_RELIABILITY + 3 * layout.reliability_bins), np.zeros((2, layout.auc_bins), hist_dtype))

    @classmethod
    def of(cls, layout: Layout, scores: Float64Array, decisions: BoolArray, labels: BoolArray) -> Aggregate:
        """The aggregate of the pairs, in a few vectorized passes. Scores must lie in [0, 1]."""
        n, bins = len(scores), layout.reliability_bins
        tp = int(np.count_nonzero(decisions & labels))
        fp = int(np.count_nonzero(decisions)) - tp
        positives = int(np.count_nonzero(labels))
        clipped = np.clip(scores, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
        log_loss = -float(np.sum(np.where(labels, np.log(clipped), np.log1p(-clipped))))
        squared_error = float(np.sum((scores - labels) ** 2))
        stats = np.empty(_RELIABILITY + 3 * bins)
        stats[:_RELIABILITY] = (n, positives, tp, fp, positives - tp, n - positives - fp, log_loss, squared_error)
        reliability = bin_of(scores, bins)
        stats[_RELIABILITY:] = np.concatenate(
            [
                np.bincount(reliability, minlength=bins),
                np.bincount(reliability, weights=scores, minlength=bins),
                np.bincount(reliability, weights=labels, minlength=bins),
            ]
        )
        fine = bin_of(scores, layout.auc_bins) + layout.auc_bins * labels
        hist = np.bincount(fine, minlength=2 * layout.auc_bins).reshape(2, layout.auc_bins)
        return cls(stats, hist)

    @property
    def n(self) -> int:
        return int(self.stats[_N])

    def add_one(self, layout: Layout, score: float, decision: bool, label: bool, sign: int) -> None:
        """Add (``sign=1``) or remove (``sign=-1``) one pair with scalar updates: a few µs, not a vectorized pass."""
        s, bins = self.stats, layout.reliability_bins
        clipped = min(max(score, LOG_LOSS_EPS), 1.0 - LOG_LOSS_EPS)
        reliability = _RELIABILITY + min(int(score * bins), bins - 1)
        s[_N] += sign
        s[_POS] += sign * label
        s[(_TP if label else _FP) if decision else (_FN if label else _TN)] += sign
        s[_LOG_LOSS] -= sign * (math.log(clipped) if label else math.log1p(-clipped))
        s[_SQUARED_ERROR] += sign * (score - label) ** 2
        s[reliability] += sign
        s[reliability + bins] += sign * score
        s[reliability + 2 * bins] += sign * label
        self.hist[int(label), min(int(score * layout.auc_bins), layout.auc_bins - 1)] += sign
        if s[_N] == 0:
            s[:] = 0.0

    def update(self, other: Aggregate) -> None:
        """Add ``other``'s pairs."""
        self.stats += other.stats
        self.hist += other.hist

    def revert(self, other: Aggregate) -> None:
        """Remove ``other``'s pairs, which must have been added."""
        self.stats -= other.stats
        self.hist -= other.hist
        if self.stats[_N] == 0:  # counts are exact; this drops the float sums' rounding residue
            self.stats[:] = 0.0


def add_pairs(
    targets: Sequence[Aggregate],
    layout: Layout,
    scores: Float64Array,
    decisions: BoolArray,
    labels: BoolArray,
    *,
    sign: int = 1,
) -> None:
    """Add (``sign=1``) or remove (``sign=-1``) the pairs in every target: pair by pair for a few, else vectorized."""
    if len(scores) > _FEW:
        part = Aggregate.of(layout, scores, decisions, labels)
        for target in targets:
            if sign > 0:
                target.update(part)
            else:
                target.revert(part)
        return
    for score, decision, label in zip(scores.tolist(), decisions.tolist(), labels.tolist(), strict=True):
        for target in targets:
            target.add_one(layout, score, decision, label, sign)


def bin_of(scores: Float64Array, bins: int) -> npt.NDArray[np.intp]:
    """Equal-width bin of each score on [0, 1]: ``min(int(score * bins), bins - 1)``.

    >>> bin_of(np.array([0.0, 0.09, 0.1, 0.95, 1.0]), 10).tolist()
    [0, 0, 1, 9, 9]
    """
    return np.minimum((scores * bins).astype(np.intp), bins - 1)


def auc_from_histograms(negatives: npt.ArrayLike, positives: npt.ArrayLike) -> tuple[float, float]:
    """ROC AUC of scores counted per class in the same increasing bins, and a bound on its error.

    The exact AUC is the share of (positive, negative) pairs where the positive scores higher, a tie
    counting 1/2. Binning is monotone, so a pair in different bins is ordered exactly by its bins. A pair
    in the same bin is counted 1/2 where the exact AUC counts 1, 1/2 or 0: off by at most 1/2. Hence
    ``|AUC_hist - AUC_exact| <= sum_b pos_b * neg_b / (2 * P * N)``, reached when every same-bin pair is
    ordered the same way. Both are nan without a positive or without a negative.

    >>> auc_from_histograms([2, 1, 0], [0, 1, 2])  # (2 + 6 + 1/2) / 9; one same-bin pair
    (0.9444444444444444, 0.05555555555555555)
    >>> auc_from_histograms([3, 0], [0, 0])
    (nan, nan)
    """
    neg = np.asarray(negatives, dtype=np.float64)
    pos = np.asarray(positives, dtype=np.float64)
    pairs = float(pos.sum()) * float(neg.sum())
    if pairs == 0:
        return NAN, NAN
    below = np.cumsum(neg) - neg
    ties = float(pos @ neg)
    return (float(pos @ below) + 0.5 * ties) / pairs, ties / (2.0 * pairs)


def precision_at_k(negatives: npt.ArrayLike, positives: npt.ArrayLike, k_percent: float) -> float:
    """Share of positives among the top ``k_percent`` % of scores, from per-class histograms.

    The top ``m = n * k_percent / 100`` scores take whole bins from the highest down; the boundary bin
    contributes its remaining share ``r`` of the ``m`` with its own positive share, ``r * pos_b / count_b``
    (scores spread evenly in the bin). The exact value differs by at most ``r / m <= count_b / m``. nan
    when there is no pair.

    >>> precision_at_k([3, 1, 0, 0], [0, 1, 1, 2], 25.0)  # m = 2: the top bin, all positive
    1.0
    >>> precision_at_k([3, 1, 0, 0], [0, 1, 1, 2], 50.0)  # m = 4: 2 + 1 + half of bin 1 (1 of 2 positive)
    0.875
    """
    counts = (np.asarray(negatives, dtype=np.float64) + np.asarray(positives, dtype=np.float64))[::-1]
    pos = np.asarray(positives, dtype=np.float64)[::-1]
    top = float(counts.sum()) * k_percent / 100.0
    if top <= 0:
        return NAN
    cumulative = np.cumsum(counts)
    boundary = min(int(np.searchsorted(cumulative, top, side="left")), len(counts) - 1)
    taken = float(cumulative[boundary - 1]) if boundary > 0 else 0.0
    hits = float(pos[:boundary].sum()) + (top - taken) * float(pos[boundary]) / float(counts[boundary])
    return hits / top


def expected_calibration_error(counts: npt.ArrayLike, score_sums: npt.ArrayLike, label_sums: npt.ArrayLike) -> float:
    """ECE: ``sum over non-empty bins of count / n * |mean score - mean label|``; nan when every bin is empty.

    >>> expected_calibration_error([2, 0, 2], [0.5, 0.0, 1.5], [0.0, 0.0, 2.0])  # 2/4 * 0.25 + 2/4 * 0.25
    0.25
    """
    count = np.asarray(counts, dtype=np.float64)
    total = float(count.sum())
    if total == 0:
        return NAN
    # |score_sum - label_sum| / n == count / n * |mean score - mean label|, and 0 on empty bins.
    return float(np.sum(np.abs(np.asarray(score_sums) - np.asarray(label_sums)))) / total


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    """One calibration bin ``[lower, upper)``: its support and mean score (predicted) and label (observed)."""

    lower: float
    upper: float
    count: int
    predicted: float
    observed: float


@dataclass(frozen=True, slots=True)
class WindowMetrics:
    """Every quality metric of one (model, version, window), with its support ``n``; nan where undefined."""

    model: str
    version: str
    window: str
    n: int
    positives: int
    tp: int
    fp: int
    fn: int
    tn: int
    precision: float
    recall: float
    f1: float
    false_positive_rate: float
    false_negative_rate: float
    positive_rate: float
    log_loss: float
    brier: float
    ece: float
    auc: float
    auc_error_bound: float
    precision_at_k: tuple[tuple[float, float], ...]  # (k percent, precision)
    reliability: tuple[ReliabilityBin, ...]


def read_metrics(
    aggregate: Aggregate, layout: Layout, k_percents: Sequence[float], *, model: str, version: str, window: str
) -> WindowMetrics:
    """Read every metric from ``aggregate`` in O(bins).

    F1 is ``2 tp / (2 tp + fp + fn)``, as scikit-learn computes it, so it is 0 (not nan) when there are
    positives but no predicted positive; it is nan only without either.
    """
    s = aggregate.stats
    n, positives, tp, fp, fn, tn = (int(v) for v in s[:_LOG_LOSS])
    bins = layout.reliability_bins
    counts = s[_RELIABILITY : _RELIABILITY + bins]
    score_sums, label_sums = s[_RELIABILITY + bins : _RELIABILITY + 2 * bins], s[_RELIABILITY + 2 * bins :]
    reliability = tuple(
        ReliabilityBin(b / bins, (b + 1) / bins, int(c), _ratio(score_sums[b], c), _ratio(label_sums[b], c))
        for b, c in enumerate(counts)
    )
    negatives_hist, positives_hist = aggregate.hist
    auc, auc_error_bound = auc_from_histograms(negatives_hist, positives_hist)
    return WindowMetrics(
        model=model,
        version=version,
        window=window,
        n=n,
        positives=positives,
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, tp + fn),
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
        false_positive_rate=_ratio(fp, fp + tn),
        false_negative_rate=_ratio(fn, fn + tp),
        positive_rate=_ratio(positives, n),
        log_loss=_ratio(s[_LOG_LOSS], n),
        brier=_ratio(s[_SQUARED_ERROR], n),
        ece=expected_calibration_error(counts, score_sums, label_sums),
        auc=auc,
        auc_error_bound=auc_error_bound,
        precision_at_k=tuple((k, precision_at_k(negatives_hist, positives_hist, k)) for k in k_percents),
        reliability=reliability,
    )


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator > 0 else NAN
