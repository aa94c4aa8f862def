"""A Redis ACL refusal, told apart from an outage.

A ``NOPERM`` reply means this component's Redis user lacks a command or a key pattern: unlike a timeout, it
will not pass, and serving default features (or dropping pending predictions) through it would hide it. So
it becomes an :class:`~stream_scorer.errors.AccessDeniedError` naming the refusal, which stops the process.
"""

from __future__ import annotations

import redis

from stream_scorer.errors import AccessDeniedError

ACLS = "deploy/security/redis-acl.txt"


def denied(exc: BaseException, what: str) -> AccessDeniedError | None:
    """The :class:`AccessDeniedError` a Redis error means when it is an ACL refusal; ``None`` otherwise.

    >>> refusal = redis.exceptions.NoPermissionError("this user has no permissions to run the 'set' command")
    >>> str(denied(refusal, "pending")).split(" (")[0]
    "redis refused pending: this user has no permissions to run the 'set' command"
    >>> denied(redis.exceptions.ConnectionError("refused"), "features") is None
    True
    """
    text = str(exc)
    refused = isinstance(exc, redis.exceptions.NoPermissionError) or (
        isinstance(exc, redis.exceptions.ResponseError)
        and any(sign in text for sign in ("NOPERM", "no permissions", "can't run this command"))  # in a script
    )
    if not refused:
        return None
    return AccessDeniedError(f"redis refused {what}: {text} (the Redis user's ACL rules lack it; see {ACLS})")


def refused_login(exc: BaseException) -> AccessDeniedError | None:
    """A wrong user or password (``WRONGPASS``), or a TLS handshake that failed (an untrusted certificate, TLS
    against a plaintext port): one clear error, not an outage to wait out."""
    if isinstance(exc, redis.exceptions.AuthenticationError | redis.exceptions.AuthenticationWrongNumberOfArgsError):
        return AccessDeniedError(f"redis refused the login: {exc} (check redis.username and redis.password)")
    text = str(exc)
    if isinstance(exc, redis.exceptions.ConnectionError) and ("SSL" in text or "certificate" in text):
        return AccessDeniedError(f"redis TLS handshake failed: {text} (check the URL's scheme and redis.ssl_ca_certs)")
    return None
