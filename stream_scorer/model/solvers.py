"""Solvers for penalized logistic regression, in scikit-learn's convention (pure numpy).

Minimize over the coefficients ``w`` and an unpenalized intercept ``b``::

    C * sum_i logloss(y_i, sigmoid(x_i @ w + b)) + r(w)

    l2:          r(w) = 0.5 * ||w||^2                                   Newton's method
    l1:          r(w) = ||w||_1                                         accelerated proximal gradient
    elasticnet:  r(w) = (1 - l1_ratio) / 2 * ||w||^2 + l1_ratio * ||w||_1

The proximal method is FISTA with adaptive restart: a gradient step on the smooth part, then soft
thresholding of ``w``, with momentum that is reset whenever it points uphill.
"""

from __future__ import annotations

import numpy as np

from stream_scorer.batch import Float64Array
from stream_scorer.model.score import sigmoid


def newton_l2(
    features: Float64Array, labels: Float64Array, C: float, max_iter: int = 100, tol: float = 1e-10
) -> tuple[Float64Array, float]:
    """L2: Newton's method with step halving. Returns (coef, intercept)."""
    n, k = features.shape
    design = np.hstack([features, np.ones((n, 1))])
    penalty = np.ones(k + 1)
    penalty[-1] = 0.0  # the intercept is not penalized
    params = np.zeros(k + 1)

    def objective(p: Float64Array) -> float:
        z = design @ p
        return float(0.5 * np.sum(penalty * p * p) + C * np.sum(np.logaddexp(0.0, z) - labels * z))

    current = objective(params)
    for _ in range(max_iter):
        prob = sigmoid(design @ params)
        gradient = penalty * params + C * design.T @ (prob - labels)
        hessian = C * (design.T * (prob * (1.0 - prob))) @ design + np.diag(penalty)
        step = np.linalg.solve(hessian + 1e-12 * np.eye(k + 1), gradient)
        size = 1.0
        while size > 1e-10:
            candidate = params - size * step
            value = objective(candidate)
            if value <= current:
                break
            size /= 2
        params, previous, current = candidate, current, value
        if previous - current <= tol * max(1.0, abs(current)) and np.max(np.abs(size * step)) < 1e-8:
            break
    return params[:-1], float(params[-1])


def proximal(
    features: Float64Array,
    labels: Float64Array,
    C: float,
    l1_ratio: float,
    max_iter: int = 200_000,
    tol: float = 1e-11,
) -> tuple[Float64Array, float]:
    """L1 (``l1_ratio=1``) or elastic net: FISTA with adaptive restart. Returns (coef, intercept).

    >>> x = np.array([[-2.0, 0.1], [-1.0, -0.2], [1.0, 0.3], [2.0, 0.0], [0.5, -0.1], [-0.5, 0.2]])
    >>> y = np.array([0.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    >>> coef, _ = proximal(x, y, C=1.0, l1_ratio=1.0)
    >>> bool(coef[0] > 0), float(coef[1])   # the weak feature is cut to exactly zero
    (True, 0.0)
    """
    n, k = features.shape
    design = np.hstack([features, np.ones((n, 1))])
    l2 = 1.0 - l1_ratio
    ridge = np.full(k + 1, l2)
    ridge[-1] = 0.0
    lipschitz = C * np.linalg.norm(design, 2) ** 2 / 4.0 + l2
    step = 1.0 / lipschitz
    threshold = step * l1_ratio

    def gradient(p: Float64Array) -> Float64Array:
        return C * design.T @ (sigmoid(design @ p) - labels) + ridge * p

    def prox(v: Float64Array) -> Float64Array:
        out = v.copy()
        out[:-1] = np.sign(v[:-1]) * np.maximum(np.abs(v[:-1]) - threshold, 0.0)
        return out

    params = np.zeros(k + 1)
    look = params.copy()
    momentum = 1.0
    for _ in range(max_iter):
        nxt = prox(look - step * gradient(look))
        if np.dot(look - nxt, nxt - params) > 0:  # momentum points uphill: restart it
            momentum, look = 1.0, params.copy()
            continue
        change = float(np.max(np.abs(nxt - params)))
        following = (1.0 + np.sqrt(1.0 + 4.0 * momentum * momentum)) / 2.0
        look = nxt + ((momentum - 1.0) / following) * (nxt - params)
        params, momentum = nxt, following
        if change < tol:
            break
    return params[:-1], float(params[-1])
