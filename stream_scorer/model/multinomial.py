"""A served multinomial (softmax) model: its artifact and its class probabilities (pure scoring).

Binary models are the core (the streaming worker serves them); a multinomial model is trained with
``stream-scorer train --multinomial`` (:mod:`stream_scorer.training.multinomial`) and scored in batch with
``stream-scorer score``. Its artifact has the same layout as a binary model's, with ``kind: multinomial``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stream_scorer.batch import Float64Array
from stream_scorer.errors import ModelArtifactError
from stream_scorer.model.artifact import MULTINOMIAL, read_verified, write_files
from stream_scorer.model.fitted_spec import FittedSpec, fitted_from_dict, numeric_spec

_ARRAYS = ("coef", "intercept", "mean", "scale", "defaults")
GOLDEN_TOLERANCE = 1e-9


def softmax(z: Float64Array) -> Float64Array:
    """Row-wise softmax, stable for large logits.

    >>> softmax(np.array([[0.0, 0.0], [1000.0, 0.0]])).tolist()
    [[0.5, 0.5], [1.0, 0.0]]
    """
    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)


@dataclass(frozen=True, slots=True, kw_only=True)
class MultinomialModel:
    """A softmax regression over standardized features: ``softmax(((x - mean) / scale) @ coef + intercept)``."""

    name: str
    version: str
    classes: tuple[str, ...]
    feature_names: tuple[str, ...]
    coef: Float64Array  # (k, K)
    intercept: Float64Array  # (K,)
    mean: Float64Array
    scale: Float64Array
    defaults: Float64Array
    spec: FittedSpec | None = None
    created_at: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    golden_vectors: dict[str, Any] = field(default_factory=dict)
    checksum: str = ""

    def __post_init__(self) -> None:
        k, n_classes = len(self.feature_names), len(self.classes)
        if self.coef.shape != (k, n_classes) or self.intercept.shape != (n_classes,):
            raise ModelArtifactError(
                f"model {self.name}: coef or intercept do not fit {k} features, {n_classes} classes"
            )
        for array in (self.coef, self.intercept, self.mean, self.scale, self.defaults):
            if not np.isfinite(array).all():
                raise ModelArtifactError(f"model {self.name}: non-finite parameters")
        if not np.all(self.scale > 0):
            raise ModelArtifactError(f"model {self.name}: every scale must be > 0")

    @property
    def serving_spec(self) -> FittedSpec:
        """The spec that builds this model's rows (one numeric input per feature when it has none)."""
        if self.spec is not None:
            return self.spec
        return numeric_spec(self.feature_names, self.defaults, self.mean, self.scale)


def score_classes(model: MultinomialModel, matrix: Float64Array) -> Float64Array:
    """Class probabilities (n, K) of raw feature rows; standardization is folded into the weights."""
    weights = model.coef / model.scale[:, None]
    bias = model.intercept - model.mean @ weights
    return softmax(matrix @ weights + bias)


def save_multinomial(model: MultinomialModel, directory: Path) -> str:
    """Write the artifact (the same layout as a binary model's, with ``kind: multinomial``). Returns its checksum."""
    arrays = {"coef": model.coef, "intercept": model.intercept, "mean": model.mean, "scale": model.scale}
    manifest = {
        "kind": MULTINOMIAL,
        "name": model.name,
        "version": model.version,
        "classes": list(model.classes),
        "created_at": model.created_at,
        "feature_names": list(model.feature_names),
        "metrics": model.metrics,
        "training": model.training,
        "golden_vectors": model.golden_vectors,
        "feature_spec": model.spec.to_dict() if model.spec is not None else None,
    }
    return write_files(directory, manifest, {**arrays, "defaults": model.defaults})


def load_multinomial(directory: Path) -> MultinomialModel:
    """Load, verify (checksums, golden vectors) and return a multinomial artifact."""
    manifest, arrays, checksum = read_verified(directory, _ARRAYS)
    if manifest.get("kind") != MULTINOMIAL:
        raise ModelArtifactError(f"model artifact {directory} is not a multinomial model")
    try:
        model = MultinomialModel(
            name=manifest["name"],
            version=manifest["version"],
            classes=tuple(str(c) for c in manifest["classes"]),
            feature_names=tuple(manifest["feature_names"]),
            coef=arrays["coef"],
            intercept=arrays["intercept"],
            mean=arrays["mean"],
            scale=arrays["scale"],
            defaults=arrays["defaults"],
            spec=fitted_from_dict(manifest["feature_spec"]) if manifest.get("feature_spec") else None,
            created_at=manifest.get("created_at", ""),
            metrics=manifest.get("metrics", {}),
            training=manifest.get("training", {}),
            golden_vectors=manifest.get("golden_vectors", {}),
            checksum=checksum,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelArtifactError(f"model artifact {directory}: manifest.json lacks or mangles {exc}") from exc
    golden = model.golden_vectors
    if golden:
        try:
            rows = np.asarray(golden["features"], dtype=np.float64).reshape(-1, len(model.feature_names))
            difference = np.abs(score_classes(model, rows) - np.asarray(golden["probabilities"]))
            worst = float(np.max(difference)) if difference.size else float("inf")
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelArtifactError(
                f"model {model.name} {model.version}: golden vectors are unreadable: {exc}"
            ) from exc
        if not worst <= GOLDEN_TOLERANCE:
            raise ModelArtifactError(f"model {model.name} {model.version}: golden-vector check failed ({worst:.3g})")
    return model
