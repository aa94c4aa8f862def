"""A Redis ACL refusal, told apart from an outage.

A ``NOPERM`` reply means this component's Redis user lacks a command or a key pattern: unlike a timeout, it
will not pass, and serving default features (or dropping pending predictions) through it would hide it. So
it becomes an :class:`~stream_scorer.errors.AccessDeniedError` naming the refusal, which stops the process.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def raise_if_denied(exc: BaseException, what: str) -> None:
    """Raise the :class:`AccessDeniedError` ``exc`` is when it is an ACL refusal (see :func:`denied`)."""
    problem = denied(exc, what)
    if problem is not None:
        raise problem from exc


def raise_if_any_denied(errors: Sequence[BaseException], what: str) -> None:
    """The same for the failed calls of one round (one node's outage must not hide another's refusal)."""
    for exc in errors:
        raise_if_denied(exc, what)


def refused_login(exc: BaseException) -> AccessDeniedError | None:
    """At startup: a wrong user or password (``WRONGPASS``), or a TLS handshake refused (an untrusted or
    expired certificate, TLS against a plaintext port) is one clear error. Later, the same errors are left to
    the circuit breaker: a server or proxy restarting can look the same for a while."""
    if isinstance(exc, redis.exceptions.AuthenticationError | redis.exceptions.AuthenticationWrongNumberOfArgsError):
        return AccessDeniedError(f"redis refused the login: {exc} (check redis.username and redis.password)")
    text = str(exc)
    signs = ("certificate verify failed", "wrong version number", "record layer failure")
    if isinstance(exc, redis.exceptions.ConnectionError) and any(sign in text for sign in signs):
        return AccessDeniedError(f"redis TLS handshake failed: {text} (check the URL's scheme and redis.ssl_ca_certs)")
    return None
