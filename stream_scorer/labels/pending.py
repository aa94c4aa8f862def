"""Pending predictions: what the label join needs of each prediction, packed compactly for Redis.

The scoring worker writes one record per prediction, keyed by event id, with a TTL equal to the label
horizon, in one round trip per Redis node per batch. Labels arrive on their own topic, not co-partitioned
with the events, minutes to days later, and are joined by any label-flow process: so the records live
in Redis, not in a worker's memory, and survive restarts and rebalances.

Record layout (little-endian)::

    u8 format (1) | u8 m | m x (u8 length, utf-8 "name<TAB>version")      models, champion first
    i64 event_time_ms | i64 scored_at_ms | m x (f64 score, u8 decision)

About 30 bytes plus the model names per prediction.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import redis
from redis.cluster import RedisCluster

from stream_scorer.batch import BoolArray, Float64Array, Int64Array
from stream_scorer.errors import ModelArtifactError, PendingWriteError
from stream_scorer.features.access import raise_if_any_denied
from stream_scorer.features.keys import KeySpace, by_bucket
from stream_scorer.features.nodes import Call, Nodes, failures
from stream_scorer.features.store import as_nodes

FORMAT = 1
_TIMES = struct.Struct("<qq")
_MODEL = struct.Struct("<dB")


@dataclass(frozen=True, slots=True)
class PendingPrediction:
    """One prediction awaiting its label: for each model (champion first), its score and decision."""

    event_time_ms: int
    scored_at_ms: int
    models: tuple[tuple[str, str], ...]
    scores: tuple[float, ...]
    decisions: tuple[bool, ...]


def models_header(models: Sequence[tuple[str, str]]) -> bytes:
    """The record prefix naming the models (the same for every prediction of a scorer)."""
    parts = [bytes((FORMAT, len(models)))]
    for name, version in models:
        label = f"{name}\t{version}".encode()
        if len(label) > 255:
            raise ModelArtifactError(f"model name and version are too long for a pending record: {label[:40]!r}")
        parts.append(bytes((len(label),)) + label)
    return b"".join(parts)


def pack_many(
    header: bytes,
    event_time_ms: Int64Array,
    scored_at_ms: int,
    scores: Float64Array,
    decisions: BoolArray,
) -> list[bytes]:
    """One record per row; ``scores`` and ``decisions`` are (n, m), champion in column 0.

    >>> h = models_header([("fraud", "3")])
    >>> [r] = pack_many(h, np.array([1000]), 2000, np.array([[0.25]]), np.array([[True]]))
    >>> p = unpack(r)
    >>> p.event_time_ms, p.scored_at_ms, p.models, p.scores, p.decisions
    (1000, 2000, (('fraud', '3'),), (0.25,), (True,))
    """
    n, m = scores.shape
    row = np.dtype(
        [("event_time", "<i8"), ("scored_at", "<i8"), ("models", [("score", "<f8"), ("decision", "u1")], (m,))]
    )
    table = np.empty(n, dtype=row)
    table["event_time"] = event_time_ms
    table["scored_at"] = scored_at_ms
    table["models"]["score"] = scores
    table["models"]["decision"] = decisions
    raw = table.tobytes()
    size = row.itemsize
    return [header + raw[i * size : (i + 1) * size] for i in range(n)]


def unpack(record: bytes) -> PendingPrediction:
    """Read one record; raise ``ValueError`` on anything malformed."""
    if not record or record[0] != FORMAT:
        raise ValueError("not a pending-prediction record of format 1")
    m, at = record[1], 2
    models = []
    for _ in range(m):
        length = record[at]
        name, _, version = record[at + 1 : at + 1 + length].decode().partition("\t")
        models.append((name, version))
        at += 1 + length
    event_time, scored_at = _TIMES.unpack_from(record, at)
    at += _TIMES.size
    scores, decisions = [], []
    for _ in range(m):
        score, decision = _MODEL.unpack_from(record, at)
        scores.append(score)
        decisions.append(bool(decision))
        at += _MODEL.size
    if at != len(record):
        raise ValueError("pending-prediction record has trailing bytes")
    return PendingPrediction(event_time, scored_at, tuple(models), tuple(scores), tuple(decisions))


# KEYS: the pending keys, then the coverage counter (all of one hash tag); ARGV: the records, then the two TTLs
# (ms). A record that exists already (the event scored again after a re-read) is kept, and counted once.
_WRITE_ALL = """
local n = #KEYS - 1
local ttl, counter_ttl = ARGV[n + 1], ARGV[n + 2]
local created = 0
for i = 1, n do
  if redis.call('SET', KEYS[i], ARGV[i], 'PX', ttl, 'NX') then created = created + 1 end
