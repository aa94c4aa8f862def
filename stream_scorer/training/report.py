"""A model's quality on held-out rows: ranking, probability quality, reliability, and decisions at a threshold.

Every metric that is undefined on the given rows (AUC with one class, precision with nobody flagged,
anything on zero rows) is ``nan``, never 0. Scores are probabilities in [0, 1]; labels are 0 or 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_scorer.batch import Float64Array, Int64Array
from stream_scorer.errors import TrainingError

LOG_LOSS_EPS = 1e-15
_NAN = float("nan")


@dataclass(frozen=True, slots=True)
class Reliability:
    """Equal-width score bins on [0, 1] with, per bin, the row count, mean score and positive rate.

    ``edges`` has ``bins + 1`` values; bin ``i`` holds the scores ``edges[i] <= s < edges[i + 1]``,
    and the last bin also holds ``s == 1.0`` (the convention of ``np.histogram``). ``mean_score`` and
    ``positive_rate`` are ``nan`` in an empty bin.
    """

    edges: Float64Array
    count: Int64Array
    mean_score: Float64Array
    positive_rate: Float64Array
    expected_calibration_error: float

    def rows(self) -> list[dict[str, float | int]]:
        """One JSON-ready dict per bin: lower, upper, count, mean_score, positive_rate."""
        return [
            {"lower": float(lo), "upper": float(hi), "count": int(c), "mean_score": float(m), "positive_rate": float(r)}
            for lo, hi, c, m, r in zip(
                self.edges[:-1], self.edges[1:], self.count, self.mean_score, self.positive_rate, strict=True
            )
        ]


def reliability(scores: Float64Array, labels: Float64Array, bins: int = 10) -> Reliability:
    """The reliability diagram's bins and the expected calibration error.

    ``ECE = sum over non-empty bins of count / n * |mean_score - positive_rate|``; ``nan`` on zero rows.

    >>> r = reliability(np.array([0.05, 0.15, 0.2, 0.95, 1.0]), np.array([0.0, 0.0, 1.0, 1.0, 1.0]), bins=2)
    >>> r.count.tolist(), r.mean_score.tolist(), r.positive_rate.tolist()
    ([3, 2], [0.13333333333333333, 0.975], [0.3333333333333333, 1.0])
    >>> round(r.expected_calibration_error, 4)
    0.13
    """
    s, y = _checked(scores, labels)
    if bins < 1:
        raise TrainingError(f"reliability needs at least 1 bin, got {bins}")
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.searchsorted(edges[1:-1], s, side="right")
    count = np.bincount(index, minlength=bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_score = np.bincount(index, weights=s, minlength=bins) / count
        positive_rate = np.bincount(index, weights=y, minlength=bins) / count
    filled = count > 0
    ece = float(np.sum(count[filled] / len(s) * np.abs(mean_score[filled] - positive_rate[filled]))) if len(s) else _NAN
    return Reliability(edges, count, mean_score, positive_rate, ece)


def auc(scores: Float64Array, labels: Float64Array) -> float:
    """Area under the ROC curve from ranks (ties get their average rank); ``nan`` without both classes.

    >>> auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0.0, 0.0, 1.0, 1.0]))
    0.75
    """
    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return _NAN
    # Average ranks over ties: each distinct score gets the mean of the ranks it spans.
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2.0)[inverse]
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(scores: Float64Array, labels: Float64Array) -> float:
    """Mean negative log-likelihood, scores clipped to ``[1e-15, 1 - 1e-15]``; ``nan`` on zero rows.

    scikit-learn (since 1.5) clips at machine epsilon instead; the two differ only for scores within
    1e-15 of 0 or 1.

    >>> round(log_loss(np.array([0.9, 0.2]), np.array([1.0, 0.0])), 4)
    0.1643
    """
    if len(scores) == 0:
        return _NAN
    p = np.clip(scores, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    return float(-np.mean(labels * np.log(p) + (1.0 - labels) * np.log(1.0 - p)))


def quality_report(scores: Float64Array, labels: Float64Array, threshold: float, bins: int = 10) -> dict[str, Any]:
    """Every quality metric of these held-out rows, JSON-ready (ints, floats, a list of bin dicts).

    Decisions are ``score >= threshold``. ``positive_rate`` is the class balance (share of label 1),
    not the share flagged.

    >>> r = quality_report(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0.0, 0.0, 1.0, 1.0]), threshold=0.5)
    >>> r["auc"], r["precision"], r["recall"], r["false_positive_rate"]
    (0.75, 1.0, 0.5, 0.0)
    >>> quality_report(np.array([0.1]), np.array([0.0]), threshold=0.5)["precision"]
    nan
    """
    s, y = _checked(scores, labels)
    if not math.isfinite(threshold):
        raise TrainingError(f"threshold must be a finite number, got {threshold}")
    n = len(s)
    flagged = s >= threshold
    positive = y == 1.0
    tp = int(np.sum(flagged & positive))
    fp = int(np.sum(flagged & ~positive))
    fn = int(np.sum(~flagged & positive))
    tn = n - tp - fp - fn
    rel = reliability(s, y, bins)
    return {
        "rows": n,
        "positives": tp + fn,
        "positive_rate": _ratio(tp + fn, n),
        "auc": auc(s, y),
        "log_loss": log_loss(s, y),
        "brier": float(np.mean((s - y) ** 2)) if n else _NAN,
        "ece": rel.expected_calibration_error,
        "threshold": float(threshold),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "false_positive_rate": _ratio(fp, fp + tn),
        "false_negative_rate": _ratio(fn, tp + fn),
        "reliability": rel.rows(),
    }


def cut_below(sorted_scores: Float64Array, last: int) -> float:
    """A threshold flagging (``score >= threshold``) exactly the rows ``0..last`` of descending ``sorted_scores``.

    It lies halfway between the last flagged score and the next lower one, not on an observed score:
    served scores (standardization folded into the weights) differ from training-time scores by float
    rounding (~1e-17), so a threshold equal to a training score flips that row's decision when served.

    Parameters
    ----------
    sorted_scores : Float64Array
        Scores in descending order; ``sorted_scores[last + 1] < sorted_scores[last]`` (a cut between runs).
    last : int
        Index of the last row to flag; ``len(sorted_scores) - 1`` flags everyone (halfway to 0.0), ``-1``
        flags nobody (halfway between the highest score and 1.0; just above 1.0 if that score is 1.0).

    Returns
    -------
    float
        The midpoint, or the upper score if the two scores are adjacent floats (no float between them).

    >>> s = np.array([0.8, 0.4, 0.35, 0.1])
    >>> cut_below(s, 0), cut_below(s, 2), cut_below(s, 3), cut_below(s, -1)
    (0.6000000000000001, 0.22499999999999998, 0.05, 0.9)
    """
    above = float(sorted_scores[last]) if last >= 0 else 1.0
    if last + 1 >= len(sorted_scores):
        return above / 2.0
    below = float(sorted_scores[last + 1])
    middle = (above + below) / 2.0
    return middle if middle > below else float(np.nextafter(below, np.inf))


def threshold_for_cost(scores: Float64Array, labels: Float64Array, cost_fp: float, cost_fn: float) -> float:
    """The threshold minimizing ``cost_fp * FP + cost_fn * FN`` on these rows, deciding ``score >= threshold``.

    Candidates are the cuts between distinct observed scores (so tied scores always fall on one side),
    flagging everyone, and flagging nobody. Among equal costs the fewest rows flagged wins. The threshold
    is the midpoint between the scores either side of the cut (:func:`cut_below`), so that served scores,
    which differ from these by float rounding, get the same decisions and the same cost.

    >>> s, y = np.array([0.1, 0.4, 0.35, 0.8]), np.array([0.0, 0.0, 1.0, 1.0])
    >>> [round(threshold_for_cost(s, y, cost_fp=1.0, cost_fn=c), 6) for c in (1.0, 5.0)]  # flag 0.8; down to 0.35
    [0.6, 0.225]
    >>> threshold_for_cost(np.array([0.2, 0.9]), np.array([1.0, 0.0]), cost_fp=10.0, cost_fn=1.0)  # flag nobody
    0.95
    """
    s, y = _checked(scores, labels)
    for name, value in (("cost_fp", cost_fp), ("cost_fn", cost_fn)):
        if not (math.isfinite(value) and value > 0):
            raise TrainingError(f"{name} must be a finite number > 0, got {value}")
    if len(s) == 0:
        raise TrainingError("threshold_for_cost needs at least one row")
    order = np.argsort(-s, kind="stable")
    sorted_scores, sorted_labels = s[order], y[order]
    true_pos = np.cumsum(sorted_labels)
    false_pos = np.arange(1, len(s) + 1) - true_pos
    false_neg = true_pos[-1] - true_pos
    # Only cut after the last row of a run of equal scores.
    last_of_run = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    cost = np.where(last_of_run, cost_fp * false_pos + cost_fn * false_neg, np.inf)
    nobody = cost_fn * true_pos[-1]
    best = int(np.argmin(cost))  # first minimum: the fewest rows flagged among equal costs
    return cut_below(sorted_scores, -1 if nobody <= cost[best] else best)


def format_report(report: dict[str, Any]) -> str:
    """A printable table of :func:`quality_report`'s metrics, then its reliability bins."""
    lines = [f"{'metric':22s} {'value':>12s}"]
    for key, value in report.items():
        if key != "reliability":
            lines.append(f"{key:22s} {_cell(value):>12s}")
    bins = report.get("reliability", [])
    if bins:
        lines += ["", f"{'score bin':16s} {'count':>8s} {'mean_score':>12s} {'positive_rate':>14s}"]
        for b in bins:
            closing = "]" if b is bins[-1] else ")"
            span = f"[{b['lower']:.2f}, {b['upper']:.2f}{closing}"
            lines.append(f"{span:16s} {b['count']:8d} {_cell(b['mean_score']):>12s} {_cell(b['positive_rate']):>14s}")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else _NAN


def _checked(scores: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[Float64Array, Float64Array]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if s.ndim != 1 or s.shape != y.shape:
        raise TrainingError(f"scores and labels must be 1-D of equal length, got {s.shape} and {y.shape}")
    if not np.all((s >= 0.0) & (s <= 1.0)):
        raise TrainingError("scores must be probabilities in [0, 1] (no NaN)")
    if not np.all((y == 0.0) | (y == 1.0)):
        raise TrainingError("labels must be 0 or 1")
    return s, y
