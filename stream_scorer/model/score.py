"""Score a logistic regression: one matrix product per batch (pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_scorer.batch import Float64Array
from stream_scorer.errors import ModelArtifactError
from stream_scorer.model import calibration
from stream_scorer.model.artifact import LogisticModel
from stream_scorer.model.calibration import Calibration, sigmoid
from stream_scorer.model.fitted_spec import transform


@dataclass(frozen=True, slots=True)
class ScoringWeights:
    """Standardization folded into the weights: ``sigmoid(x @ weights + bias)`` on raw features."""

    weights: Float64Array
    bias: float

    @staticmethod
    def of(model: LogisticModel) -> ScoringWeights:
        """Fold ``(x - mean) / scale`` into the coefficients, once, when a model is loaded."""
        weights = model.coef / model.scale
        return ScoringWeights(weights=weights, bias=float(model.intercept - np.dot(weights, model.mean)))


@dataclass(frozen=True, slots=True)
class StackedWeights:
    """Several models' folded weights side by side, so that one matrix product scores them all.

    The batch matrix is the models' feature blocks side by side; model ``j`` reads the columns from
    ``offsets[j]`` on (models with the same spec share a block). Column ``j`` of ``weights`` holds model
    ``j``'s weights at those rows and zeros elsewhere; ``matrix @ weights + bias`` gives every model's logit.
    """

    weights: Float64Array  # (k, m)
    bias: Float64Array  # (m,)
    calibrations: tuple[Calibration, ...]

    @staticmethod
    def of(models: Sequence[LogisticModel], offsets: Sequence[int], n_columns: int) -> StackedWeights:
        """Stack ``models``, model ``j`` reading ``len(feature_names)`` columns from ``offsets[j]``."""
        weights = np.zeros((n_columns, len(models)))
        bias = np.zeros(len(models))
        for j, (model, offset) in enumerate(zip(models, offsets, strict=True)):
            folded = ScoringWeights.of(model)
            weights[offset : offset + len(model.feature_names), j] = folded.weights
            bias[j] = folded.bias
        return StackedWeights(weights=weights, bias=bias, calibrations=tuple(m.calibration for m in models))


def score_stacked(matrix: Float64Array, stacked: StackedWeights) -> Float64Array:
    """Probabilities (n, m): one column per stacked model, from one matrix product, each calibrated.

    >>> s = StackedWeights(np.array([[2.0, 0.0], [-1.0, 1.0]]), np.array([0.5, 0.0]), (Calibration(),) * 2)
    >>> score_stacked(np.array([[0.0, 0.5], [1.0, 0.0]]), s).round(4).tolist()
    [[0.5, 0.6225], [0.9241, 0.5]]
    """
    logits = matrix @ stacked.weights + stacked.bias
    for j, cal in enumerate(stacked.calibrations):
        logits[:, j] = calibration.apply(cal, logits[:, j])
    return logits


def score(matrix: Float64Array, weights: ScoringWeights, calibrated: Calibration | None = None) -> Float64Array:
    """Probabilities of the positive class for every row of the raw feature matrix (optionally calibrated).

    >>> w = ScoringWeights(weights=np.array([2.0, -1.0]), bias=0.5)
    >>> score(np.array([[0.0, 0.5], [1.0, 0.0]]), w).round(4).tolist()
    [0.5, 0.9241]
    """
    logits = matrix @ weights.weights + weights.bias
    return sigmoid(logits) if calibrated is None else calibration.apply(calibrated, logits)


def score_columns(
    model: LogisticModel, columns: Mapping[str, npt.NDArray[Any] | Sequence[Any]], reason_codes: int
) -> tuple[Float64Array, npt.NDArray[np.intp], Float64Array]:
    """One model over raw input columns, as the worker scores it: the fitted spec builds the rows, one
    product scores them (calibrated), and the top ``reason_codes`` contributions explain each score.

    Returns the scores and the reason codes' feature indices and contributions, row by row.
    """
    matrix = transform(model.serving_spec, columns)
    scores = score(matrix, ScoringWeights.of(model), model.calibration)
    index, value = top_contributions(matrix, model, reason_codes)
    return scores, index, value


def top_contributions(matrix: Float64Array, model: LogisticModel, k: int) -> tuple[npt.NDArray[np.intp], Float64Array]:
    """Reason codes: per row, the ``k`` features with the largest contribution ``coef * (x - mean) / scale``
    (the standardized scale), largest first (equal ones by feature order). Returns (feature indices,
    contributions), each (n, k).

    >>> m = LogisticModel(name="m", version="1", feature_names=("a", "b", "c"), coef=np.array([1.0, -2.0, 0.5]),
    ...                   intercept=0.0, mean=np.zeros(3), scale=np.ones(3), defaults=np.zeros(3))
    >>> index, value = top_contributions(np.array([[1.0, -1.0, 4.0]]), m, 2)
    >>> index.tolist(), value.tolist()
    ([[1, 2]], [[2.0, 2.0]])
    """
    k = min(k, matrix.shape[1])
    if k <= 0 or len(matrix) == 0:
        return np.zeros((len(matrix), 0), np.intp), np.zeros((len(matrix), 0))
    with np.errstate(over="ignore", invalid="ignore"):  # an extreme input's contribution is +-inf (or NaN)
        contributions = model.coef * (matrix - model.mean) / model.scale
    ranks = contributions.copy()
    if not np.isfinite(ranks).all():  # NaN last, then -inf; -inf below both marks a feature already taken
        lowest = np.finfo(np.float64).min
        ranks[np.isneginf(ranks)] = np.nextafter(lowest, 0.0)
        ranks[np.isnan(ranks)] = lowest
    rows = np.arange(len(matrix))
    index = np.empty((len(matrix), k), np.intp)
    for j in range(k):  # k row-wise argmax passes: a third of argpartition's cost for a few reason codes
        index[:, j] = top = ranks.argmax(axis=1)
        ranks[rows, top] = -np.inf
    return index, np.take_along_axis(contributions, index, axis=1)


def score_one(row: Sequence[float], model: LogisticModel) -> float:
    """Score one feature row in plain Python from the unfolded model: the reference for tests and for readers."""
    z = model.intercept + sum(
        c * (x - m) / s for c, x, m, s in zip(model.coef, row, model.mean, model.scale, strict=True)
    )
    cal = model.calibration
    if cal.method == "platt":
        z = cal.a * z + cal.b
    p = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
    return float(np.interp(p, cal.x, cal.y)) if cal.method == "isotonic" else p


GOLDEN_TOLERANCE = 1e-9


def golden_vectors(
    model: LogisticModel, rows: Float64Array, inputs: dict[str, list[Any]] | None = None
) -> dict[str, Any]:
    """Feature rows (and, with a spec, the input columns they were built from) and their served scores."""
    golden: dict[str, Any] = {
        "features": rows.tolist(),
        "scores": score(rows, ScoringWeights.of(model), model.calibration).tolist(),
    }
    if inputs is not None:
        golden["inputs"] = inputs
    return golden


def verify_golden_vectors(model: LogisticModel) -> None:
    """Refuse a model whose serving path does not reproduce the rows and scores stored at training time."""
    golden = model.golden_vectors
    if not golden:
        return
    where = f"model {model.name} {model.version}"
    try:
        rows = np.asarray(golden["features"], dtype=np.float64).reshape(-1, len(model.feature_names))
        expected = np.asarray(golden["scores"], dtype=np.float64)
        got = score(rows, ScoringWeights.of(model), model.calibration)
        if "inputs" in golden:  # train/serve parity of the feature spec: the inputs build the same rows
            inputs = {c: np.asarray(v) for c, v in golden["inputs"].items()}
            rebuilt = transform(model.serving_spec, inputs)
            if rebuilt.shape != rows.shape or not np.allclose(rebuilt, rows, rtol=0, atol=GOLDEN_TOLERANCE):
                raise ModelArtifactError(f"{where}: golden-vector check failed (the feature spec builds other rows)")
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise ModelArtifactError(f"{where}: golden vectors are unreadable: {exc}") from exc
    worst = float(np.max(np.abs(got - expected))) if len(expected) == len(got) and len(got) else float("inf")
    if not worst <= GOLDEN_TOLERANCE:
        raise ModelArtifactError(f"{where}: golden-vector check failed (max score difference {worst:.3g})")
