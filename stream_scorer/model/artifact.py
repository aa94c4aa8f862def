"""The model artifact: a directory with a JSON manifest, an ``.npz`` of arrays and a checksum.

::

    model-dir/
      manifest.json   name, version, created_at, feature_names, threshold, metrics (the quality report),
                      training details (data fingerprint), feature spec, calibration, baseline histograms,
                      golden vectors, sha256 of arrays.npz
      arrays.npz      coef, intercept, mean, scale, defaults (loaded with allow_pickle=False)
      CHECKSUM        sha256 of manifest.json; it covers arrays.npz through the manifest
      SIGNATURE       optional: Ed25519 signature of manifest.json (stream_scorer.model.signing)

The artifact's checksum (the content of ``CHECKSUM``) identifies the model in metrics and logs.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stream_scorer.batch import Float64Array
from stream_scorer.errors import ModelArtifactError
from stream_scorer.model.calibration import Calibration
from stream_scorer.model.fitted_spec import FittedSpec, fitted_from_dict, numeric_spec

FORMAT_VERSION = 2  # 2: baselines may hold a seasonal comparison (by_phase), which a format-1 reader refuses
_READABLE_VERSIONS = (1, 2)
BINARY = "binary"
MULTINOMIAL = "multinomial"
_ARRAYS = ("coef", "intercept", "mean", "scale", "defaults")


@dataclass(frozen=True, slots=True, kw_only=True)
class LogisticModel:
    """A binary logistic regression over standardized features, with an optional calibration map.

    ``p = calibrate(((x - mean) / scale) @ coef + intercept)``, where ``x`` is the row built by the
    feature ``spec`` from the model's input columns. ``defaults`` are the values imputed for a missing
    input (a missing or stale feature group): by default the training mean, which adds nothing to the logit.
    """

    name: str
    version: str
    feature_names: tuple[str, ...]
    coef: Float64Array
    intercept: float
    mean: Float64Array
    scale: Float64Array
    defaults: Float64Array
    threshold: float = 0.5
    created_at: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    # A few raw feature rows and the scores the training run computed for them; a loaded model must
    # reproduce them (see stream_scorer.model.score.verify_golden_vectors).
    golden_vectors: dict[str, Any] = field(default_factory=dict)
    # How to build the feature row from input columns; None: every feature is a numeric input of its own name.
    spec: FittedSpec | None = None
    calibration: Calibration = field(default_factory=Calibration)
    # Histograms of every feature and of the score on the training rows (stream_scorer.model.baseline), for drift.
    baselines: dict[str, Any] = field(default_factory=dict)
    checksum: str = ""

    def __post_init__(self) -> None:
        k = len(self.feature_names)
        for name in ("coef", "mean", "scale", "defaults"):
            array = getattr(self, name)
            if array.shape != (k,):
                raise ModelArtifactError(f"model {self.name}: {name} has shape {array.shape}, expected ({k},)")
            if not np.isfinite(array).all():
                raise ModelArtifactError(f"model {self.name}: {name} has non-finite values")
        if not np.all(self.scale > 0):
            raise ModelArtifactError(f"model {self.name}: every scale must be > 0")
        if not np.isfinite(self.intercept):
            raise ModelArtifactError(f"model {self.name}: intercept is not finite")
        if not 0.0 <= self.threshold <= 1.0:
            raise ModelArtifactError(f"model {self.name}: threshold {self.threshold} is not in [0, 1]")
        if self.spec is not None:
            if self.spec.feature_names != self.feature_names:
                raise ModelArtifactError(f"model {self.name}: the feature spec does not build the model's features")
            fitted = (self.spec.means(), self.spec.scales(), self.spec.impute_values())
            if not all(
                np.array_equal(a, b) for a, b in zip(fitted, (self.mean, self.scale, self.defaults), strict=True)
            ):
                raise ModelArtifactError(f"model {self.name}: the feature spec disagrees with mean, scale or defaults")

    @property
    def serving_spec(self) -> FittedSpec:
        """The spec that builds this model's rows: its own, or one numeric input per feature (imputed with defaults)."""
        if self.spec is not None:
            return self.spec
        return numeric_spec(self.feature_names, self.defaults, self.mean, self.scale)


def save(model: LogisticModel, directory: Path) -> str:
    """Write the artifact into ``directory`` (created if needed). Returns its checksum."""
    arrays = {
        "coef": model.coef,
        "intercept": np.array([model.intercept]),
        "mean": model.mean,
        "scale": model.scale,
        "defaults": model.defaults,
    }
    manifest = {
        "kind": BINARY,
        "name": model.name,
        "version": model.version,
        "created_at": model.created_at,
        "feature_names": list(model.feature_names),
        "threshold": model.threshold,
        "metrics": model.metrics,
        "training": model.training,
        "golden_vectors": model.golden_vectors,
        "feature_spec": model.spec.to_dict() if model.spec is not None else None,
        "calibration": model.calibration.to_dict(),
        "baselines": model.baselines,
    }
    return write_files(directory, manifest, arrays)


