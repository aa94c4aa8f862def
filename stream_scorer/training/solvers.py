"""Solvers for penalized logistic regression, in scikit-learn's convention (pure numpy).

Minimize over the coefficients ``w`` and an unpenalized intercept ``b``, with non-negative row weights ``s_i``::

    C * sum_i s_i * logloss(y_i, sigmoid(x_i @ w + b)) + r(w)

    l2:          r(w) = 0.5 * ||w||^2                                   Newton's method
    l1:          r(w) = ||w||_1                                         accelerated proximal gradient
    elasticnet:  r(w) = (1 - l1_ratio) / 2 * ||w||^2 + l1_ratio * ||w||_1
    none:        r(w) = 0 (C does not matter)                           Newton's method

The proximal method is FISTA with adaptive restart: a gradient step on the smooth part, then soft
thresholding of ``w``, with momentum that is reset whenever it points uphill.

Without a penalty the optimum exists only if the classes overlap. When a direction of ``(w, b)``
separates them, weakly or strictly, the loss keeps falling along it and Newton's iterates run off to
infinity; :func:`newton_unpenalized` looks for such a direction and raises :class:`TrainingError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeAlias

import numpy as np

from stream_scorer.batch import Float64Array
from stream_scorer.errors import TrainingError
from stream_scorer.model.calibration import sigmoid

ClassWeight: TypeAlias = Literal["balanced"] | Mapping[int, float] | None

# A row whose margin (signed x @ w + b) exceeds this has a log loss below 3e-7: it is probably
# running off to infinity, so the unpenalized solver starts looking for a separating direction.
_SATURATED_MARGIN = 15.0

_SEPARABLE = (
    "the classes are perfectly separable by the features ({how}), so without a penalty the coefficients "
    "grow without bound; use penalty l2, l1 or elasticnet"
)


def row_weights(labels: Float64Array, sample_weight: Float64Array | None) -> Float64Array:
    """Validated per-row weights: ones when ``sample_weight`` is None.

    Raise :class:`TrainingError` unless they are finite, non-negative, one per row, and not all zero.
    """
    if sample_weight is None:
        return np.ones(len(labels))
    weights = np.asarray(sample_weight, dtype=np.float64)
    if weights.shape != labels.shape:
        raise TrainingError(f"sample_weight needs one weight per row: shape {weights.shape}, labels {labels.shape}")
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise TrainingError("sample weights must be finite and >= 0")
    if not weights.any():
        raise TrainingError("sample weights are all zero")
    return weights


def class_sample_weight(labels: Float64Array, class_weight: ClassWeight) -> Float64Array:
    """Per-row weights from a class weighting, as scikit-learn computes them.

    ``None`` weighs every row 1; ``"balanced"`` weighs class ``c`` by ``n_rows / (n_classes * count(c))``
    over the classes present; a dict ``{0: w0, 1: w1}`` sets them (a class left out weighs 1).

    >>> class_sample_weight(np.array([0.0, 0.0, 0.0, 1.0]), "balanced").tolist()
    [0.6666666666666666, 0.6666666666666666, 0.6666666666666666, 2.0]
    >>> class_sample_weight(np.array([0.0, 1.0]), {1: 3.0}).tolist()
    [1.0, 3.0]
    """
    if class_weight is None:
        return np.ones(len(labels))
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise TrainingError(
                f"class_weight must be None, 'balanced' or a dict {{0: w0, 1: w1}}, not {class_weight!r}"
            )
        counts = np.array([np.sum(labels == 0), np.sum(labels == 1)], dtype=np.float64)
        per_class = len(labels) / (np.count_nonzero(counts) * np.maximum(counts, 1.0))
    elif isinstance(class_weight, Mapping):
        unknown = [key for key in class_weight if key not in (0, 1)]
        if unknown:
            raise TrainingError(f"class_weight has keys {unknown}; the classes are 0 and 1")
        per_class = np.array([class_weight.get(0, 1.0), class_weight.get(1, 1.0)], dtype=np.float64)
        if not np.isfinite(per_class).all() or (per_class < 0).any():
            raise TrainingError(f"class weights must be finite and >= 0, got {dict(class_weight)}")
        if not per_class.any():
            raise TrainingError("class weights are all zero")
    else:
        raise TrainingError(f"class_weight must be None, 'balanced' or a dict {{0: w0, 1: w1}}, not {class_weight!r}")
    return np.asarray(np.where(labels == 1, per_class[1], per_class[0]), dtype=np.float64)


def newton_l2(
    features: Float64Array,
    labels: Float64Array,
    C: float,
    sample_weight: Float64Array | None = None,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> tuple[Float64Array, float]:
    """L2: Newton's method with step halving. Returns (coef, intercept)."""
    params, _ = _newton(features, labels, row_weights(labels, sample_weight), C, True, max_iter, tol)
    return params[:-1], float(params[-1])


