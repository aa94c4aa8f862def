"""The Redis feature store: read every group of every entity in a batch with one MGET per hash tag; write groups.

Keys are ``{prefix}:{group}:{entity_id}`` on a single Redis and ``{prefix}:{group}:{{bucket}}:{entity_id}`` on a
cluster (:mod:`stream_scorer.features.keys`); values follow :mod:`stream_scorer.features.layout`.

A read is one MGET per batch on a single Redis, plus one script call only when some keys are missing:
MGET answers nil both for a key that does not exist and for a key holding another Redis type (a hash, a
list...), and the script tells the two apart, so that the second kind is counted as malformed, not silently
as missing. The script runs read-only (EVALSHA_RO) and only calls GET, so read permission on the feature
keys is enough; the worker's Redis user needs ``+evalsha_ro`` (and ``+script|load``). Without it the store
logs a warning once and stops checking: such records then read as missing only, as before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import redis
from redis.cluster import RedisCluster

from stream_scorer.batch import BoolArray
from stream_scorer.config import FeatureGroup
from stream_scorer.errors import FeatureStoreError
from stream_scorer.features.access import raise_if_any_denied
from stream_scorer.features.keys import KeySpace, by_bucket
from stream_scorer.features.layout import GroupValues, pack, unpack_many
from stream_scorer.features.nodes import Call, ClusterNodes, Nodes, SingleNode, failures

_WRITE_CHUNK = 5000
_MAX_FUTURE_MS = 3_600_000

log = logging.getLogger(__name__)

# KEYS: the keys MGET answered nil for. Returns the 1-based positions of those that hold another type: GET
# answers WRONGTYPE for them and nil for a key that does not exist (or no longer does). GET rather than
# EXISTS or TYPE: the worker's ACL allows GET, and a record written since the MGET is not miscounted.
_OTHER_TYPE = """
local out = {}
for i, key in ipairs(KEYS) do
  local reply = redis.pcall('GET', key)
  if type(reply) == 'table' and reply.err then
    if string.sub(reply.err, 1, 9) ~= 'WRONGTYPE' then return redis.error_reply(reply.err) end
    out[#out + 1] = i
  end
end
return out
"""
# Failures that say nothing about the script: a node unreachable or busy, mid-failover or mid-resharding.
_TRANSIENT = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.MovedError,
    redis.exceptions.AskError,
    redis.exceptions.TryAgainError,
    redis.exceptions.NoScriptError,
)
_OTHER_TYPE_SHA = hashlib.sha1(_OTHER_TYPE.encode()).hexdigest()


def as_nodes(client: redis.Redis | RedisCluster | Nodes) -> Nodes:
    """The nodes behind a client: one Redis, or a cluster's primaries (each with its own circuit breaker)."""
    if isinstance(client, RedisCluster):
        return ClusterNodes(client)
    if isinstance(client, redis.Redis):
        return SingleNode(client)
    return client


class FeatureLookup(Protocol):
    """Reads feature groups for a batch of entity ids."""

    def fetch(
        self, groups: Sequence[FeatureGroup], ids_by_entity: Mapping[str, Sequence[str]]
    ) -> dict[str, GroupValues]: ...


class RedisFeatureStore:
    """Feature groups in one Redis or a Redis Cluster; a client must return bytes (``decode_responses=False``).

    On a cluster (``hash_tags`` > 1, see :mod:`stream_scorer.features.keys`) a read is one MGET per hash tag
    of the batch, pipelined per node; a node that fails serves its rows as UNAVAILABLE and the others are
    served, and only when every node fails is the read a :class:`FeatureStoreError` (for the circuit breaker).
    """

    def __init__(
        self, client: redis.Redis | RedisCluster | Nodes, key_prefix: str, hash_tags: int = 1, *, native: bool = True
    ) -> None:
        self._nodes = as_nodes(client)
        self._native = native  # parse replies in the native extension when it is installed
        self._keys = KeySpace(key_prefix, hash_tags)
        self._prefix = key_prefix
        self._check_types = True

    def key(self, group: FeatureGroup, entity_id: str) -> str:
        """The Redis key of one group of one entity (tagged by the entity id's bucket on a cluster)."""
        return self._keys.key(group.name, entity_id)

    def fetch(
        self, groups: Sequence[FeatureGroup], ids_by_entity: Mapping[str, Sequence[str]]
    ) -> dict[str, GroupValues]:
        """Every group for every row: one MGET per hash tag, plus one script call per tag when some keys are
        missing (see the module docstring). ``ids_by_entity`` maps entity type to ids by row."""
        keys: list[str] = []
        buckets: list[int] = []
        by_entity = {entity: self._keys.buckets(ids) for entity, ids in ids_by_entity.items()}
        for group in groups:
            ids = ids_by_entity[group.entity]
            if self._keys.hash_tags == 1:
                head = f"{self._prefix}:{group.name}:"
                keys.extend([head + entity_id for entity_id in ids])
            else:
                keys.extend(
                    self._keys.bucket_key(group.name, b, i) for b, i in zip(by_entity[group.entity], ids, strict=True)
                )
            buckets.extend(by_entity[group.entity])
        if not keys:
            return {g.name: unpack_many([], len(g.features), g.version) for g in groups}
        replies, unanswered = self._mget(keys, buckets)
        other_type = self._other_types(keys, buckets, replies, unanswered)
        out: dict[str, GroupValues] = {}
        start = 0
        for group in groups:
            n = len(ids_by_entity[group.entity])
            values = unpack_many(
                replies[start : start + n],
                len(group.features),
                group.version,
                other_type[start : start + n],
                native=self._native,
            )
            down = unanswered[start : start + n]
            out[group.name] = dataclasses.replace(values, available=~down) if down.any() else values
            start += n
        return out

    def _mget(self, keys: Sequence[str], buckets: Sequence[int]) -> tuple[list[bytes | None], BoolArray]:
        """The MGET replies by key, and which keys went unanswered (their node failed). Raises
        :class:`FeatureStoreError` when no call was answered on a single Redis (for its circuit breaker); on a
        cluster the failed nodes' rows are unanswered, and the per-node breakers stop asking them."""
        if self._keys.hash_tags == 1:  # one MGET of every key, answered in key order
            answers = self._nodes.run([Call(keys[0], ("MGET", *keys))])
            failed = failures(answers)
            if failed:
                raise_if_any_denied(failed, "a feature read")
                raise FeatureStoreError(f"redis: {type(failed[0]).__name__}: {failed[0]}") from failed[0]
            return list(answers[0]), np.zeros(len(keys), dtype=bool)
        groups = list(by_bucket(buckets).values())
        answers = self._nodes.run([Call(keys[p[0]], ("MGET", *[keys[i] for i in p])) for p in groups])
        failed = failures(answers)
        if failed:
            raise_if_any_denied(failed, "a feature read")
            if len(failed) == len(answers) and not self._nodes.isolates_failures:
                raise FeatureStoreError(f"redis: {type(failed[0]).__name__}: {failed[0]}") from failed[0]
        replies: list[bytes | None] = [None] * len(keys)
        unanswered = np.zeros(len(keys), dtype=bool)
        for positions, answer in zip(groups, answers, strict=True):
            if isinstance(answer, Exception):
                unanswered[positions] = True
                continue
            for i, reply in zip(positions, answer, strict=True):
                replies[i] = reply
        return replies, unanswered

    def _other_types(
        self, keys: Sequence[str], buckets: Sequence[int], replies: Sequence[bytes | None], unanswered: BoolArray
    ) -> npt.NDArray[np.bool_]:
        """Flags the keys MGET answered nil for that hold another Redis type (one script call per tag)."""
        flags = np.zeros(len(keys), dtype=bool)
        nil = [i for i, reply in enumerate(replies) if reply is None and not unanswered[i]]
        if not nil or not self._check_types:
            return flags
        groups = [[nil[j] for j in p] for p in by_bucket([buckets[i] for i in nil]).values()]
        sha = _OTHER_TYPE_SHA
        calls = [Call(keys[p[0]], ("EVALSHA_RO", sha, len(p), *[keys[i] for i in p]), _OTHER_TYPE) for p in groups]
        for positions, answer in zip(groups, self._nodes.run(calls), strict=True):
            if isinstance(answer, _TRANSIENT):  # the MGET answered: its features are served
                log.warning("feature store: could not tell keys of another type from missing ones: %s", answer)
            elif isinstance(answer, Exception):
                self._check_types = False  # refused (no permission, no EVALSHA_RO before Redis 7, scripting off)
                log.warning(
                    "feature store: Redis refuses the read-only script that tells keys of another type from "
                    "missing keys (%s); grant +evalsha_ro (Redis 7 or later): until then such records read as "
                    "missing, not malformed",
                    answer,
                )
                return flags
            else:
                flags[[positions[int(at) - 1] for at in answer]] = True
        return flags

    def put(
        self,
        group: FeatureGroup,
        entity_id: str,
        values: Sequence[float],
        updated_at_ms: int,
        ttl_seconds: float | None = None,
    ) -> None:
        """Write one group of one entity."""
        self.put_many(
            group, [entity_id], np.asarray([values], dtype=np.float64), np.asarray([updated_at_ms]), ttl_seconds
        )

    def put_many(
        self,
        group: FeatureGroup,
        entity_ids: Sequence[str],
        values: npt.NDArray[np.floating],
        updated_at_ms: npt.NDArray[np.integer],
        ttl_seconds: float | None = None,
    ) -> int:
        """Write one group for many entities, pipelined in chunks. Returns the number written."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape != (len(entity_ids), len(group.features)):
            raise ValueError(
                f"group {group.name!r} takes a ({len(entity_ids)}, {len(group.features)}) array of values, "
                f"got shape {values.shape}"
            )
        if not np.isfinite(values).all():
            raise ValueError(f"group {group.name!r}: feature values must be finite")
        if len(updated_at_ms) != len(entity_ids):
            raise ValueError("updated_at_ms needs one time per entity id")
        latest = time.time() * 1000 + _MAX_FUTURE_MS
        if len(updated_at_ms) and not (
            np.all(np.asarray(updated_at_ms) >= 0) and np.all(np.asarray(updated_at_ms) <= latest)
        ):
            raise ValueError("updated_at_ms must be epoch milliseconds, not negative and at most 1 h ahead of now")
        px = None if ttl_seconds is None else max(1, int(ttl_seconds * 1000))
        options = () if px is None else ("PX", px)
        for start in range(0, len(entity_ids), _WRITE_CHUNK):
            calls = []
            for i in range(start, min(start + _WRITE_CHUNK, len(entity_ids))):
                key = self.key(group, entity_ids[i])
                calls.append(Call(key, ("SET", key, pack(values[i], int(updated_at_ms[i]), group.version), *options)))
            self._check(self._nodes.run(calls), "written")
        return len(entity_ids)

    def delete(self, group: FeatureGroup, entity_ids: Sequence[str]) -> None:
        """Remove one group of some entities."""
        if entity_ids:
            keys = [self.key(group, e) for e in entity_ids]
            self._check(self._nodes.run([Call(k, ("DEL", k)) for k in keys]), "deleted")

    def close(self) -> None:
        """Close the client's connections."""
        self._nodes.close()

    def ping(self) -> bool:
        """True when Redis answers (every primary of a cluster)."""
        return self._nodes.ping()

    @staticmethod
    def _check(replies: Sequence[Any], what: str) -> None:
        failed = failures(replies)
        if failed:
            raise_if_any_denied(failed, "a feature write")
            error = failed[0]
            raise FeatureStoreError(f"redis: features not {what}: {type(error).__name__}: {error}") from error
