"""The late-label join: each label meets its pending prediction in Redis, by event id.

Per batch of labels: one MGET (the pending records, and any held copy of the same events), then one
server-side script that decides and writes every label atomically (``JOIN_SCRIPT``), so two label
processes never both count a label as the first; on a Redis Cluster, one of each per hash tag of the
batch's event ids, pipelined per node (:mod:`stream_scorer.features.keys`). Per label:

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

Held labels live in a sorted set scored by their deadline (one per hash tag). The script claims a held label by removing
it (``ZREM``) in the same step that joins it, so a held label is joined once, by one process, and never
lost between the claim and the join.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from stream_scorer.errors import LabelStoreError
from stream_scorer.features.access import raise_if_any_denied
from stream_scorer.features.keys import by_bucket
from stream_scorer.features.nodes import Call, failures
from stream_scorer.labels.join_script import (
    DUPLICATE,
    FIRST,
    JOIN_SCRIPT,
    JOIN_SCRIPT_SHA,
    REDELIVERED,
    REPLACED,
    STALE,
)
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


log = logging.getLogger(__name__)

_Item = tuple[Label, PendingPrediction, bool]  # a label, its prediction, whether it is a held copy to claim


class LabelJoiner:
    """Joins batches of labels through Redis: per hash tag of the batch's event ids (one tag on a single Redis)
    one MGET and one script, pipelined per node, then the coverage counts."""

    def __init__(
        self,
        store: RedisPendingStore,
        *,
        horizon_seconds: float,
        hold_seconds: float,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._nodes = store.nodes
        self._store = store
        self._keys = store.keys
        self._horizon_ms = int(horizon_seconds * 1000)
        self._hold_ms = int(hold_seconds * 1000)
        self._clock_ms = clock_ms
        self._cursor = 0  # where the next retry scan of not-yet-overdue held labels starts, in every held set

    def held_set(self, bucket: int) -> str:
        """The sorted set of the held labels of one hash tag, scored by their deadline."""
        return self._keys.bucket_key("held", bucket, "by-deadline")

    def join(self, labels: Sequence[Label]) -> JoinOutcome:
        """Join a batch of freshly consumed labels; those without a prediction are held."""
        outcome = JoinOutcome()
        if not labels:
            return outcome
        now = self._clock_ms()
        ids = list(dict.fromkeys(label.event_id for label in labels))
        pending, held = self._records(ids)
        predictions = {i: self._prediction(pending[i], outcome) for i in ids}
        items: list[_Item] = []
        newest_held: dict[str, Label] = {}
        for event_id in ids:  # a held copy of an event whose prediction is here now: joined first, in order
            prediction = predictions[event_id]
            if prediction is not None and held.get(event_id) is not None:
                items.append((_unpack_label(event_id, held[event_id]), prediction, True))  # type: ignore[arg-type]
        for label in labels:
            prediction = predictions[label.event_id]
            if prediction is not None:
                items.append((label, prediction, False))
            elif pending[label.event_id] is None:
                stored = held.get(label.event_id)
                earlier = newest_held.get(label.event_id) or (
                    _unpack_label(label.event_id, stored) if stored is not None else None
                )
                if earlier is None or earlier.label_time_ms <= label.label_time_ms:
                    newest_held[label.event_id] = label
                outcome.held += 1
        writes = []
        for event_id, label in newest_held.items():  # held until its deadline, then unknown
            key, held_set = self._store.key("held", event_id), self.held_set(self._keys.bucket(event_id))
            writes.append(Call(key, ("SET", key, _pack_label(label), "PX", self._hold_ms + 60_000)))
            writes.append(Call(held_set, ("ZADD", held_set, now + self._hold_ms, event_id)))
        self._run(items, outcome, writes)
        return outcome

    def retry_held(self, limit: int = 10_000) -> JoinOutcome:
        """Join held labels whose prediction arrived; count those past their deadline as unknown.

        Each call looks at up to ``limit`` overdue labels and ``limit`` others (in turn, from a cursor; shared
        evenly among a cluster's held sets), so a crowd of labels for unknown events never starves one whose
        prediction has arrived. At 1000 a call, the 30,000 early labels of the demo's backlog drain queued behind
        older held labels until their predictions' records (a 30 s horizon) expired: none was joined. At 10,000
        (two MGETs of 10,000 keys a call; not measured) they were.
        """
        outcome = JoinOutcome()
        now = self._clock_ms()
        per_set = max(1, -(-limit // self._keys.hash_tags))
        sets = [self.held_set(b) for b in range(self._keys.hash_tags)]
        ranges = (("-inf", now, 0), (f"({now}", "+inf", self._cursor))  # overdue, then waiting from the cursor
        scans = [
            Call(k, ("ZRANGEBYSCORE", k, low, high, "LIMIT", at, per_set)) for low, high, at in ranges for k in sets
        ]
        found = self._checked(self._nodes.run(scans), "held labels not read")
        overdue = {bytes(m).decode() for reply in found[: self._keys.hash_tags] for m in reply}
        waiting = found[self._keys.hash_tags :]
        full = any(len(reply) >= per_set for reply in waiting)
        self._cursor = self._cursor + per_set if full else 0
        members = list(dict.fromkeys([*overdue, *(bytes(m).decode() for reply in waiting for m in reply)]))
        if not members:
            return outcome
        pending, held = self._records(members)
        items: list[_Item] = []
        expired: list[str] = []
        for member in members:
            prediction = self._prediction(pending[member], outcome)
            payload = held.get(member)
            if prediction is not None and payload is not None:
                items.append((_unpack_label(member, payload), prediction, True))
            elif member in overdue:
                expired.append(member)
        writes = []
        for member in expired:  # claimed by whichever process removes it first
            held_set, key = self.held_set(self._keys.bucket(member)), self._store.key("held", member)
            writes += [Call(held_set, ("ZREM", held_set, member)), Call(key, ("DEL", key))]
        replies = self._run(items, outcome, writes, retry=True)
        outcome.unknown += sum(1 for removed in replies[: 2 * len(expired) : 2] if removed == 1)
        return outcome

    def probe_access(self, probe_id: str) -> None:
        """Use every command and key pattern of the join once, on keys of ``probe_id`` (a label key that lives
        a second, and no-ops on the held set), so a right the Redis user lacks is an error now, not at the
        first label. Raises :class:`~stream_scorer.errors.AccessDeniedError` naming it."""
        key = self._store.key
        held_set = self.held_set(self._keys.bucket(probe_id))
        label, held = key("label", probe_id), key("held", probe_id)
        counter = self._store.counter_key("labelled", self._keys.bucket(probe_id), 0)  # of 1970: never read
        script = ("EVALSHA", JOIN_SCRIPT_SHA, 4, held_set, label, counter, held, 1000, 1000, "", 0, 0, "access-probe")
        calls = [
            Call(label, ("MGET", key("pending", probe_id), held)),
            Call(label, ("SCRIPT", "LOAD", JOIN_SCRIPT)),  # as after a Redis restart, when its cache is empty
            Call(label, ("DEL", label)),  # a probe of another process within its second: run it all again
            Call(label, script, JOIN_SCRIPT),  # as join runs it
            Call(held_set, ("ZADD", held_set, "XX", 0, probe_id)),  # XX: only updates a member, and there is none
            Call(held_set, ("ZRANGEBYSCORE", held_set, "-inf", "-inf", "LIMIT", 0, 1)),
            Call(held_set, ("ZREM", held_set, probe_id)),
            Call(held_set, ("ZCARD", held_set)),
            Call(held, ("DEL", held)),
            Call(held, ("SET", held, b"", "PX", 1000)),
        ]
        self._checked(self._nodes.run(calls), "the label join's access probe failed")
        self.coverage(self._clock_ms(), 60.0)

    def held_count(self) -> int:
        """How many labels are held, waiting for their prediction."""
        sets = [self.held_set(b) for b in range(self._keys.hash_tags)]
        counts = self._checked(self._nodes.run([Call(k, ("ZCARD", k)) for k in sets]), "held labels not counted")
        return sum(int(n) for n in counts)

    def coverage(self, now_ms: int, lookback_seconds: float) -> tuple[float, int]:
        """Share of the predictions scored in ``lookback_seconds`` before the horizon that got a label, and how
        many predictions that is (NaN when none)."""
        end = self._store.bucket(now_ms - self._horizon_ms)
        start = self._store.bucket(now_ms - self._horizon_ms - int(lookback_seconds * 1000))
        if end <= start:
            return float("nan"), 0
        buckets = range(start, end)
        calls = []
        for tag in range(self._keys.hash_tags):  # each tag counts its own predictions and labels
            keys = [self._store.counter_key(kind, tag, b) for kind in ("predicted", "labelled") for b in buckets]
            calls.append(Call(keys[0], ("MGET", *keys)))
        total = got = 0
        for counts in self._checked(self._nodes.run(calls), "coverage not read"):
            total += sum(int(v) for v in counts[: len(buckets)] if v is not None)
            got += sum(int(v) for v in counts[len(buckets) :] if v is not None)
        return (got / total if total else float("nan")), total

    def _records(self, ids: Sequence[str]) -> tuple[dict[str, bytes | None], dict[str, bytes | None]]:
        """The pending record and the held label of each event id: one MGET per hash tag."""
        groups = list(by_bucket(self._keys.buckets(ids)).values())
        calls = []
        for positions in groups:
            keys = [self._store.key(kind, ids[i]) for kind in ("pending", "held") for i in positions]
            calls.append(Call(keys[0], ("MGET", *keys)))
        pending: dict[str, bytes | None] = {}
        held: dict[str, bytes | None] = {}
        for positions, values in zip(
            groups, self._checked(self._nodes.run(calls), "label join read failed"), strict=True
        ):
            for j, i in enumerate(positions):
                pending[ids[i]], held[ids[i]] = values[j], values[len(positions) + j]
        return pending, held

    def _prediction(self, record: bytes | None, outcome: JoinOutcome) -> PendingPrediction | None:
        if record is None:
            return None
        try:
            return unpack(record)
        except (ValueError, UnicodeDecodeError, IndexError, struct.error):
            outcome.unreadable += 1
            return None

    def _run(
        self, items: Sequence[_Item], outcome: JoinOutcome, writes: Sequence[Call], *, retry: bool = False
    ) -> list[Any]:
        """Send ``writes``, then the join script for ``items`` (one call per hash tag), and classify the replies.
        Returns the replies of ``writes``. When a call failed: raises :class:`LabelStoreError` after the others
        were classified (the batch is read again; what was applied comes back REDELIVERED), or, for a ``retry``
        of held labels (read from Redis, not Kafka), logs it: the labels a failed call did not claim stay held."""
        groups = list(by_bucket(self._keys.buckets([label.event_id for label, _, _ in items])).items())
        calls = list(writes)
        for tag, positions in groups:
            keys: list[str] = [self.held_set(tag)]
            args: list[Any] = [self._horizon_ms, self._store.counter_ttl_ms()]
            for label, prediction, claim in (items[i] for i in positions):
                counter = self._store.counter_key("labelled", tag, self._store.bucket(prediction.scored_at_ms))
                keys += [self._store.key("label", label.event_id), counter, self._store.key("held", label.event_id)]
                args += [label.event_id if claim else "", label.label, label.label_time_ms, label.source]
            calls.append(Call(keys[0], ("EVALSHA", JOIN_SCRIPT_SHA, len(keys), *keys, *args), JOIN_SCRIPT))
        replies = self._nodes.run(calls)
        for (_, positions), codes in zip(groups, replies[len(writes) :], strict=True):
            if not isinstance(codes, Exception):
                _classify([items[i] for i in positions], codes, outcome)
        failed = failures(replies)
        if failed and not retry:
            self._raise(failed, "label join write failed")
        if failed:
            raise_if_any_denied(failed, "the label join")
            log.warning("label join: %d of %d calls of a retry failed: %s", len(failed), len(calls), failed[0])
        return replies[: len(writes)]

    def _checked(self, replies: list[Any], what: str) -> list[Any]:
        failed = failures(replies)
        if failed:
            self._raise(failed, what)
        return replies

    @staticmethod
    def _raise(failed: Sequence[Exception], what: str) -> None:
        raise_if_any_denied(failed, "the label join")
        error = failed[0]
        raise LabelStoreError(f"redis: {what}: {type(error).__name__}: {error}") from error


def _classify(items: Sequence[_Item], codes: Sequence[int], outcome: JoinOutcome) -> None:
    """Count one script call's answers: two numbers per item, its code and the label it replaced."""
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


def _pack_label(label: Label) -> bytes:
    return f"{label.label}:{label.label_time_ms}:{label.source}".encode()


def _unpack_label(event_id: str, payload: bytes) -> Label:
    value, at, source = payload.decode().split(":", 2)
    return Label(event_id, int(value), int(at), source)
