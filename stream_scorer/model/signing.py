"""Detached Ed25519 signatures of model artifacts.

``SIGNATURE`` (base64) beside ``manifest.json`` signs the manifest's bytes; the manifest holds the sha256
of ``arrays.npz``, so the signature covers the whole artifact. Keys are PEM (PKCS#8 private, SubjectPublicKeyInfo
public) and reach us as bytes: where they come from (a file, an environment variable) is the caller's
business, and they are never logged.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from stream_scorer.errors import ModelArtifactError

SIGNATURE_FILE = "SIGNATURE"


def generate_keypair() -> tuple[bytes, bytes]:
    """A new (private PEM, public PEM) Ed25519 key pair."""
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def sign(directory: Path, private_pem: bytes) -> None:
    """Write ``SIGNATURE`` for the artifact in ``directory``."""
    try:
        key = serialization.load_pem_private_key(private_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ModelArtifactError("the signing key is not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ModelArtifactError("the signing key is not an Ed25519 key")
    signature = key.sign((directory / "manifest.json").read_bytes())
    (directory / SIGNATURE_FILE).write_text(base64.b64encode(signature).decode() + "\n")


def verify(directory: Path, public_pem: bytes) -> None:
    """Raise :class:`ModelArtifactError` unless ``SIGNATURE`` is a valid signature of the manifest by this key."""
    try:
        key = serialization.load_pem_public_key(public_pem)
    except (ValueError, TypeError) as exc:
        raise ModelArtifactError("the verification key is not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ModelArtifactError("the verification key is not an Ed25519 key")
    try:
        signature = base64.b64decode((directory / SIGNATURE_FILE).read_text().strip(), validate=True)
    except FileNotFoundError as exc:
        raise ModelArtifactError(f"model artifact {directory} is not signed and signatures are required") from exc
    except (binascii.Error, ValueError) as exc:
        raise ModelArtifactError(f"model artifact {directory}: SIGNATURE is not base64") from exc
    try:
        key.verify(signature, (directory / "manifest.json").read_bytes())
    except InvalidSignature as exc:
        raise ModelArtifactError(f"model artifact {directory}: the signature does not match this key") from exc
