"""Ed25519 artifact signatures: a signed artifact loads; unsigned (when required), tampered or foreign ones do not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream_scorer.config import load_settings
from stream_scorer.errors import ConfigError, ModelArtifactError
from stream_scorer.model import artifact, signing
from stream_scorer.wiring import build_runtime
from tests.support import FRAUD_SETTINGS_FILE, small_model

FEATURES = ("event.amount_log", "event.is_ecom")


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    private, public = signing.generate_keypair()
    (tmp_path / "private.pem").write_bytes(private)
    (tmp_path / "public.pem").write_bytes(public)
    return tmp_path / "private.pem", tmp_path / "public.pem"


def test_sign_then_verify_and_every_way_to_fail(tmp_path: Path, keys) -> None:
    private, public = keys
    model_dir = tmp_path / "model"
    artifact.save(small_model(FEATURES), model_dir)
    with pytest.raises(ModelArtifactError, match="not signed"):
        signing.verify(model_dir, public.read_bytes())
    signing.sign(model_dir, private.read_bytes())
    signing.verify(model_dir, public.read_bytes())

    _, other_public = signing.generate_keypair()
    with pytest.raises(ModelArtifactError, match="does not match"):
        signing.verify(model_dir, other_public)
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["threshold"] = 0.01  # any edit of the manifest breaks the signature
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelArtifactError, match="does not match"):
        signing.verify(model_dir, public.read_bytes())
    with pytest.raises(ModelArtifactError, match="PEM public key"):
        signing.verify(model_dir, b"not a key")


def test_the_worker_refuses_an_unsigned_artifact_when_signatures_are_required(tmp_path: Path, keys) -> None:
    _, public = keys
    model_dir = tmp_path / "model"
    artifact.save(small_model(FEATURES), model_dir)
    env = {
        "STREAM_SCORER_MODEL_PATH": str(model_dir),
        "STREAM_SCORER_REQUIRE_SIGNATURE": "true",
        "STREAM_SCORER_MODEL_PUBLIC_KEY": f"file:{public}",
    }
    with pytest.raises(ModelArtifactError, match="not signed"):
        build_runtime(load_settings(FRAUD_SETTINGS_FILE, env))  # refused before any connection is made
    with pytest.raises(ConfigError, match="model_public_key"):
        load_settings(None, {"STREAM_SCORER_REQUIRE_SIGNATURE": "true"})


def test_keygen_and_sign_from_the_command_line(tmp_path: Path) -> None:
    from stream_scorer.cli import main

    model_dir = tmp_path / "model"
    artifact.save(small_model(FEATURES), model_dir)
    assert main(["model", "keygen", "--out", str(tmp_path / "keys")]) == 0
    assert (tmp_path / "keys" / "private.pem").stat().st_mode & 0o077 == 0  # not readable by others
    assert main(["model", "sign", str(model_dir), "--key", f"file:{tmp_path / 'keys' / 'private.pem'}"]) == 0
    signing.verify(model_dir, (tmp_path / "keys" / "public.pem").read_bytes())
