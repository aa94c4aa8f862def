"""Redis commands sent to the node that serves their keys: one pipeline per node for every :meth:`run`.

A single Redis is one node. On a Redis Cluster each call goes to the primary of its key's hash slot (the keys
of a multi-key call share one slot: :mod:`stream_scorer.features.keys`), the calls of one node are pipelined,
one round trip per node; a call that is redirected (MOVED, ASK, TRYAGAIN) is sent again after the slot table
is re-read, and if redirected again, through redis-py's cluster client, which follows redirections. A node that
cannot be reached fails only its own calls (never sent twice: a call that timed out may have run). After
``failures`` failed round trips in a row it is not asked for ``reset_seconds``: its calls fail at once with
:class:`NodeUnavailable`, and the slot table is re-read at most once a second, so once the node's replica is
promoted its slots are served again. CLUSTERDOWN (a failover with full coverage required) fails the call too.

Replies come back in call order, a failed call's as its exception: callers decide what a failure means
(features UNAVAILABLE, a pending write counted as lost, a label batch retried).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from stream_scorer.codec.native import native_function

log = logging.getLogger(__name__)

# Not executed, and answered by another node now: sent again once the slot table is re-read.
_REDIRECTED = (redis.exceptions.MovedError, redis.exceptions.AskError, redis.exceptions.TryAgainError)
# The node did not answer: its calls fail (never sent twice, since a timed-out call may have run) and count
# towards its circuit breaker.
_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)
REFRESH_SECONDS = 1.0
# Commands whose replies redis-py hands back unparsed: the native extension packs a pipeline of them at once
# (redis-py's packing costs about a microsecond per key in Python, a feature read tens of thousands of keys).
_UNPARSED = frozenset({"MGET"})
_pack_commands = native_function("pack_commands")


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

    isolates_failures: bool  # True: one node's failure fails only its own calls (a cluster)

    def run(self, calls: Sequence[Call]) -> list[Any]: ...

    def ping(self) -> bool: ...

    def close(self) -> None: ...


def failures(replies: Sequence[Any]) -> list[Exception]:
    """The exceptions of the failed calls."""
    return [r for r in replies if isinstance(r, Exception)]


class SingleNode:
    """One Redis server: every call in one pipeline."""

    isolates_failures = False  # when the server fails, every call fails

    def __init__(self, client: redis.Redis, *, native: bool = True) -> None:
        self.client = client
        self.native = native  # pack MGET pipelines in the native extension when it is installed

    def run(self, calls: Sequence[Call]) -> list[Any]:
        """Every call's reply (or exception), in one round trip."""
        return _pipeline(self.client, calls, self.native) if calls else []

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
    """A Redis Cluster: calls grouped by the primary serving their slot, one pipeline per primary.

    Thread-safe: the worker's fetch and its pending-prediction writer share one.
    """

    isolates_failures = True  # one node's failure fails only its calls

    def __init__(
        self,
        client: RedisCluster,
        *,
        failures: int = 3,
        reset_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_open: Callable[[int], None] | None = None,
        native: bool = True,
    ) -> None:
        self.client = client
        self.native = native  # as SingleNode's
        self._failures = failures
        self._reset_seconds = reset_seconds
        self._clock = clock
        self._on_open = on_open  # told how many nodes have an open circuit, whenever that changes
        self._lock = threading.Lock()
        self._failed_in_a_row: dict[str, int] = {}
        self._open_until: dict[str, float] = {}
        self._refreshed_at = float("-inf")
        self._stale = False  # a node failed: re-read the slot table before the next round (once a second at most)

    def run(self, calls: Sequence[Call]) -> list[Any]:
        """Every call's reply (or exception): one round trip per node, and one more for the calls that were
        redirected, after the slot table was re-read; those redirected again go through the cluster client."""
        replies: list[Any] = [None] * len(calls)
        if self._expire() or self._stale:
            self._refresh(force=False)
        redirected = self._send(calls, range(len(calls)), replies)
        if redirected:
            self._refresh(force=True)
            redirected = self._send(calls, redirected, replies)
        for i in redirected:  # the cluster client follows MOVED, ASK and TRYAGAIN itself, a few times
            try:
                replies[i] = self.client.execute_command(*calls[i].args)  # type: ignore[no-untyped-call]
            except (redis.RedisError, RedisClusterException) as exc:
                replies[i] = exc
        return replies

    def _send(self, calls: Sequence[Call], todo: Sequence[int], replies: list[Any]) -> list[int]:
        """Send ``todo``, one pipeline per node; returns the positions that were redirected."""
        by_node: dict[str, list[int]] = {}
        nodes: dict[str, Any] = {}
        for i in todo:
            try:
                slot = self.client.keyslot(calls[i].key)  # type: ignore[no-untyped-call]
                node = self.client.nodes_manager.get_node_from_slot(slot)
            except (redis.RedisError, RedisClusterException) as exc:  # a slot no primary serves (mid-failover)
                replies[i] = redis.ConnectionError(f"redis cluster: {exc}")
                self._stale = True
                continue
            nodes[node.name] = node
            by_node.setdefault(node.name, []).append(i)
        redirected = []
        for name, positions in by_node.items():
            if self._is_open(name):
                for i in positions:
                    replies[i] = NodeUnavailable(f"redis node {name}: circuit open")
                continue
            connection = self.client.get_redis_connection(nodes[name])
            got = _pipeline(connection, [calls[i] for i in positions], self.native)
            self._record(name, failed=any(isinstance(r, _UNREACHABLE) for r in got))
            for i, reply in zip(positions, got, strict=True):
                replies[i] = reply
                if isinstance(reply, _REDIRECTED):
                    redirected.append(i)
        return redirected

    def _is_open(self, name: str) -> bool:
        with self._lock:
            return self._open_until.get(name, float("-inf")) > self._clock()

    def _expire(self) -> bool:
        """Forget the circuits whose period ended (the node is asked again, or its slots moved); True while
        some node's circuit is open."""
        with self._lock:
            now = self._clock()
            still = {name: until for name, until in self._open_until.items() if until > now}
            changed, self._open_until = len(still) != len(self._open_until), still
            count = len(still)
        if changed and self._on_open is not None:
            self._on_open(count)
        return count > 0

    def _record(self, name: str, *, failed: bool) -> None:
        with self._lock:
            if not failed:
                self._failed_in_a_row.pop(name, None)
                closed = self._open_until.pop(name, None) is not None
                opened = False
            else:
                self._stale = True
                count = self._failed_in_a_row[name] = self._failed_in_a_row.get(name, 0) + 1
                opened = count >= self._failures and self._open_until.get(name, float("-inf")) <= self._clock()
                closed = False
                if count >= self._failures:
                    self._open_until[name] = self._clock() + self._reset_seconds
            open_count = len(self._open_until)
        if opened:
            log.warning("redis node %s: failed round trips in a row, not asked for %.1f s", name, self._reset_seconds)
        if closed:
            log.info("redis node %s answers again: circuit closed", name)
        if (opened or closed) and self._on_open is not None:
            self._on_open(open_count)

    def _refresh(self, *, force: bool) -> None:
        """Re-read the slot table (after a redirection always; after a failure, once a second at most)."""
        now = self._clock()
        with self._lock:
            if not force and now - self._refreshed_at < REFRESH_SECONDS:
                return
            self._refreshed_at, self._stale = now, False
        try:
            self.client.nodes_manager.initialize(disconnect_startup_nodes_pools=False)
        except (redis.RedisError, RedisClusterException) as exc:
            log.warning("redis cluster: the slot table could not be read: %s", exc)

    def ping(self) -> bool:
        """True when some primary answers: with one down the worker serves, its rows UNAVAILABLE."""
        for node in self.client.get_primaries():  # type: ignore[no-untyped-call]
            try:
                if self.client.get_redis_connection(node).ping():
                    return True
            except redis.RedisError:
                continue
        return False

    def close(self) -> None:
        """Close every node's connections."""
        self.client.close()


