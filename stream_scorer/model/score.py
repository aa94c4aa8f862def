"""Score a logistic regression: one matrix product per batch (pure)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stream_scorer.batch import Float64Array
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


def score_one(row: Sequence[float], model: LogisticModel) -> float:
    """Score one row in plain Python from the unfolded model: the reference for tests and for readers."""
    z = model.intercept + sum(
        c * (x - m) / s for c, x, m, s in zip(model.coef, row, model.mean, model.scale, strict=True)
    )
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
