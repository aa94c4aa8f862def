"""The Redis feature store: read every group of every entity in a batch with one MGET; write groups.

Keys are ``{prefix}:{group}:{entity_id}``; values follow :mod:`stream_scorer.features.layout`.

A read is one MGET per batch, plus one script call only when some keys are missing: MGET answers nil both
for a key that does not exist and for a key holding another Redis type (a hash, a list, a set...), and the
script tells the two apart, so that the second kind is counted as malformed, not silently as missing. The
script runs read-only (EVALSHA_RO) and only calls GET, so read permission on the feature keys is enough; the
worker's Redis user needs ``+evalsha_ro`` (and ``+script|load``). Without it the store logs a warning once
and stops checking: such records then read as missing only, as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import redis

from stream_scorer.config import FeatureGroup
from stream_scorer.errors import AccessDeniedError, FeatureStoreError
from stream_scorer.features.access import raise_if_denied
from stream_scorer.features.layout import GroupValues, pack, unpack_many

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


class FeatureLookup(Protocol):
    """Reads feature groups for a batch of entity ids."""

    def fetch(
        self, groups: Sequence[FeatureGroup], ids_by_entity: Mapping[str, Sequence[str]]
    ) -> dict[str, GroupValues]: ...


class RedisFeatureStore:
    """Feature groups in Redis. ``client`` must return bytes (``decode_responses=False``)."""

    def __init__(self, client: redis.Redis, key_prefix: str) -> None:
        self._client = client
        self._prefix = key_prefix
        self._other_type = client.register_script(_OTHER_TYPE)
        self._check_types = True

    def key(self, group: FeatureGroup, entity_id: str) -> str:
        """The Redis key of one group of one entity."""
        return f"{self._prefix}:{group.name}:{entity_id}"

    def fetch(
        self, groups: Sequence[FeatureGroup], ids_by_entity: Mapping[str, Sequence[str]]
    ) -> dict[str, GroupValues]:
        """Every group for every row: one MGET, plus one script call when some keys are missing (see the
        module docstring). ``ids_by_entity`` maps entity type to ids by row."""
        keys: list[str] = []
        for group in groups:
            head = f"{self._prefix}:{group.name}:"
            keys.extend([head + entity_id for entity_id in ids_by_entity[group.entity]])
        if not keys:
            return {g.name: unpack_many([], len(g.features), g.version) for g in groups}
        replies = self._call(self._client.mget, keys)
        other_type = self._other_types(keys, replies)
        out: dict[str, GroupValues] = {}
        start = 0
        for group in groups:
            n = len(ids_by_entity[group.entity])
            out[group.name] = unpack_many(
                replies[start : start + n], len(group.features), group.version, other_type[start : start + n]
            )
            start += n
        return out

    def _other_types(self, keys: Sequence[str], replies: Sequence[bytes | None]) -> npt.NDArray[np.bool_]:
        """Flags the keys MGET answered nil for that hold another Redis type (one script call, if any is nil)."""
        flags = np.zeros(len(keys), dtype=bool)
        nil = [i for i, reply in enumerate(replies) if reply is None]
        if not nil or not self._check_types:
            return flags
        nil_keys = [keys[i] for i in nil]
        try:
            found = self._call(self._run_other_type, nil_keys)
        except (FeatureStoreError, AccessDeniedError) as exc:  # the MGET answered: its features are served
            if isinstance(exc.__cause__, redis.ConnectionError | redis.TimeoutError):
                log.warning("feature store: could not tell keys of another type from missing ones: %s", exc)
                return flags
            self._check_types = False  # refused (no permission, no EVALSHA_RO before Redis 7, scripting off)
            log.warning(
                "feature store: Redis refuses the read-only script that tells keys of another type from "
                "missing keys (%s); grant +evalsha_ro (Redis 7 or later): until then such records read as "
                "missing, not malformed",
                exc,
            )
            return flags
        flags[[nil[int(position) - 1] for position in found]] = True
        return flags

    def _run_other_type(self, keys: Sequence[str]) -> Any:
        script = self._other_type
        try:
            return self._client.evalsha_ro(script.sha, len(keys), *keys)
        except redis.exceptions.NoScriptError:  # a restarted or other server: load it, once
            script.sha = self._client.script_load(script.script)
            return self._client.evalsha_ro(script.sha, len(keys), *keys)

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
        for start in range(0, len(entity_ids), _WRITE_CHUNK):
            pipe = self._client.pipeline(transaction=False)
            for i in range(start, min(start + _WRITE_CHUNK, len(entity_ids))):
                pipe.set(self.key(group, entity_ids[i]), pack(values[i], int(updated_at_ms[i]), group.version), px=px)
            self._call(pipe.execute)
        return len(entity_ids)

    def delete(self, group: FeatureGroup, entity_ids: Sequence[str]) -> None:
        """Remove one group of some entities."""
        if entity_ids:
            self._call(self._client.delete, *[self.key(group, e) for e in entity_ids])

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

    def ping(self) -> bool:
        """True when Redis answers."""
        try:
            return bool(self._client.ping())
        except redis.RedisError:
            return False

    @staticmethod
    def _call(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except redis.RedisError as exc:
            raise_if_denied(exc, "a feature read")  # not an outage: default features would hide it
            raise FeatureStoreError(f"redis: {type(exc).__name__}: {exc}") from exc
