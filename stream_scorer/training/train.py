"""Train a penalized logistic regression (numpy) on a dataset file, with a declarative feature spec.

``train`` runs these steps, in order, each a plain function:

1. read the dataset (:func:`stream_scorer.training.dataset.read_table`: CSV, Avro container or Parquet);
2. split by time when there is an event-time column (the latest ``holdout`` share is held out),
   otherwise at random (seeded); the held-out rows are split again, in order: the first half fits the
   calibration and the threshold, the second half is the test set the report is computed on;
3. fit the feature spec on the training rows (impute values, means and scales, categories) and build
   the matrix (:mod:`stream_scorer.training.featurespec`);
4. fit the coefficients in scikit-learn's convention (``C`` the inverse penalty, an unpenalized
   intercept; :mod:`stream_scorer.training.solvers`) on standardized features, with class weights;
5. calibrate (none, Platt or isotonic), choose the threshold (given, from a cost ratio, or best F1);
6. report on the test rows, store baselines of every feature and of the score, and golden vectors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from stream_scorer.batch import Float64Array
from stream_scorer.errors import TrainingError
from stream_scorer.model import calibration
from stream_scorer.model.artifact import LogisticModel
from stream_scorer.model.calibration import Calibration, Method, sigmoid
from stream_scorer.model.fitted_spec import FittedSpec, transform
from stream_scorer.model.score import golden_vectors
from stream_scorer.training import solvers
from stream_scorer.training.baselines import baselines, seasonal_series
from stream_scorer.training.calibration import fit_isotonic, fit_platt
from stream_scorer.training.dataset import Table, input_columns, labels_from
from stream_scorer.training.featurespec import FeatureSpec, default_spec, fit_spec
from stream_scorer.training.report import auc, cut_below, quality_report, threshold_for_cost

IntArray = npt.NDArray[np.intp]


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
    proximal gradient method (:mod:`stream_scorer.training.solvers`). ``none`` maximizes the likelihood with
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


def split(n: int, event_time_ms: Float64Array | None, holdout: float, seed: int) -> tuple[IntArray, IntArray]:
    """Train and held-out row indices: the latest ``holdout`` share by event time, else a seeded random one.

    >>> [r.tolist() for r in split(5, np.array([5.0, 1.0, 4.0, 2.0, 3.0]), 0.4, 0)]
    [[1, 3, 4], [2, 0]]
    """
    order = (
        np.argsort(event_time_ms, kind="stable")
        if event_time_ms is not None
        else np.random.default_rng(seed).permutation(n)
    )
    cut = round(n * (1.0 - holdout))
    return order[:cut], order[cut:]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A dataset split and featurized: what the binary and the multinomial trainers fit on."""

    fitted: FittedSpec
    matrix: Float64Array  # every row, imputed, not standardized
    inputs: dict[str, npt.NDArray[Any]]  # the spec's input columns, read as the worker reads them
    train_rows: IntArray
    held_out: IntArray
    timed: bool  # split by event time (else at random)


def prepare(
    table: Table,
    spec: FeatureSpec | None,
    *,
    label: str,
    time_column: str,
    holdout: float,
    seed: int,
    progress: Callable[[str], None],
) -> Prepared:
    """Split (by time when there is a complete numeric time column), fit the spec on the training rows, and
    build the matrix of every row. Without a spec, every numeric column but the label and time is a feature."""
    times = table.columns.get(time_column)
    timed = times is not None and times.dtype.kind == "f" and not np.isnan(times).any()
    if spec is None:
        spec = default_spec(c for c in table.columns if c not in (label, time_column) and table.kind(c) == "numeric")
    train_rows, held_out = split(table.rows, times if timed else None, holdout, seed)
    progress(f"spec: fitting {len(spec.columns)} input columns on {len(train_rows)} training rows")
    inputs = input_columns(table, spec.columns)
    fitted = fit_spec(spec, {c: values[train_rows] for c, values in inputs.items()})
    return Prepared(fitted, transform(fitted, inputs), inputs, train_rows, held_out, timed)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainOptions:
    """How to train; the defaults are scikit-learn's L2 logistic regression at C=1, uncalibrated."""

    label: str = "label"
    time_column: str = "event_time"
    C: float = 1.0
    penalty: Penalty = "l2"
    l1_ratio: float | None = None
    class_weight: solvers.ClassWeight = None
    holdout: float = 0.2
    seed: int = 0
    calibration: Method = "none"
    threshold: float | None = None  # given explicitly; else from the costs; else the best F1
    cost_fp: float | None = None
    cost_fn: float | None = None


