"""Load an artifact and verify everything a worker checks before it serves a model (I/O at the edge).

This is the one door to a served model: the worker at startup and on every hot reload, the registry before
it promotes or rolls back, and the batch scorer all open artifacts here, with the same checks.
"""

from __future__ import annotations

from pathlib import Path

from stream_scorer.model import artifact, signing
from stream_scorer.model.artifact import LogisticModel
from stream_scorer.model.multinomial import MultinomialModel, load_multinomial
from stream_scorer.model.score import verify_golden_vectors


def load_verified(path: Path, public_key_pem: bytes | None, require_signature: bool) -> LogisticModel:
    """The artifact at ``path``, after its checks; raises :class:`ModelArtifactError` saying which failed.

    1. Checksums: ``CHECKSUM`` matches ``manifest.json``, which holds the sha256 of ``arrays.npz``.
    2. Signature: with a key, a present ``SIGNATURE`` must verify; with ``require_signature``, it must exist.
    3. Golden vectors: the serving path reproduces the scores stored at training time.

    Whether the model's features fit the configured feature groups is checked when its scorer is built.
    """
    model = artifact.load(path)
    _check_signature(path, public_key_pem, require_signature)
    verify_golden_vectors(model)
    return model


def load_verified_multinomial(path: Path, public_key_pem: bytes | None, require_signature: bool) -> MultinomialModel:
    """A multinomial artifact after the same checks (its golden vectors hold class probabilities)."""
    _check_signature(path, public_key_pem, require_signature)
    return load_multinomial(path)


def _check_signature(path: Path, public_key_pem: bytes | None, require_signature: bool) -> None:
    if public_key_pem is not None and (require_signature or (path / signing.SIGNATURE_FILE).exists()):
        signing.verify(path, public_key_pem)
