"""Multinomial (softmax) logistic regression for several classes: the fit and the training run.

Binary models are the core (the streaming worker serves them); a multinomial model is trained with
``stream-scorer train --multinomial`` and scored in batch with ``stream-scorer score``.

The objective is scikit-learn's (``LogisticRegression`` with more than two classes, L2)::

    0.5 * ||W||_F^2 + C * sum_i s_i * -log softmax(x_i @ W + b)[y_i]

with one column of ``W`` and one intercept per class, the intercepts unpenalized. It is minimized by
Newton's method with step halving. The intercepts are defined up to a common constant (adding one to all
leaves every probability unchanged); they are stored centered (summing to zero). The served model, its
artifact and its scoring are in :mod:`stream_scorer.model.multinomial`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from stream_scorer.batch import Float64Array
from stream_scorer.errors import TrainingError
from stream_scorer.model.multinomial import MultinomialModel, score_classes, softmax
from stream_scorer.training.dataset import Table, class_labels_from
from stream_scorer.training.featurespec import FeatureSpec
from stream_scorer.training.solvers import newton_step


def fit_multinomial(
    features: Float64Array,
    codes: npt.NDArray[np.int64],
    n_classes: int,
    C: float,
    sample_weight: Float64Array | None = None,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> tuple[Float64Array, Float64Array]:
    """Fit the L2-penalized softmax regression. Returns (coef (k, K), intercept (K,), centered).

    >>> x = np.array([[-2.0], [-1.0], [0.0], [0.1], [1.0], [2.0]])
    >>> coef, intercept = fit_multinomial(x, np.array([0, 0, 1, 1, 2, 2]), 3, C=10.0)
    >>> bool(coef[0, 0] < 0 < coef[0, 2]), round(float(intercept.sum()), 12)
    (True, 0.0)
    """
    if C <= 0:
        raise TrainingError(f"C must be > 0, got {C}")
    n, k = features.shape
    if n_classes < 2:
        raise TrainingError("a multinomial model needs at least two classes")
    weights = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    design = np.hstack([features, np.ones((n, 1))])
    onehot = np.zeros((n, n_classes))
    onehot[np.arange(n), codes] = 1.0
    # Parameters as a (k + 1, K) matrix, flattened class-major for the Newton system.
    penalty = np.ones((k + 1, n_classes))
    penalty[-1] = 0.0

    def objective(theta: Float64Array) -> float:
        z = design @ theta
        log_norm = np.logaddexp.reduce(z, axis=1)
        loss = np.sum(weights * (log_norm - np.sum(onehot * z, axis=1)))
        return float(0.5 * np.sum(penalty * theta * theta) + C * loss)

    theta = np.zeros((k + 1, n_classes))
    current = objective(theta)
    for _ in range(max_iter):
        p = softmax(design @ theta)
        gradient = penalty * theta + C * design.T @ (weights[:, None] * (p - onehot))
        size_block = k + 1
        hessian = np.zeros((n_classes * size_block, n_classes * size_block))
        for a in range(n_classes):
            for b in range(a, n_classes):
                coupling = p[:, a] * ((a == b) - p[:, b])
                block = C * (design.T * (weights * coupling)) @ design
                hessian[a * size_block : (a + 1) * size_block, b * size_block : (b + 1) * size_block] = block
                hessian[b * size_block : (b + 1) * size_block, a * size_block : (a + 1) * size_block] = block.T
        hessian += np.diag(penalty.T.ravel()) + 1e-10 * np.eye(len(hessian))  # the intercepts' common shift
        step = np.linalg.solve(hessian, gradient.T.ravel()).reshape(n_classes, size_block).T
        theta, current, converged = newton_step(objective, theta, step, current, tol)
        if converged:
            break
    intercept = theta[-1] - theta[-1].mean()
    return theta[:-1], intercept


def train_multinomial(
    table: Table,
    *,
    name: str,
    version: str,
    spec: FeatureSpec | None = None,
    label: str = "label",
    time_column: str = "event_time",
    C: float = 1.0,
    holdout: float = 0.2,
    seed: int = 0,
    progress: Callable[[str], None] = lambda stage: None,
) -> MultinomialModel:
    """Fit on the training part (split by time, else at random) and report accuracy and log loss held out."""
    from stream_scorer.training.train import prepare  # shared with the binary trainer

    classes, codes = class_labels_from(table, label)
    if len(classes) < 2:
        raise TrainingError("the label column has one class only; a classifier needs at least two")
    if not 0.0 < holdout < 1.0 or table.rows < 10:
        raise TrainingError("holdout must be in (0, 1) and the dataset needs at least 10 rows")
    data = prepare(table, spec, label=label, time_column=time_column, holdout=holdout, seed=seed, progress=progress)
    fitted, matrix, train_rows, test_rows = data.fitted, data.matrix, data.train_rows, data.held_out
    mean, scale = fitted.means(), fitted.scales()
    progress(f"fit: multinomial, {len(classes)} classes, C={C}, {fitted.n_features} features")
    coef, intercept = fit_multinomial((matrix[train_rows] - mean) / scale, codes[train_rows], len(classes), C)
    model = MultinomialModel(
        name=name,
        version=version,
        classes=classes,
        feature_names=fitted.feature_names,
        coef=coef,
        intercept=intercept,
        mean=mean,
        scale=scale,
        defaults=fitted.impute_values(),
        spec=fitted,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        training={
            "C": C,
            "penalty": "l2",
            "holdout": holdout,
            "seed": seed,
            "rows": table.rows,
            "data_sha256": table.fingerprint,
            "split": "time" if data.timed else "random",
        },
    )
    probabilities = score_classes(model, matrix[test_rows])
    picked = np.clip(probabilities[np.arange(len(test_rows)), codes[test_rows]], 1e-15, 1.0)
    metrics = {
        "validation": {
            "rows": len(test_rows),
            "accuracy": float(np.mean(probabilities.argmax(axis=1) == codes[test_rows])) if len(test_rows) else None,
            "log_loss": float(-np.mean(np.log(picked))) if len(test_rows) else None,
            "class_counts": {c: int(np.sum(codes[test_rows] == j)) for j, c in enumerate(classes)},
        }
    }
    golden = test_rows[:8] if len(test_rows) else train_rows[:8]
    vectors = {"features": matrix[golden].tolist(), "probabilities": score_classes(model, matrix[golden]).tolist()}
    return dataclasses.replace(model, metrics=metrics, golden_vectors=vectors)
