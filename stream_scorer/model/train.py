"""Train an L2-regularized logistic regression in numpy (Newton's method), with standardization.

The objective is scikit-learn's convention, with an unpenalized intercept::

    0.5 * ||coef||^2 + C * sum_i logloss(y_i, sigmoid(x_i @ coef + intercept))

on standardized features. A dataset is a CSV file with a header: one column per model feature
(named as the model names it, e.g. ``event.amount_log``), a 0/1 ``label`` column and, optionally,
an ``event_time`` column (epoch ms) that makes the validation split a split by time.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from stream_scorer.batch import Float64Array
from stream_scorer.errors import TrainingError
from stream_scorer.model import solvers
from stream_scorer.model.artifact import LogisticModel
from stream_scorer.model.score import golden_vectors, sigmoid


@dataclass(frozen=True, slots=True)
class Dataset:
    """Feature matrix, labels and (optionally) event times read from a file."""

    feature_names: tuple[str, ...]
    features: Float64Array
    labels: Float64Array
    event_time_ms: Float64Array | None
    fingerprint: str


def read_csv(path: Path, label_column: str = "label") -> Dataset:
    """Read a training CSV; raise :class:`TrainingError` on an empty file, a missing or bad label, or a bad value."""
    try:
        raw = path.read_bytes()
        rows = list(csv.reader(raw.decode().splitlines()))
    except FileNotFoundError as exc:
        raise TrainingError(f"dataset {path} does not exist") from exc
    except OSError as exc:
        raise TrainingError(f"dataset {path} cannot be read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise TrainingError(f"dataset {path} is not UTF-8 text") from exc
    if not rows or len(rows) < 2:
        raise TrainingError(f"dataset {path} is empty: it needs a header and at least one row")
    header, body = rows[0], rows[1:]
    ragged = next((i for i, row in enumerate(body, 2) if len(row) != len(header)), None)
    if ragged is not None:
        raise TrainingError(
            f"dataset {path}: line {ragged} has {len(body[ragged - 2])} values, the header {len(header)}"
        )
    if label_column not in header:
        raise TrainingError(f"dataset {path} has no {label_column!r} column; columns: {header}")
    names = [h for h in header if h not in (label_column, "event_time")]
    try:
        table = np.array(body, dtype=np.float64)
    except ValueError as exc:
        raise TrainingError(f"dataset {path} has a value that is not a number: {exc}") from exc
    if table.ndim != 2 or table.shape[1] != len(header):
        raise TrainingError(f"dataset {path}: every row needs {len(header)} values")
    labels = table[:, header.index(label_column)]
    if np.isnan(labels).any():
        raise TrainingError(f"dataset {path}: {int(np.isnan(labels).sum())} labels are NaN")
    if not np.isin(labels, (0.0, 1.0)).all():
        raise TrainingError(f"dataset {path}: labels must be 0 or 1")
    features = table[:, [header.index(n) for n in names]]
    if not np.isfinite(features).all():
        raise TrainingError(f"dataset {path}: features must be finite (impute before training)")
    times = table[:, header.index("event_time")] if "event_time" in header else None
    return Dataset(tuple(names), features, labels, times, hashlib.sha256(raw).hexdigest())


Penalty = Literal["l2", "l1", "elasticnet", "none"]


def fit(
    features: Float64Array,
    labels: Float64Array,
    *,
    C: float = 1.0,
    penalty: Penalty = "l2",
    l1_ratio: float | None = None,
    class_weight: solvers.ClassWeight = None,
) -> tuple[Float64Array, float]:
    """Fit a penalized logistic regression in scikit-learn's convention. Returns (coef, intercept).

    ``l2`` uses Newton's method; ``l1`` and ``elasticnet`` (with ``l1_ratio`` in [0, 1]) an accelerated
    proximal gradient method (:mod:`stream_scorer.model.solvers`). ``none`` maximizes the likelihood with
    Newton's method: ``C`` is ignored (but must still be > 0), and perfectly separable classes raise
    :class:`TrainingError`. ``class_weight`` (None, ``"balanced"`` or ``{0: w0, 1: w1}``) multiplies each
    row's log loss by the weight of its class, as :func:`solvers.class_sample_weight` computes it.

    >>> x = np.array([[-2.0], [-1.0], [1.0], [2.0], [0.5], [-0.5]])
    >>> y = np.array([0.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    >>> coef, intercept = fit(x, y, C=10.0)
    >>> round(float(coef[0]), 4), abs(intercept) < 1e-9
    (1.2257, True)
    """
    if C <= 0:
        raise TrainingError(f"C must be > 0, got {C}")
    weights = solvers.class_sample_weight(labels, class_weight)
    if penalty == "l2":
        return solvers.newton_l2(features, labels, C, weights)
    if penalty == "l1":
        return solvers.proximal(features, labels, C, 1.0, weights)
    if penalty == "elasticnet":
        if l1_ratio is None or not 0.0 <= l1_ratio <= 1.0:
            raise TrainingError(f"elasticnet needs l1_ratio in [0, 1], got {l1_ratio}")
        return solvers.proximal(features, labels, C, l1_ratio, weights)
    if penalty == "none":
        return solvers.newton_unpenalized(features, labels, weights)
    raise TrainingError(f"penalty must be l2, l1, elasticnet or none, not {penalty!r}")


def split(dataset: Dataset, holdout: float, seed: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Train and validation row indices: the latest ``holdout`` share by event time, else a seeded random one."""
    n = len(dataset.labels)
    if dataset.event_time_ms is not None:
        order = np.argsort(dataset.event_time_ms, kind="stable")
    else:
        order = np.random.default_rng(seed).permutation(n)
    cut = round(n * (1.0 - holdout))
    return order[:cut], order[cut:]


def train(
    dataset: Dataset,
    *,
    name: str,
    version: str,
    C: float = 1.0,
    penalty: Penalty = "l2",
    l1_ratio: float | None = None,
    holdout: float = 0.2,
    seed: int = 0,
) -> LogisticModel:
    """Standardize, fit, choose the F1-maximizing threshold on the held-out rows, and report metrics."""
    if not 0.0 < holdout < 1.0:
        raise TrainingError(f"holdout must be a share between 0 and 1 (exclusive), not {holdout}")
    if len(dataset.labels) < 10:
        raise TrainingError(f"dataset has {len(dataset.labels)} rows; at least 10 are needed")
    if len(np.unique(dataset.labels)) < 2:
        raise TrainingError("the label column has one class only; a classifier needs both 0 and 1")
    train_rows, valid_rows = split(dataset, holdout, seed)
    x_train, y_train = dataset.features[train_rows], dataset.labels[train_rows]
    if len(np.unique(y_train)) < 2:
        raise TrainingError("the training part of the split has one class only")
    mean = x_train.mean(axis=0)
    scale = x_train.std(axis=0)
    scale[scale == 0] = 1.0
    coef, intercept = fit((x_train - mean) / scale, y_train, C=C, penalty=penalty, l1_ratio=l1_ratio)
    valid_scores = sigmoid(((dataset.features[valid_rows] - mean) / scale) @ coef + intercept)
    y_valid = dataset.labels[valid_rows]
    threshold = best_f1_threshold(valid_scores, y_valid) if len(valid_rows) else 0.5
    metrics = {"validation": evaluate(valid_scores, y_valid, threshold), "train_rows": len(train_rows)}
    model = LogisticModel(
        name=name,
        version=version,
        feature_names=dataset.feature_names,
        coef=coef,
        intercept=intercept,
        mean=mean,
        scale=scale,
        defaults=mean.copy(),
        threshold=threshold,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        metrics=metrics,
        training={
            "C": C,
            "penalty": penalty,
            "l1_ratio": l1_ratio,
            "holdout": holdout,
            "seed": seed,
            "rows": len(dataset.labels),
            "data_sha256": dataset.fingerprint,
            "split": "time" if dataset.event_time_ms is not None else "random",
        },
    )
    rows = dataset.features[valid_rows[:8]] if len(valid_rows) else dataset.features[:8]
    return dataclasses.replace(model, golden_vectors=golden_vectors(model, rows))


def best_f1_threshold(scores: Float64Array, labels: Float64Array) -> float:
    """The score threshold with the highest F1 on these rows (0.5 if there is no positive).

    >>> best_f1_threshold(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0.0, 1.0, 0.0, 1.0]))
    0.4
    """
    if labels.sum() == 0:
        return 0.5
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    true_pos = np.cumsum(sorted_labels)
    predicted_pos = np.arange(1, len(scores) + 1)
    f1 = 2 * true_pos / (predicted_pos + labels.sum())
    # Only cut where the score changes, so that equal scores fall on one side.
    last_of_run = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    best = int(np.argmax(np.where(last_of_run, f1, -1.0)))
    return float(sorted_scores[best])


def evaluate(scores: Float64Array, labels: Float64Array, threshold: float) -> dict[str, float]:
    """AUC, log loss, Brier score, precision and recall at ``threshold``, positive rate. NaN where undefined."""
    n = len(labels)
    if n == 0:
        return {
            "rows": 0.0,
            "auc": float("nan"),
            "log_loss": float("nan"),
            "brier": float("nan"),
            "precision": float("nan"),
            "recall": float("nan"),
            "positive_rate": float("nan"),
        }
    eps = 1e-15
    p = np.clip(scores, eps, 1 - eps)
    decided = scores >= threshold
    tp = float(np.sum(decided & (labels == 1)))
    return {
        "rows": float(n),
        "auc": auc(scores, labels),
        "log_loss": float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))),
        "brier": float(np.mean((scores - labels) ** 2)),
        "precision": tp / decided.sum() if decided.any() else float("nan"),
        "recall": tp / labels.sum() if labels.any() else float("nan"),
        "positive_rate": float(labels.mean()),
    }


def auc(scores: Float64Array, labels: Float64Array) -> float:
    """Area under the ROC curve from ranks (ties get their average rank).

    >>> auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0.0, 0.0, 1.0, 1.0]))
    0.75
    """
    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # Average ranks over ties: each distinct score gets the mean of the ranks it spans.
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2.0)[inverse]
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def feature_table(names: Sequence[str], model: LogisticModel) -> str:
    """A printable table of coefficients (standardized) by feature."""
    lines = [f"{'feature':40s} {'coef':>10s}"]
    lines += [f"{n:40s} {c:10.4f}" for n, c in zip(names, model.coef, strict=True)]
    lines.append(f"{'(intercept)':40s} {model.intercept:10.4f}")
    return "\n".join(lines)