def _pipeline(client: redis.Redis, calls: Sequence[Call], native: bool = True) -> list[Any]:
    """One round trip; calls answered NOSCRIPT get their script loaded and are sent once more."""
    replies = _send_pipeline(client, calls, native)
    missing = [i for i, r in enumerate(replies) if isinstance(r, redis.exceptions.NoScriptError) and calls[i].script]
    if missing:
        try:
            for script in {calls[i].script or "" for i in missing}:
                client.script_load(script)
        except redis.RedisError as exc:
            for i in missing:
                replies[i] = exc
            return replies
        for i, reply in zip(missing, _send_pipeline(client, [calls[i] for i in missing], native), strict=True):
            replies[i] = reply
    return replies


def _send_pipeline(client: redis.Redis, calls: Sequence[Call], native: bool) -> list[Any]:
    if native and _pack_commands is not None and all(call.args[0] in _UNPARSED for call in calls):
        return _send_packed(client, calls, _pack_commands([call.args for call in calls]))
    pipe = client.pipeline(transaction=False)
    for call in calls:
        pipe.execute_command(*call.args)  # type: ignore[no-untyped-call]
    try:
        return list(pipe.execute(raise_on_error=False))
    except (redis.RedisError, OSError) as exc:  # the connection, not a reply: every call failed
        return _all_failed(exc, len(calls))


def _all_failed(exc: redis.RedisError | OSError, n_calls: int) -> list[Any]:
    error = exc if isinstance(exc, redis.RedisError) else redis.ConnectionError(str(exc))
    return [error] * n_calls


def _send_packed(client: redis.Redis, calls: Sequence[Call], packed: bytes) -> list[Any]:
    """A pipeline of commands already packed (by the native extension), on one of the client's connections,
    retried as redis-py retries a pipeline; replies as redis-py's parser reads them (an error reply as its
    exception)."""
    pool = client.connection_pool
    try:
        connection = pool.get_connection()  # connects (and logs in) a new connection
    except (redis.RedisError, OSError) as exc:
        return _all_failed(exc, len(calls))

    def attempt() -> list[Any]:
        connection.send_packed_command([packed])  # type: ignore[no-untyped-call]
        replies: list[Any] = []
        for _ in calls:
            try:
                replies.append(connection.read_response())
            except redis.ResponseError as exc:  # read whole: the connection stays in step
                replies.append(exc)
        return replies

    try:
        disconnect = connection.disconnect  # when a try failed; redis-py then reconnects for the next one
        return connection.retry.call_with_retry(attempt, lambda error: disconnect())  # type: ignore[no-untyped-call]
    except BaseException as exc:  # the connection, not a reply: it may be out of step, and every call failed
        connection.disconnect()  # type: ignore[no-untyped-call]
        if not isinstance(exc, (redis.RedisError, OSError)):
            raise
        return _all_failed(exc, len(calls))
    finally:
        pool.release(connection)