end
redis.call('INCRBY', KEYS[n + 1], created)
redis.call('PEXPIRE', KEYS[n + 1], counter_ttl)
return created
"""
WRITE_ALL_SHA = hashlib.sha1(_WRITE_ALL.encode()).hexdigest()
MAX_PER_CALL = 5000  # keeps each script short: Redis runs it without serving anything else


class RedisPendingStore:
    """Writes and reads pending predictions and the join's bookkeeping; keys under ``<prefix>:``.

    ``pending:<event_id>``  the record (TTL: the label horizon)
    ``predicted:<bucket>``  predictions scored in that time bucket (for label coverage)

    On a Redis Cluster (``hash_tags`` > 1) a record's key carries the hash tag of its event id, which the
    label join computes too, and each tag has its own counters, counted in the same script as its records
    (:mod:`stream_scorer.features.keys`): coverage sums them over the tags.
    """

    def __init__(
        self,
        client: redis.Redis | RedisCluster | Nodes,
        prefix: str,
        horizon_seconds: float,
        bucket_seconds: float,
        hash_tags: int = 1,
    ) -> None:
        self.nodes = as_nodes(client)
        self.keys = KeySpace(prefix, hash_tags)
        self._horizon_ms = int(horizon_seconds * 1000)
        self._bucket_ms = int(bucket_seconds * 1000)

    def key(self, kind: str, name: str) -> str:
        """The Redis key of one item of an event (tagged by the event id's bucket on a cluster)."""
        return self.keys.key(kind, name)

    def counter_key(self, kind: str, tag: int, bucket: int) -> str:
        """A coverage counter ("predicted" or "labelled") of one hash tag and time bucket."""
        return self.keys.bucket_key(kind, tag, str(bucket))

    def counter_ttl_ms(self) -> int:
        """How long a coverage counter lives: the lookback needs them past the horizon."""
        return 2 * self._horizon_ms + 86_400_000

    def bucket(self, at_ms: int) -> int:
        """The coverage bucket of a time (ms)."""
        return at_ms // self._bucket_ms

    def probe_access(self, probe_id: str) -> None:
        """Load the write script on every node that serves ``probe_id`` (as after a Redis restart) and write its
        record, counted in the coverage bucket of 1970: a right the user lacks is an AccessDeniedError now, not
        at the first batch."""
        key = self.key("pending", probe_id)
        failed = failures(self.nodes.run([Call(key, ("SCRIPT", "LOAD", _WRITE_ALL))]))
        if failed:
            raise_if_any_denied(failed, "the pending-prediction write")
            raise PendingWriteError(f"redis: the pending write's script was not loaded: {failed[0]}") from failed[0]
        self.write([probe_id], [b"access-probe"], scored_at_ms=0)

    def write(self, event_ids: Sequence[str], records: Sequence[bytes], scored_at_ms: int) -> None:
        """Store a batch's records and count them for coverage: one script call per hash tag (one in all on a
        single Redis), which measured 3x cheaper in wall time, 10x in client CPU, than a pipeline of one SET per
        event (benchmarks/pending.py)."""
        bucket = self.bucket(scored_at_ms)
        ttl = (self._horizon_ms, self.counter_ttl_ms())
        calls = []
        for tag, positions in by_bucket(self.keys.buckets(event_ids)).items():
            counter = self.counter_key("predicted", tag, bucket)
            for start in range(0, len(positions), MAX_PER_CALL):
                chunk = positions[start : start + MAX_PER_CALL]
                keys = [self.key("pending", event_ids[i]) for i in chunk]
                args = ("EVALSHA", WRITE_ALL_SHA, len(keys) + 1, *keys, counter, *[records[i] for i in chunk], *ttl)
                calls.append(Call(counter, args, _WRITE_ALL))
        failed = failures(self.nodes.run(calls))
        if failed:  # redis errors and socket errors: the caller counts and goes on
            raise_if_any_denied(failed, "the pending-prediction write")  # not an outage: every label would be lost
            error = failed[0]
            raise PendingWriteError(
                f"redis: pending predictions not written: {type(error).__name__}: {error}"
            ) from error