def write_files(directory: Path, manifest: dict[str, Any], arrays: dict[str, Float64Array]) -> str:
    """Write ``arrays.npz``, then the manifest (with the arrays' sha256), then ``CHECKSUM``. Returns the checksum."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays_path = directory / "arrays.npz"
    np.savez(arrays_path, **arrays)  # type: ignore[arg-type]
    manifest = {
        **manifest,
        "format_version": FORMAT_VERSION,
        "files": {"arrays.npz": _sha256(arrays_path.read_bytes())},
    }
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode()
    (directory / "manifest.json").write_bytes(manifest_bytes)
    checksum = _sha256(manifest_bytes)
    (directory / "CHECKSUM").write_text(checksum + "\n")
    return checksum


def read_verified(directory: Path, names: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Float64Array], str]:
    """The manifest, the arrays ``names`` and the checksum, after both hashes are verified."""
    try:
        manifest_bytes = (directory / "manifest.json").read_bytes()
        expected = (directory / "CHECKSUM").read_text().strip()
        arrays_bytes = (directory / "arrays.npz").read_bytes()
    except FileNotFoundError as exc:
        raise ModelArtifactError(f"model artifact {directory} is incomplete: {exc.filename} is missing") from exc
    except OSError as exc:
        raise ModelArtifactError(f"model artifact {directory} cannot be read: {exc}") from exc
    checksum = _sha256(manifest_bytes)
    if checksum != expected:
        raise ModelArtifactError(f"model artifact {directory}: manifest.json does not match CHECKSUM")
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError as exc:
        raise ModelArtifactError(f"model artifact {directory}: manifest.json is not JSON") from exc
    if manifest.get("format_version") not in _READABLE_VERSIONS:
        raise ModelArtifactError(
            f"model artifact {directory}: format_version {manifest.get('format_version')} is not one of "
            f"{_READABLE_VERSIONS} (an artifact of a newer stream-scorer: upgrade the workers before retraining)"
        )
    if _sha256(arrays_bytes) != manifest.get("files", {}).get("arrays.npz"):
        raise ModelArtifactError(f"model artifact {directory}: arrays.npz does not match its sha256 in the manifest")
    try:
        with np.load(directory / "arrays.npz", allow_pickle=False) as npz:
            arrays = {name: np.asarray(npz[name], dtype=np.float64) for name in names}
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise ModelArtifactError(f"model artifact {directory}: arrays.npz cannot be read: {exc}") from exc
    return manifest, arrays, checksum


def kind_of(directory: Path) -> str:
    """``binary`` or ``multinomial``, from the manifest (unverified: a peek to choose the loader)."""
    try:
        return str(json.loads((directory / "manifest.json").read_bytes()).get("kind", BINARY))
    except (OSError, ValueError, AttributeError):
        return BINARY  # the loader then says what is wrong


def load(directory: Path) -> LogisticModel:
    """Load and verify a binary model's artifact; raise :class:`ModelArtifactError` saying what is wrong."""
    manifest, arrays, checksum = read_verified(directory, _ARRAYS)
    kind = manifest.get("kind", BINARY)
    if kind != BINARY:
        raise ModelArtifactError(
            f"model artifact {directory} is a {kind} model; the streaming worker serves binary models "
            "(score a multinomial model with `stream-scorer score`)"
        )
    try:
        return LogisticModel(
            name=manifest["name"],
            version=manifest["version"],
            feature_names=tuple(manifest["feature_names"]),
            coef=arrays["coef"],
            intercept=float(arrays["intercept"][0]),
            mean=arrays["mean"],
            scale=arrays["scale"],
            defaults=arrays["defaults"],
            threshold=float(manifest["threshold"]),
            created_at=manifest.get("created_at", ""),
            metrics=manifest.get("metrics", {}),
            training=manifest.get("training", {}),
            golden_vectors=manifest.get("golden_vectors", {}),
            spec=fitted_from_dict(manifest["feature_spec"]) if manifest.get("feature_spec") else None,
            calibration=Calibration.from_dict(manifest.get("calibration", {"method": "none"})),
            baselines=manifest.get("baselines", {}),
            checksum=checksum,
        )
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ModelArtifactError(f"model artifact {directory}: manifest.json lacks or mangles {exc}") from exc


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
