"""Score a logistic regression: one matrix product per batch (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_scorer.batch import Float64Array
from stream_scorer.errors import ModelArtifactError
from stream_scorer.model.artifact import LogisticModel


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

    Column ``j`` of ``weights`` holds model ``j``'s weights placed at the positions of its features in a
    shared feature order (zeros where it does not read a feature); ``sigmoid(x @ weights + bias)`` gives
    every model's probability for every row.
    """

    weights: Float64Array  # (k, m)
    bias: Float64Array  # (m,)

    @staticmethod
    def of(models: Sequence[LogisticModel], feature_names: Sequence[str]) -> StackedWeights:
        """Stack ``models`` over ``feature_names``, which must contain every feature each model reads."""
        position = {name: i for i, name in enumerate(feature_names)}
        weights = np.zeros((len(feature_names), len(models)))
        bias = np.zeros(len(models))
        for j, model in enumerate(models):
            folded = ScoringWeights.of(model)
            weights[[position[n] for n in model.feature_names], j] = folded.weights
            bias[j] = folded.bias
        return StackedWeights(weights=weights, bias=bias)


def score_stacked(matrix: Float64Array, stacked: StackedWeights) -> Float64Array:
    """Probabilities (n, m): one column per stacked model, from one matrix product.

    >>> s = StackedWeights(weights=np.array([[2.0, 0.0], [-1.0, 1.0]]), bias=np.array([0.5, 0.0]))
    >>> score_stacked(np.array([[0.0, 0.5], [1.0, 0.0]]), s).round(4).tolist()
    [[0.5, 0.6225], [0.9241, 0.5]]
    """
    return sigmoid(matrix @ stacked.weights + stacked.bias)


def sigmoid(z: Float64Array) -> Float64Array:
    """The logistic function, without overflow for large ``|z|``.

    >>> sigmoid(np.array([-800.0, 0.0, 800.0])).tolist()
    [0.0, 0.5, 1.0]
    """
    return np.exp(-np.logaddexp(0.0, -z))


def score(matrix: Float64Array, weights: ScoringWeights) -> Float64Array:
    """Probabilities of the positive class for every row of the raw feature matrix.

    >>> w = ScoringWeights(weights=np.array([2.0, -1.0]), bias=0.5)
    >>> score(np.array([[0.0, 0.5], [1.0, 0.0]]), w).round(4).tolist()
    [0.5, 0.9241]
    """
    return sigmoid(matrix @ weights.weights + weights.bias)


def top_contributions(matrix: Float64Array, model: LogisticModel, k: int) -> tuple[npt.NDArray[np.intp], Float64Array]:
    """Reason codes: per row, the ``k`` features with the largest contribution ``coef * (x - mean) / scale``
    (the standardized scale), largest first. Returns (feature indices, contributions), each (n, k).

    >>> from stream_scorer.model.artifact import LogisticModel
    >>> m = LogisticModel(name="m", version="1", feature_names=("a", "b", "c"), coef=np.array([1.0, -2.0, 0.5]),
    ...                   intercept=0.0, mean=np.zeros(3), scale=np.ones(3), defaults=np.zeros(3))
    >>> index, value = top_contributions(np.array([[1.0, -1.0, 4.0]]), m, 2)
    >>> index.tolist(), value.tolist()
    ([[1, 2]], [[2.0, 2.0]])
    """
    k = min(k, matrix.shape[1])
    if k <= 0 or len(matrix) == 0:
        return np.zeros((len(matrix), 0), np.intp), np.zeros((len(matrix), 0))
    contributions = model.coef * (matrix - model.mean) / model.scale
    top = np.argpartition(-contributions, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(contributions, top, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(values, order, axis=1)


def score_one(row: Sequence[float], model: LogisticModel) -> float:
    """Score one row in plain Python from the unfolded model: the reference for tests and for readers."""
    z = model.intercept + sum(
        c * (x - m) / s for c, x, m, s in zip(model.coef, row, model.mean, model.scale, strict=True)
    )
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


GOLDEN_TOLERANCE = 1e-9


def golden_vectors(model: LogisticModel, rows: Float64Array) -> dict[str, list[Any]]:
    """Rows and the scores the serving path gives them, to store in the artifact."""
    return {"features": rows.tolist(), "scores": score(rows, ScoringWeights.of(model)).tolist()}


def verify_golden_vectors(model: LogisticModel) -> None:
    """Refuse a model whose serving path does not reproduce the scores stored at training time."""
    golden = model.golden_vectors
    if not golden:
        return
    try:
        rows = np.asarray(golden["features"], dtype=np.float64).reshape(-1, len(model.feature_names))
        expected = np.asarray(golden["scores"], dtype=np.float64)
        got = score(rows, ScoringWeights.of(model))
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelArtifactError(f"model {model.name} {model.version}: golden vectors are unreadable: {exc}") from exc
    worst = float(np.max(np.abs(got - expected))) if len(expected) == len(got) and len(got) else float("inf")
    if not worst <= GOLDEN_TOLERANCE:
        raise ModelArtifactError(
            f"model {model.name} {model.version}: golden-vector check failed (max score difference {worst:.3g})"
        )
