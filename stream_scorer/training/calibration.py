"""Calibration maps fitted on held-out rows at training time: Platt scaling and isotonic regression (pure).

Both match scikit-learn (``tests/unit/test_calibration.py``); :mod:`stream_scorer.model.calibration` applies them.
"""

from __future__ import annotations

import numpy as np

from stream_scorer.batch import Float64Array
from stream_scorer.errors import TrainingError
from stream_scorer.model.calibration import Calibration, sigmoid

# Probabilities closer than this count as tied x values, as in scikit-learn's isotonic regression.
_TIE = float(np.finfo(np.float64).resolution)


def fit_platt(logits: Float64Array, labels: Float64Array, max_iter: int = 100) -> Calibration:
    """Platt scaling: an unpenalized logistic regression of the 0/1 labels on the logit, by Newton's method.

    The targets are the plain labels, not Platt's smoothed ``(n+ + 1) / (n+ + 2)``, so the fit equals
    scikit-learn's ``LogisticRegression(C=np.inf)`` on ``logits.reshape(-1, 1)``. Raises
    :class:`TrainingError` when no finite fit exists: one class, constant logits, or classes that the
    logit separates.

    >>> cal = fit_platt(np.array([-2.0, -1.0, 0.0, 1.0, 2.0, 0.5]), np.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0]))
    >>> round(cal.a, 4), round(cal.b, 4)
    (0.8028, -0.0827)
    """
    z, y = _checked(logits, labels, "logits")
    if len(np.unique(y)) < 2:
        raise TrainingError("Platt scaling needs held-out rows of both classes")
    if np.ptp(z) == 0:
        raise TrainingError("Platt scaling needs varying logits; all held-out logits are equal")
    if z[y == 0].max() <= z[y == 1].min() or z[y == 1].max() <= z[y == 0].min():
        raise TrainingError("the logit separates the held-out classes; Platt scaling has no finite fit")
    design = np.column_stack([z, np.ones_like(z)])
    params = np.array([1.0, 0.0])

    def objective(p: Float64Array) -> float:
        t = design @ p
        return float(np.sum(np.logaddexp(0.0, t) - y * t))

    current = objective(params)
    for _ in range(max_iter):
        prob = sigmoid(design @ params)
        gradient = design.T @ (prob - y)
        hessian = (design.T * (prob * (1.0 - prob))) @ design
        step = np.linalg.solve(hessian, gradient)
        size = 1.0
        while size > 1e-10:  # halve the step until the objective does not increase
            candidate = params - size * step
            value = objective(candidate)
            if value <= current:
                break
            size /= 2
        params, current = candidate, value
        if np.max(np.abs(size * step)) < 1e-12 * max(1.0, float(np.max(np.abs(params)))):
            return Calibration("platt", a=float(params[0]), b=float(params[1]))
    raise TrainingError(f"Platt scaling did not converge in {max_iter} Newton steps")


def fit_isotonic(
    probabilities: Float64Array, labels: Float64Array, sample_weight: Float64Array | None = None
) -> Calibration:
    """Isotonic (increasing) regression of the labels on the probabilities, by pool-adjacent-violators.

    As scikit-learn's ``IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1)``: zero-weight rows
    are dropped, tied probabilities are pooled first (their weighted mean label), and the knots are the
    first and last probability of each pooled block. Raises :class:`TrainingError` on bad input.

    >>> cal = fit_isotonic(np.array([0.1, 0.2, 0.3, 0.4, 0.5]), np.array([0.0, 1.0, 1.0, 0.0, 1.0]))
    >>> cal.x, [round(v, 4) for v in cal.y]
    ((0.1, 0.2, 0.4, 0.5), [0.0, 0.6667, 0.6667, 1.0])
    """
    p, labels = _checked(probabilities, labels, "probabilities")
    if np.any((p < 0.0) | (p > 1.0)):
        raise TrainingError("isotonic calibration needs probabilities in [0, 1]")
    w = np.ones_like(p) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if w.shape != p.shape or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise TrainingError("sample_weight must hold one finite, non-negative weight per row")
    keep = w > 0
    if not keep.any():
        raise TrainingError("isotonic calibration needs at least one row with a positive weight")
    x, weight_sum, label_sum = _pool_ties(p[keep], labels[keep], w[keep])
    # Pool adjacent violators: a stack of blocks (weighted label sum, weight sum, first index, last index).
    blocks: list[list[float]] = []
    for i, (s, v) in enumerate(zip(label_sum.tolist(), weight_sum.tolist(), strict=True)):
        block = [s, v, i, i]
        while blocks and blocks[-1][0] * block[1] >= block[0] * blocks[-1][1]:  # mean(previous) >= mean(new)
            previous = blocks.pop()
            block = [previous[0] + block[0], previous[1] + block[1], previous[2], block[3]]
        blocks.append(block)
    knots_x: list[float] = []
    knots_y: list[float] = []
    for s, v, first, last in blocks:
        level = min(max(s / v, 0.0), 1.0)
        for index in sorted({int(first), int(last)}):
            knots_x.append(float(x[index]))
            knots_y.append(level)
    return Calibration("isotonic", x=tuple(knots_x), y=tuple(knots_y))


def _pool_ties(
    p: Float64Array, labels: Float64Array, w: Float64Array
) -> tuple[Float64Array, Float64Array, Float64Array]:
    """Distinct probabilities (sorted) with the weight sum and weighted label sum of the rows at each."""
    x, inverse = np.unique(p, return_inverse=True)
    weight_sum = np.asarray(np.bincount(inverse, weights=w), dtype=np.float64)
    label_sum = np.asarray(np.bincount(inverse, weights=w * labels), dtype=np.float64)
    close = np.flatnonzero(np.diff(x) < _TIE)
    if len(close) == 0:
        return x, weight_sum, label_sum
    # Rare: distinct values within _TIE join the group of the first value of their run.
    group = np.zeros(len(x), dtype=np.intp)
    start = 0
    for i in range(1, len(x)):
        if x[i] - x[start] >= _TIE:
            start = i
        group[i] = start
    starts = np.unique(group)
    remap = np.searchsorted(starts, group)
    pooled_weight = np.asarray(np.bincount(remap, weights=weight_sum), dtype=np.float64)
    return x[starts], pooled_weight, np.asarray(np.bincount(remap, weights=label_sum), dtype=np.float64)


def _checked(values: Float64Array, labels: Float64Array, what: str) -> tuple[Float64Array, Float64Array]:
    v = np.asarray(values, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if v.ndim != 1 or v.shape != y.shape:
        raise TrainingError(f"{what} and labels must be 1-D of equal length, got {v.shape} and {y.shape}")
    if len(v) == 0:
        raise TrainingError("calibration needs at least one held-out row")
    if not np.all(np.isfinite(v)):
        raise TrainingError(f"{what} must be finite")
    if not np.all((y == 0.0) | (y == 1.0)):
        raise TrainingError("labels must be 0 or 1")
    return v, y
