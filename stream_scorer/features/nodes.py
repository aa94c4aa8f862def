"""Redis commands sent to the node that serves their keys: one pipeline per node for every :meth:`run`.

A single Redis is one node. On a Redis Cluster each call goes to the primary of its key's hash slot (the keys
of a multi-key call share one slot: :mod:`stream_scorer.features.keys`), the calls of one node are pipelined,
one round trip per node, and a call that is redirected (MOVED, ASK, TRYAGAIN) after a topology refresh is sent
again through redis-py's cluster client, which follows redirections. A node that cannot be reached fails only
its own calls. After ``failures`` failed round trips in a row it is not asked for ``reset_seconds``: its calls
fail at once with :class:`NodeUnavailable`, and the slot table is re-read at most once a second, so once the
node's replica is promoted its slots are served again.

Replies come back in call order, a failed call's as its exception: callers decide what a failure means
(features UNAVAILABLE, a pending write counted as lost, a label batch retried).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis
from redis.cluster import RedisCluster

log = logging.getLogger(__name__)

# Sent again after the slot table was re-read (CLUSTERDOWN: a failover under way, with full coverage required).
_REDIRECTED = (
    redis.exceptions.MovedError,
    redis.exceptions.AskError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
)
_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)
REFRESH_SECONDS = 1.0


class NodeUnavailable(redis.ConnectionError):
    """A node's calls were not sent: its circuit is open."""


@dataclass(frozen=True, slots=True)
class Call:
    """One command, routed by ``key``; ``script`` is the source of an EVALSHA call, loaded on NOSCRIPT."""

    key: str
    args: tuple[Any, ...]
    script: str | None = None


class Nodes(Protocol):
    """Where the calls go: one Redis or a cluster."""

    def run(self, calls: Sequence[Call]) -> list[Any]: ...

    def ping(self) -> bool: ...

    def close(self) -> None: ...


def failure(replies: Sequence[Any]) -> Exception | None:
    """The first failed call's exception, if any."""
    return next((r for r in replies if isinstance(r, Exception)), None)


class SingleNode:
    """One Redis server: every call in one pipeline."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def run(self, calls: Sequence[Call]) -> list[Any]:
        """Every call's reply (or exception), in one round trip."""
        return _pipeline(self.client, calls) if calls else []

    def ping(self) -> bool:
        """True when Redis answers."""
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        """Close the connections."""
        self.client.close()


class ClusterNodes:
    """A Redis Cluster: calls grouped by the primary serving their slot, one pipeline per primary."""

    def __init__(
        self,
        client: RedisCluster,
        *,
        failures: int = 3,
        reset_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self._failures = failures
        self._reset_seconds = reset_seconds
        self._clock = clock
        self._failed_in_a_row: dict[str, int] = {}
        self._open_until: dict[str, float] = {}
        self._refreshed_at = float("-inf")

    def run(self, calls: Sequence[Call]) -> list[Any]:
        """Every call's reply (or exception): one round trip per node, a second one for the calls that failed
        or were redirected, after the slot table was re-read."""
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(2):
            if attempt or any(self._is_open(name) for name in self._open_until):
                self._refresh(force=attempt > 0)
            todo = self._send(calls, todo, replies)
            if not todo:
                return replies
        for i in todo:  # still redirected: the cluster client follows MOVED, ASK and TRYAGAIN itself
            if isinstance(replies[i], _REDIRECTED):
                try:
                    replies[i] = self.client.execute_command(*calls[i].args)  # type: ignore[no-untyped-call]
                except redis.RedisError as exc:
                    replies[i] = exc
        return replies

    def _send(self, calls: Sequence[Call], todo: Sequence[int], replies: list[Any]) -> list[int]:
        """Send ``todo``, one pipeline per node; returns the positions to try again."""
        by_node: dict[str, list[int]] = {}
        nodes: dict[str, Any] = {}
        for i in todo:
            try:
                slot = self.client.keyslot(calls[i].key)  # type: ignore[no-untyped-call]
                node = self.client.nodes_manager.get_node_from_slot(slot)
            except redis.RedisError as exc:  # a slot no primary serves (mid-failover)
                replies[i] = exc
                continue
            nodes[node.name] = node
            by_node.setdefault(node.name, []).append(i)
        retry = []
        for name, positions in by_node.items():
            if self._is_open(name):
                for i in positions:
                    replies[i] = NodeUnavailable(f"redis node {name}: circuit open")
                continue
            got = _pipeline(self.client.get_redis_connection(nodes[name]), [calls[i] for i in positions])
            self._record(name, any(isinstance(r, _UNREACHABLE) for r in got))
            for i, reply in zip(positions, got, strict=True):
                replies[i] = reply
                if isinstance(reply, (*_REDIRECTED, *_UNREACHABLE)) and not isinstance(reply, NodeUnavailable):
                    retry.append(i)
        return retry

    def _is_open(self, name: str) -> bool:
        return self._open_until.get(name, float("-inf")) > self._clock()

    def _record(self, name: str, failed: bool) -> None:
        if not failed:
            self._failed_in_a_row.pop(name, None)
            if self._open_until.pop(name, None) is not None:
                log.info("redis node %s answers again: circuit closed", name)
            return
        count = self._failed_in_a_row.get(name, 0) + 1
        self._failed_in_a_row[name] = count
        if count >= self._failures:
            if not self._is_open(name):
                log.warning(
                    "redis node %s: %d failed calls in a row, not asked for %.1f s", name, count, self._reset_seconds
                )
            self._open_until[name] = self._clock() + self._reset_seconds

    def _refresh(self, *, force: bool) -> None:
        """Re-read the slot table (after a failure always; while a node's circuit is open, once a second)."""
        now = self._clock()
        if not force and now - self._refreshed_at < REFRESH_SECONDS:
            return
        self._refreshed_at = now
        try:
            self.client.nodes_manager.initialize()
        except redis.RedisError as exc:
            log.warning("redis cluster: the slot table could not be read: %s", exc)

    def ping(self) -> bool:
        """True when every primary answers."""
        try:
            return bool(self.client.ping(target_nodes=RedisCluster.PRIMARIES))
        except redis.RedisError:
            return False

    def close(self) -> None:
        """Close every node's connections."""
        self.client.close()


def _pipeline(client: redis.Redis, calls: Sequence[Call]) -> list[Any]:
    """One round trip; calls answered NOSCRIPT get their script loaded and are sent once more."""
    replies = _send_pipeline(client, calls)
    missing = [i for i, r in enumerate(replies) if isinstance(r, redis.exceptions.NoScriptError) and calls[i].script]
    if missing:
        try:
            for script in {calls[i].script or "" for i in missing}:
                client.script_load(script)
        except redis.RedisError as exc:
            for i in missing:
                replies[i] = exc
            return replies
        for i, reply in zip(missing, _send_pipeline(client, [calls[i] for i in missing]), strict=True):
            replies[i] = reply
    return replies


def _send_pipeline(client: redis.Redis, calls: Sequence[Call]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for call in calls:
        pipe.execute_command(*call.args)  # type: ignore[no-untyped-call]
    try:
        return list(pipe.execute(raise_on_error=False))
    except (redis.RedisError, OSError) as exc:  # the connection, not a reply: every call failed
        error = exc if isinstance(exc, redis.RedisError) else redis.ConnectionError(str(exc))
        return [error] * len(calls)
