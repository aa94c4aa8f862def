"""The model artifact: round trip, and every kind of tampering or damage is refused with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stream_scorer.errors import ModelArtifactError
from stream_scorer.model import artifact
from tests.support import small_model


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, str]:
    model = small_model(("event.amount_log", "event.is_ecom", "g.f"))
    return tmp_path, artifact.save(model, tmp_path)


def test_round_trip(saved) -> None:
    directory, checksum = saved
    loaded = artifact.load(directory)
    original = small_model(("event.amount_log", "event.is_ecom", "g.f"))
    assert loaded.checksum == checksum and len(checksum) == 64
    assert loaded.feature_names == original.feature_names and loaded.threshold == original.threshold
    for name in ("coef", "mean", "scale", "defaults"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(original, name))


def test_changed_arrays_are_refused(saved) -> None:
    directory, _ = saved
    np.savez(
        directory / "arrays.npz",
        coef=np.zeros(3),
        intercept=np.zeros(1),
        mean=np.zeros(3),
        scale=np.ones(3),
        defaults=np.zeros(3),
    )
    with pytest.raises(ModelArtifactError, match=r"arrays\.npz does not match"):
        artifact.load(directory)


def test_changed_manifest_is_refused(saved) -> None:
    directory, _ = saved
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["threshold"] = 0.01
    (directory / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelArtifactError, match="does not match CHECKSUM"):
        artifact.load(directory)


def test_missing_file_is_named(saved) -> None:
    directory, _ = saved
    (directory / "CHECKSUM").unlink()
    with pytest.raises(ModelArtifactError, match="CHECKSUM"):
        artifact.load(directory)


def test_pickled_arrays_are_not_loaded(saved) -> None:
    directory, _ = saved
    np.savez(
        directory / "arrays.npz",
        coef=np.array([object()] * 3, dtype=object),
        intercept=np.zeros(1),
        mean=np.zeros(3),
        scale=np.ones(3),
        defaults=np.zeros(3),
    )
    # Re-sign so that only allow_pickle=False stands between us and the object array.
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"]["arrays.npz"] = artifact._sha256((directory / "arrays.npz").read_bytes())
    data = json.dumps(manifest).encode()
    (directory / "manifest.json").write_bytes(data)
    (directory / "CHECKSUM").write_text(artifact._sha256(data))
    with pytest.raises(ModelArtifactError, match="cannot be read"):
        artifact.load(directory)


def test_invalid_parameters_are_refused() -> None:
    model = small_model(("event.amount_log",))
    with pytest.raises(ModelArtifactError, match="scale"):
        type(model)(**{**{f: getattr(model, f) for f in model.__slots__}, "scale": np.array([0.0])})
    with pytest.raises(ModelArtifactError, match="threshold"):
        type(model)(**{**{f: getattr(model, f) for f in model.__slots__}, "threshold": 1.5})


def test_golden_vectors_are_stored_and_checked(tmp_path: Path) -> None:
    from stream_scorer.model.score import golden_vectors, verify_golden_vectors

    model = small_model(("event.amount_log", "event.is_ecom", "g.f"))
    rows = np.random.default_rng(0).normal(size=(5, 3))
    model = type(model)(
        **{**{f: getattr(model, f) for f in model.__slots__}, "golden_vectors": golden_vectors(model, rows)}
    )
    artifact.save(model, tmp_path)
    loaded = artifact.load(tmp_path)
    verify_golden_vectors(loaded)  # the serving path reproduces the stored scores
    assert len(loaded.golden_vectors["scores"]) == 5

    # An artifact whose arrays no longer produce its stored scores is refused (re-signed, so only this check fails).
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["golden_vectors"]["scores"][2] += 1e-6
    data = json.dumps(manifest).encode()
    (tmp_path / "manifest.json").write_bytes(data)
    (tmp_path / "CHECKSUM").write_text(artifact._sha256(data))
    with pytest.raises(ModelArtifactError, match="golden-vector check failed"):
        verify_golden_vectors(artifact.load(tmp_path))


def test_a_flipped_byte_anywhere_is_refused(saved) -> None:
    directory, _ = saved
    for name in ("arrays.npz", "manifest.json"):
        original = (directory / name).read_bytes()
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0x01
        (directory / name).write_bytes(bytes(flipped))
        with pytest.raises(ModelArtifactError):
            artifact.load(directory)
        (directory / name).write_bytes(original)
    artifact.load(directory)
