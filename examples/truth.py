"""What the examples' synthetic worlds share: placing a ground-truth logistic model at a base rate."""

from __future__ import annotations

from stream_scorer.batch import Float64Array
from stream_scorer.model.calibration import sigmoid


def solve_intercept(logits: Float64Array, rate: float) -> float:
    """The intercept that makes the mean of ``sigmoid(logits + intercept)`` equal ``rate`` (bisection).

    >>> import numpy as np
    >>> round(solve_intercept(np.zeros(10), 0.5), 9)
    0.0
    """
    low, high = -30.0, 30.0
    for _ in range(80):
        mid = (low + high) / 2
        if sigmoid(logits + mid).mean() > rate:
            high = mid
        else:
            low = mid
    return (low + high) / 2
