"""Startup checks of what this component's Redis user may do (the Kafka side is kafka.access.check_access).

Each component uses every Redis command and key pattern it needs once, on probe keys, before it serves: a
missing ACL rule or a refused login is then an :class:`~stream_scorer.errors.AccessDeniedError` naming it,
at startup. An unreachable Redis is not: the worker serves with its circuit breaker as always.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from stream_scorer.config import FeatureGroup
from stream_scorer.errors import FeatureStoreError, LabelStoreError, PendingWriteError
from stream_scorer.features.access import refused_login
from stream_scorer.features.store import RedisFeatureStore
from stream_scorer.labels.join import LabelJoiner
from stream_scorer.labels.pending import RedisPendingStore

log = logging.getLogger(__name__)
PROBE_ID = "__stream_scorer_access_probe__"  # an entity and event id no real one is


def check_worker_redis(
    store: RedisFeatureStore, groups: Sequence[FeatureGroup], pending: RedisPendingStore | None
) -> None:
    """Read every feature group once and write one pending record (it expires with the label horizon)."""
    try:
        store.fetch(groups, {g.entity: [PROBE_ID] for g in groups})
        if pending is not None:
            pending.probe_access(PROBE_ID)
    except (FeatureStoreError, PendingWriteError) as exc:
        _refused_at_startup(exc)
        log.warning("redis did not answer the startup access check (%s); serving with the circuit breaker", exc)


def check_label_redis(joiner: LabelJoiner) -> None:
    """Use the label join's commands and key patterns once."""
    try:
        joiner.probe_access(PROBE_ID)
    except LabelStoreError as exc:
        _refused_at_startup(exc)
        log.warning("redis did not answer the startup access check (%s); the join retries", exc)


def _refused_at_startup(exc: BaseException) -> None:
    """Raise the AccessDeniedError a refused login or TLS handshake is, at startup (see refused_login)."""
    problem = refused_login(exc.__cause__) if exc.__cause__ is not None else None
    if problem is not None:
        raise problem from exc
