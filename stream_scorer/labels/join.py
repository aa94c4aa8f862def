"""The late-label join: each label meets its pending prediction in Redis, by event id.

Per batch of labels: one MGET (the pending records, and any held copy of the same events), then one
server-side script that decides and writes every label atomically (``JOIN_SCRIPT``), so two label
processes never both count a label as the first. Per label:

- **first label** of a pending prediction: joined; every model's (score, decision, label) goes to the
  rolling metrics, the lags (label time minus event time, and minus scoring time) to histograms, and
  the prediction's coverage bucket counts one more labelled prediction;
- **the same label again**: a duplicate, counted, not joined again;
- **a different label** for an already labelled prediction: the one with the later label time wins
  (for labels of equal time, the later arrival); the metrics replace the earlier pair, counted as
  contradicting. An older contradicting label is counted and ignored;
- **this very message again** (a batch read again after its writes applied but before its offsets were
  committed): joined as before, without counting a second label;
- **no pending prediction** (the label came first, or the event is unknown or expired): the label is
  held in Redis and retried until ``hold_seconds`` after it arrived, then counted as unknown.

Held labels live in a sorted set scored by their deadline. The script claims a held label by removing
it (``ZREM``) in the same step that joins it, so a held label is joined once, by one process, and never
lost between the claim and the join.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from stream_scorer.errors import LabelStoreError
from stream_scorer.features.access import raise_if_denied
from stream_scorer.labels.pending import PendingPrediction, RedisPendingStore, unpack


@dataclass(frozen=True, slots=True)
class Label:
    """An observed outcome: 1 for the positive class."""

    event_id: str
    label: int
    label_time_ms: int
    source: str = ""  # "topic/partition/offset" of the message: recognizes the same message read again


@dataclass(frozen=True, slots=True)
class JoinedPair:
    """A label joined to its prediction; ``replaced`` is the earlier label when this one contradicts it."""

    label: Label
    prediction: PendingPrediction
    replaced: int | None = None
    redelivered: bool = False  # this message was joined before (its batch is being read again)


@dataclass(slots=True)
class JoinOutcome:
    """What one call did, by kind."""

    joined: list[JoinedPair] = field(default_factory=list)
    duplicates: int = 0
    contradicting: int = 0
    held: int = 0
    unknown: int = 0
    unreadable: int = 0


FIRST, DUPLICATE, REPLACED, STALE, REDELIVERED, TAKEN = range(6)

# KEYS[1]: the held set; then per item: the label key, the coverage counter, the held payload key.
# ARGV[1], ARGV[2]: the label and counter TTLs (ms); then per item: the held member to claim ("" when the
# label is not a held one), the label, its time, its source. Returns per item: a code and the earlier label.
JOIN_SCRIPT = """
local label_ttl, counter_ttl = ARGV[1], ARGV[2]
local out = {}
for i = 0, (#KEYS - 1) / 3 - 1 do
  local label_key, counter_key, held_key = KEYS[2 + 3 * i], KEYS[3 + 3 * i], KEYS[4 + 3 * i]
  local member, value, at, source = ARGV[3 + 4 * i], ARGV[4 + 4 * i], ARGV[5 + 4 * i], ARGV[6 + 4 * i]
  local code, previous = 0, -1
  if member ~= '' and redis.call('ZREM', KEYS[1], member) == 0 then
    code = 5
  else
    if member ~= '' then redis.call('DEL', held_key) end
    local stored = redis.call('GET', label_key)
    if not stored then
      redis.call('SET', label_key, value .. ':' .. at .. ':' .. source, 'PX', label_ttl)
      redis.call('INCR', counter_key)
      redis.call('PEXPIRE', counter_key, counter_ttl)
    else
      local v, t, s = string.match(stored, '^([^:]*):([^:]*):(.*)$')
      previous = tonumber(v)
      if source ~= '' and s == source then
        code = 4
      elseif v == value then
        code = 1
      elseif tonumber(t) > tonumber(at) then
        code = 3
      else
        code = 2
        redis.call('SET', label_key, value .. ':' .. at .. ':' .. source, 'PX', label_ttl)
      end
    end
  end
  out[#out + 1] = code
  out[#out + 1] = previous
end
return out
"""

_Item = tuple[Label, PendingPrediction, bool]  # a label, its prediction, whether it is a held copy to claim


class LabelJoiner:
    """Joins batches of labels through Redis (one MGET and one script per batch)."""

    def __init__(
        self,
        client: redis.Redis,
        store: RedisPendingStore,
        *,
        horizon_seconds: float,
        hold_seconds: float,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._client = client
        self._store = store
        self._horizon_ms = int(horizon_seconds * 1000)
        self._hold_ms = int(hold_seconds * 1000)
        self._clock_ms = clock_ms
        self._held_set = store.key("held", "by-deadline")
        self._script = client.register_script(JOIN_SCRIPT)
        self._cursor = 0  # where the next retry scan of not-yet-overdue held labels starts

    def join(self, labels: Sequence[Label]) -> JoinOutcome:
        """Join a batch of freshly consumed labels; those without a prediction are held."""
        outcome = JoinOutcome()
        if not labels:
            return outcome
        now = self._clock_ms()
        ids = list(dict.fromkeys(label.event_id for label in labels))
        values = _mget(self._client, [self._store.key(k, i) for k in ("pending", "held") for i in ids])
        pending = dict(zip(ids, values[: len(ids)], strict=True))
        held = {i: v for i, v in zip(ids, values[len(ids) :], strict=True) if v is not None}
        predictions = {i: self._prediction(pending[i], outcome) for i in ids}
        items: list[_Item] = []
        newest_held: dict[str, Label] = {}
        for event_id in ids:  # a held copy of an event whose prediction is here now: joined first, in order
            prediction = predictions[event_id]
            if prediction is not None and event_id in held:
                items.append((_unpack_label(event_id, held[event_id]), prediction, True))
        for label in labels:
            prediction = predictions[label.event_id]
            if prediction is not None:
                items.append((label, prediction, False))
            elif pending[label.event_id] is None:
                earlier = newest_held.get(label.event_id) or (
                    _unpack_label(label.event_id, held[label.event_id]) if label.event_id in held else None
                )
                if earlier is None or earlier.label_time_ms <= label.label_time_ms:
                    newest_held[label.event_id] = label
                outcome.held += 1
        pipe = self._client.pipeline(transaction=False)
        for event_id, label in newest_held.items():  # held until its deadline, then unknown
            pipe.set(self._store.key("held", event_id), _pack_label(label), px=self._hold_ms + 60_000)
            pipe.zadd(self._held_set, {event_id: now + self._hold_ms})
        self._run(items, outcome, pipe)
        return outcome

    def retry_held(self, limit: int = 10_000) -> JoinOutcome:
        """Join held labels whose prediction arrived; count those past their deadline as unknown.

        Each call looks at up to ``limit`` overdue labels and ``limit`` others (in turn, from a cursor), so
        a crowd of labels for unknown events never starves one whose prediction has arrived. At 1000 a call
        (every ``retry_seconds``), the 30,000 early labels of a backlog drain queued behind labels held from
        before and their predictions' pending records (a 30 s horizon in the demo) expired first: none of
        them was joined. At 10,000 (two MGETs of 10,000 keys a call; their cost was not measured) they were.
        """
        outcome = JoinOutcome()
        now = self._clock_ms()
        overdue = self._held_members(float("-inf"), now, 0, limit)
        waiting = self._held_members(f"({now}", "+inf", self._cursor, limit)
        self._cursor = 0 if len(waiting) < limit else self._cursor + limit
        members = list(dict.fromkeys(overdue + waiting))
        if not members:
            return outcome
        values = _mget(self._client, [self._store.key(k, m) for k in ("pending", "held") for m in members])
        items: list[_Item] = []
        expired: list[str] = []
        for member, record, payload in zip(members, values[: len(members)], values[len(members) :], strict=True):
            prediction = self._prediction(record, outcome)
            if prediction is not None and payload is not None:
                items.append((_unpack_label(member, payload), prediction, True))
            elif member in overdue:
                expired.append(member)
        pipe = self._client.pipeline(transaction=False)
        for member in expired:  # claimed by whichever process removes it first
            pipe.zrem(self._held_set, member)
            pipe.delete(self._store.key("held", member))
        replies = self._run(items, outcome, pipe)
        outcome.unknown += sum(1 for removed in replies[: 2 * len(expired) : 2] if removed)
        return outcome

    def probe_access(self, probe_id: str) -> None:
        """Use every command and key pattern of the join once, on keys of ``probe_id`` (a label key that lives
        a second, and no-ops on the held set), so a right the Redis user lacks is an error now, not at the
        first label. Raises :class:`~stream_scorer.errors.AccessDeniedError` naming it."""
        key = self._store.key
        keys = [self._held_set, key("label", probe_id), key("labelled", probe_id), key("held", probe_id)]
        try:
            self._client.mget([key("pending", probe_id), key("held", probe_id)])
            self.coverage(self._clock_ms(), 60.0)
            self._client.script_load(JOIN_SCRIPT)  # as after a Redis restart, when its cache is empty
            pipe = self._client.pipeline(transaction=False)
            pipe.delete(key("label", probe_id))  # a probe of another process within its second: run it all again
            self._script(keys=keys, args=[1000, 1000, "", 0, 0, "access-probe"], client=pipe)  # as join runs it
            pipe.zadd(self._held_set, {probe_id: 0}, xx=True)  # XX: only updates a member, and there is none
            pipe.zrangebyscore(self._held_set, "-inf", "-inf", start=0, num=1)
            pipe.zrem(self._held_set, probe_id)
            pipe.zcard(self._held_set)
            pipe.delete(key("held", probe_id))
            pipe.set(key("held", probe_id), b"", px=1000)
            pipe.execute()
        except redis.RedisError as exc:
            raise_if_denied(exc, "the label join")
            raise LabelStoreError(f"redis: the label join's access probe failed: {type(exc).__name__}: {exc}") from exc

    def held_count(self) -> int:
        """How many labels are held, waiting for their prediction."""
        try:
            return int(self._client.zcard(self._held_set))
        except redis.RedisError as exc:
            raise_if_denied(exc, "the label join")
            raise LabelStoreError(f"redis: held labels not counted: {type(exc).__name__}") from exc

    def coverage(self, now_ms: int, lookback_seconds: float) -> tuple[float, int]:
        """Share of the predictions scored in ``lookback_seconds`` before the horizon that got a label, and how
        many predictions that is (NaN when none)."""
        end = self._store.bucket(now_ms - self._horizon_ms)
        start = self._store.bucket(now_ms - self._horizon_ms - int(lookback_seconds * 1000))
        buckets = [str(b) for b in range(start, end)]
        if not buckets:
            return float("nan"), 0
        predicted = _mget(self._client, [self._store.key("predicted", b) for b in buckets])
        labelled = _mget(self._client, [self._store.key("labelled", b) for b in buckets])
        total = sum(int(v) for v in predicted if v is not None)
        got = sum(int(v) for v in labelled if v is not None)
        return (got / total if total else float("nan")), total

    def _prediction(self, record: bytes | None, outcome: JoinOutcome) -> PendingPrediction | None:
        if record is None:
            return None
        try:
            return unpack(record)
        except (ValueError, UnicodeDecodeError, IndexError, struct.error):
            outcome.unreadable += 1
            return None

    def _held_members(self, low: float | str, high: float | str, start: int, limit: int) -> list[str]:
        try:
            reply = self._client.zrangebyscore(self._held_set, low, high, start=start, num=limit)
        except Exception as exc:
            raise_if_denied(exc, "the label join")
            raise LabelStoreError(f"redis: held labels not read: {type(exc).__name__}") from exc
        return [bytes(m).decode() for m in cast(list[bytes], reply)]

    def _run(self, items: Sequence[_Item], outcome: JoinOutcome, pipe: Any) -> list[Any]:
        """Send the join script for ``items`` after the writes already queued on ``pipe``; classify the replies."""
        if items:
            keys = [self._held_set]
            args: list[Any] = [self._horizon_ms, 2 * self._horizon_ms + 86_400_000]
            for label, prediction, claim in items:
                bucket = str(self._store.bucket(prediction.scored_at_ms))
                keys += [self._store.key(k, n) for k, n in (("label", label.event_id), ("labelled", bucket))]
                keys.append(self._store.key("held", label.event_id))
                args += [label.event_id if claim else "", label.label, label.label_time_ms, label.source]
            self._script(keys=keys, args=args, client=pipe)
        replies = _execute(pipe)
        if not items:
            return replies
        codes = replies[-1]
        for (label, prediction, _), code, previous in zip(items, codes[0::2], codes[1::2], strict=True):
            if code == FIRST:
                outcome.joined.append(JoinedPair(label, prediction))
            elif code == DUPLICATE:
                outcome.duplicates += 1
            elif code == REPLACED:
                outcome.contradicting += 1
                outcome.joined.append(JoinedPair(label, prediction, replaced=int(previous)))
            elif code == STALE:
                outcome.contradicting += 1
            elif code == REDELIVERED:
                outcome.joined.append(JoinedPair(label, prediction, redelivered=True))
        return replies


def _pack_label(label: Label) -> bytes:
    return f"{label.label}:{label.label_time_ms}:{label.source}".encode()


def _unpack_label(event_id: str, payload: bytes) -> Label:
    value, at, source = payload.decode().split(":", 2)
    return Label(event_id, int(value), int(at), source)


def _mget(client: redis.Redis, keys: Sequence[str]) -> list[bytes | None]:
    try:
        return cast(list[bytes | None], client.mget(keys)) if keys else []
    except Exception as exc:
        raise_if_denied(exc, "the label join")
        raise LabelStoreError(f"redis: label join read failed: {type(exc).__name__}: {exc}") from exc


def _execute(pipe: Any) -> list[Any]:
    try:
        return list(pipe.execute())
    except Exception as exc:
        raise_if_denied(exc, "the label join")
        raise LabelStoreError(f"redis: label join write failed: {type(exc).__name__}: {exc}") from exc