def newton_unpenalized(
    features: Float64Array,
    labels: Float64Array,
    sample_weight: Float64Array | None = None,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> tuple[Float64Array, float]:
    """No penalty (maximum likelihood): Newton's method with step halving. Returns (coef, intercept).

    Raise :class:`TrainingError` when the classes are separable, completely (every row is on its side of
    a hyperplane) or quasi-completely (some rows lie on it), because then there is no optimum.

    >>> x = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    >>> newton_unpenalized(x, np.array([0.0, 0.0, 1.0, 1.0]))
    Traceback (most recent call last):
    ...
    stream_scorer.errors.TrainingError: the classes are perfectly separable by the features (every row ...
    >>> coef, intercept = newton_unpenalized(x, np.array([0.0, 1.0, 0.0, 1.0]))
    >>> round(float(coef[0]), 4), round(intercept, 4)
    (0.4196, 0.0)
    """
    weights = row_weights(labels, sample_weight)
    params, converged = _newton(features, labels, weights, 1.0, False, max_iter, tol)
    if not converged:
        how = f"Newton's method did not converge in {max_iter} steps"
        raise TrainingError(_SEPARABLE.format(how=how) + ", or scale the features")
    return params[:-1], float(params[-1])


def _newton(
    features: Float64Array,
    labels: Float64Array,
    weights: Float64Array,
    C: float,
    penalized: bool,
    max_iter: int,
    tol: float,
) -> tuple[Float64Array, bool]:
    """Minimize the weighted objective (with ``0.5 * ||w||^2`` if ``penalized``). Returns (params, converged)."""
    n, k = features.shape
    design = np.hstack([features, np.ones((n, 1))])
    sign = 2.0 * labels - 1.0
    penalty = np.ones(k + 1) if penalized else np.zeros(k + 1)
    penalty[-1] = 0.0  # the intercept is not penalized
    params = np.zeros(k + 1)

    # Written in margins sign * z so that a row's loss and residual keep their precision when |z| is large.
    def objective(p: Float64Array) -> float:
        return float(0.5 * np.sum(penalty * p * p) + C * np.sum(weights * np.logaddexp(0.0, -sign * (design @ p))))

    current = objective(params)
    for _ in range(max_iter):
        margin = sign * (design @ params)
        if not penalized:
            _refuse_separation(design, sign, weights, params, margin)
        wrong = sigmoid(-margin)  # the probability given to the wrong class
        gradient = penalty * params - C * design.T @ (weights * sign * wrong)
        hessian = C * (design.T * (weights * wrong * (1.0 - wrong))) @ design + np.diag(penalty)
        step = np.linalg.solve(hessian + 1e-12 * np.eye(k + 1), gradient)
        params, current, converged = newton_step(objective, params, step, current, tol)
        if converged:
            if not penalized:
                _refuse_separation(design, sign, weights, params, sign * (design @ params))
            return params, True
    return params, False


def newton_step(
    objective: Callable[[Any], float], params: Any, step: Any, current: float, tol: float
) -> tuple[Any, float, bool]:
    """Take the Newton ``step``, halved until the objective does not rise (at most down to 1e-10 of it).

    Returns (new params, new value, converged): converged when the objective barely moved and so did the
    parameters. Shared by the binary and the multinomial solvers.
    """
    size = 1.0
    while size > 1e-10:
        candidate = params - size * step
        value = objective(candidate)
        if value <= current:
            break
        size /= 2
    converged = current - value <= tol * max(1.0, abs(value)) and float(np.max(np.abs(size * step))) < 1e-8
    return candidate, value, converged


def _refuse_separation(
    design: Float64Array, sign: Float64Array, weights: Float64Array, params: Float64Array, margin: Float64Array
) -> None:
    """Raise :class:`TrainingError` if ``params``, or its part that leaves the unsaturated rows unchanged, separates.

    A direction ``d`` with ``sign * (design @ d) >= 0`` on every weighted row, and > 0 on one, proves there is no
    optimum: moving along it never raises a row's loss and lowers some. Both tests are certificates, not guesses.
    """
    active = weights > 0
    if np.all(margin[active] > 0):
        raise TrainingError(_SEPARABLE.format(how="every row is on its side of a hyperplane"))
    saturated = active & (margin > _SATURATED_MARGIN)
    if not saturated.any():
        return
    # Quasi-complete separation: the saturated rows run off to infinity along a direction on which the
    # other rows all lie. Project the iterate onto the null space of the other rows to isolate it.
    others = design[active & ~saturated]
    direction = params - np.linalg.lstsq(others, others @ params)[0] if len(others) else params
    moved = sign[active] * (design[active] @ direction)
    scale = float(np.max(np.abs(moved)))
    if scale > 1e-8 * float(np.max(np.abs(margin[active]))) and float(np.min(moved)) >= -1e-9 * scale:
        raise TrainingError(_SEPARABLE.format(how="some rows lie on a hyperplane and all others on their side of it"))


def proximal(
    features: Float64Array,
    labels: Float64Array,
    C: float,
    l1_ratio: float,
    sample_weight: Float64Array | None = None,
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
    weights = row_weights(labels, sample_weight)
    n, k = features.shape
    design = np.hstack([features, np.ones((n, 1))])
    l2 = 1.0 - l1_ratio
    ridge = np.full(k + 1, l2)
    ridge[-1] = 0.0
    lipschitz = C * np.linalg.norm(design * np.sqrt(weights)[:, None], 2) ** 2 / 4.0 + l2
    step = 1.0 / lipschitz
    threshold = step * l1_ratio

    def gradient(p: Float64Array) -> Float64Array:
        return C * design.T @ (weights * (sigmoid(design @ p) - labels)) + ridge * p

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
