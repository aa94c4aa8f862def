"""Secrets given by reference (``env:NAME`` or ``file:/path``), and masking them in what is shown."""

from __future__ import annotations

import os
from pathlib import Path

from stream_scorer.errors import ConfigError


def resolve_secret(reference: str, what: str) -> str:
    """Read a secret given as ``env:NAME`` or ``file:/path``; the error names the source, never a value."""
    kind, _, where = reference.partition(":")
    if kind == "env":
        if where not in os.environ:
            raise ConfigError(f"{what}: environment variable {where} is not set")
        return os.environ[where]
    if kind == "file":
        try:
            return Path(where).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read secret file {where}: {exc.strerror}") from exc
    raise ConfigError(f'{what}: a secret must be given as "env:NAME" or "file:/path"')


def is_secret(key: str) -> bool:
    """Whether a librdkafka setting's name says it holds a secret."""
    return any(word in key.lower() for word in ("password", "secret", "key", "token", "jaas"))


def mask_url(url: str) -> str:
    """``url`` with its user information (a password) replaced by ``***``."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