def train(
    table: Table,
    *,
    name: str,
    version: str,
    spec: FeatureSpec | None = None,
    options: TrainOptions = TrainOptions(),
    progress: Callable[[str], None] = lambda stage: None,
    **overrides: Any,
) -> LogisticModel:
    """Train on ``table`` (see the module docstring); ``overrides`` set :class:`TrainOptions` fields by name."""
    o = dataclasses.replace(options, **overrides) if overrides else options
    labels = _checked_labels(table, o)
    data = prepare(
        table, spec, label=o.label, time_column=o.time_column, holdout=o.holdout, seed=o.seed, progress=progress
    )
    train_rows, held_out = data.train_rows, data.held_out
    calibration_rows, test_rows = held_out[: len(held_out) // 2], held_out[len(held_out) // 2 :]
    if len(np.unique(labels[train_rows])) < 2:
        raise TrainingError("the training part of the split has one class only")
    fitted, matrix, inputs, timed = data.fitted, data.matrix, data.inputs, data.timed
    mean, scale = fitted.means(), fitted.scales()
    progress(f"fit: {o.penalty} penalty, C={o.C}, {fitted.n_features} features")
    coef, intercept = fit(
        (matrix[train_rows] - mean) / scale,
        labels[train_rows],
        C=o.C,
        penalty=o.penalty,
        l1_ratio=o.l1_ratio,
        class_weight=o.class_weight,
    )
    logits = ((matrix - mean) / scale) @ coef + intercept
    progress(f"calibrate ({o.calibration}) and choose the threshold on {len(calibration_rows)} held-out rows")
    calibrated = calibrate(o.calibration, logits[calibration_rows], labels[calibration_rows])
    scores = calibration.apply(calibrated, logits)
    threshold = choose_threshold(scores[calibration_rows], labels[calibration_rows], o)
    report = quality_report(scores[test_rows], labels[test_rows], threshold)
    model = LogisticModel(
        name=name,
        version=version,
        feature_names=fitted.feature_names,
        coef=coef,
        intercept=intercept,
        mean=mean,
        scale=scale,
        defaults=fitted.impute_values(),
        threshold=threshold,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        metrics={
            "validation": report,
            "train_rows": len(train_rows),
            "calibration_rows": len(calibration_rows),
            "train": {"auc": auc(scores[train_rows], labels[train_rows])},
        },
        training=_provenance(o, table, len(labels), timed),
        spec=fitted,
        calibration=calibrated,
        baselines=_baselines(data, scores, table.columns[o.time_column] if timed else None, o.time_column),
    )
    golden = test_rows[:8] if len(test_rows) else train_rows[:8]
    stored = {c: _json_values(values[golden]) for c, values in inputs.items()}
    return dataclasses.replace(model, golden_vectors=golden_vectors(model, matrix[golden], stored))


def _baselines(data: Prepared, scores: Float64Array, times: Float64Array | None, time_column: str) -> dict[str, Any]:
    """The training rows' baselines, seasonal series included (the score's only with complete event times)."""
    rows = data.train_rows
    seasonal = seasonal_series(data.fitted, time_column)
    event_time_ms = times[rows] if times is not None else None
    return baselines(
        data.fitted.feature_names, data.matrix[rows], scores[rows], seasonal=seasonal, event_time_ms=event_time_ms
    )


def _checked_labels(table: Table, o: TrainOptions) -> Float64Array:
    """The label column, once the options and the dataset are known to make a model."""
    if not 0.0 < o.holdout < 1.0:
        raise TrainingError(f"holdout must be a share between 0 and 1 (exclusive), not {o.holdout}")
    if (o.cost_fp is None) != (o.cost_fn is None):
        raise TrainingError("give both costs (false positive and false negative) or neither")
    if o.threshold is not None and not 0.0 <= o.threshold <= 1.0:
        raise TrainingError(f"threshold must be in [0, 1], not {o.threshold}")
    labels = labels_from(table, o.label)
    if len(labels) < 10:
        raise TrainingError(f"dataset has {len(labels)} rows; at least 10 are needed")
    if len(np.unique(labels)) < 2:
        raise TrainingError("the label column has one class only; a classifier needs both 0 and 1")
    return labels


def _provenance(o: TrainOptions, table: Table, rows: int, timed: bool) -> dict[str, Any]:
    """How the model was trained, for the manifest."""
    return {
        "C": o.C,
        "penalty": o.penalty,
        "l1_ratio": o.l1_ratio,
        "class_weight": o.class_weight if not isinstance(o.class_weight, Mapping) else dict(o.class_weight),
        "holdout": o.holdout,
        "seed": o.seed,
        "rows": rows,
        "data_sha256": table.fingerprint,
        "split": "time" if timed else "random",
        "threshold_rule": "given" if o.threshold is not None else "cost" if o.cost_fp is not None else "best_f1",
        "cost_fp": o.cost_fp,
        "cost_fn": o.cost_fn,
    }


def calibrate(method: Method, logits: Float64Array, labels: Float64Array) -> Calibration:
    """The calibration map fitted on held-out logits (the identity for ``none``)."""
    if method == "none":
        return Calibration()
    if len(np.unique(labels)) < 2:
        raise TrainingError(f"{method} calibration needs both classes in the held-out rows; use a larger holdout")
    if method == "platt":
        return fit_platt(logits, labels)
    if method == "isotonic":
        return fit_isotonic(sigmoid(logits), labels)
    raise TrainingError(f"calibration must be none, platt or isotonic, not {method!r}")


def choose_threshold(scores: Float64Array, labels: Float64Array, options: TrainOptions) -> float:
    """The decision threshold: given, else the cheapest under the costs, else the best F1 on these rows."""
    if options.threshold is not None:
        return options.threshold
    if options.cost_fp is not None and options.cost_fn is not None:
        return min(1.0, threshold_for_cost(scores, labels, options.cost_fp, options.cost_fn))
    return best_f1_threshold(scores, labels) if len(labels) else 0.5


def _json_values(values: npt.NDArray[Any]) -> list[Any]:
    return [float(v) for v in values] if values.dtype.kind == "f" else [str(v) for v in values]


def best_f1_threshold(scores: Float64Array, labels: Float64Array) -> float:
    """The score threshold with the highest F1 on these rows (0.5 if there is no positive), for ``score >= threshold``.

    The threshold lies halfway between the last flagged score and the next lower one (:func:`cut_below`),
    not on an observed score, so that served scores (which differ by float rounding) get the same decisions.

    >>> best_f1_threshold(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0.0, 1.0, 0.0, 1.0]))  # flag 0.8 and 0.4
    0.375
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
    return cut_below(sorted_scores, best)


def feature_table(names: Sequence[str], model: LogisticModel) -> str:
    """A printable table of coefficients (standardized) by feature."""
    lines = [f"{'feature':40s} {'coef':>10s}"]
    lines += [f"{n:40s} {c:10.4f}" for n, c in zip(names, model.coef, strict=True)]
    lines.append(f"{'(intercept)':40s} {model.intercept:10.4f}")
    return "\n".join(lines)
