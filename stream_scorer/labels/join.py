"""The late-label join: each label meets its pending prediction in Redis, by event id.

For a batch of labels, two round trips: one MGET of the pending records and of the labels already
joined, one pipeline of writes. Per label:

- **first label** of a pending prediction: joined; every model's (score, decision, label) goes to the
  rolling metrics, the lags (label time minus event time, and minus scoring time) to histograms, and
  the prediction's coverage bucket counts one more labelled prediction;
- **the same label again**: a duplicate, counted, not joined again;
- **a different label** for an already labelled prediction: the last one wins; the metrics replace
  the earlier pair with the new one, and it is counted as contradicting;
- **no pending prediction** (the label came first, or the event is unknown or expired): the label is
  held in Redis and retried until ``hold_seconds`` after it arrived, then counted as unknown.

Held labels live in a sorted set scored by their deadline; a retry claims one by removing it
(``ZREM`` returns 1 to a single process), so several label processes never join it twice. The labels
topic is keyed by event id, so one event's labels are read by one process at a time.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import fastavro
import redis

from stream_scorer.codec import InvalidMessage, KafkaMessage
from stream_scorer.errors import FeatureStoreError, InvalidEventError
from stream_scorer.labels.pending import PendingPrediction, RedisPendingStore, unpack


@dataclass(frozen=True, slots=True)
class Label:
    """An observed outcome: 1 for the positive class."""

    event_id: str
    label: int
    label_time_ms: int


@dataclass(frozen=True, slots=True)
class JoinedPair:
    """A label joined to its prediction; ``replaced`` is the earlier label when this one contradicts it."""

    label: Label
    prediction: PendingPrediction
    replaced: int | None = None


@dataclass(slots=True)
class JoinOutcome:
    """What one call did, by kind."""

    joined: list[JoinedPair] = field(default_factory=list)
    duplicates: int = 0
    contradicting: int = 0
    held: int = 0
    unknown: int = 0
    unreadable: int = 0


def decode_labels(schema: Any, messages: Sequence[KafkaMessage]) -> tuple[list[Label], list[InvalidMessage]]:
    """Decode ``label.avsc`` records; a bad one becomes an :class:`InvalidMessage` (for the dead-letter topic)."""
    labels: list[Label] = []
    invalid: list[InvalidMessage] = []
    for message in messages:
        topic, partition, offset = message.topic() or "", message.partition() or 0, message.offset() or 0
        try:
            body = io.BytesIO(message.value() or b"")
            record: dict[str, Any] = fastavro.schemaless_reader(body, schema, schema)  # type: ignore[assignment]
        except Exception as exc:  # fastavro raises many types on garbage
            detail = f"not a Label record ({type(exc).__name__})"
            error = InvalidEventError("malformed_avro", detail, topic=topic, partition=partition, offset=offset)
            invalid.append(InvalidMessage(message, error))
            continue
        if body.tell() != len(message.value() or b""):
            detail = "bytes left after the Label record"
            error = InvalidEventError("trailing_bytes", detail, topic=topic, partition=partition, offset=offset)
            invalid.append(InvalidMessage(message, error))
            continue
        if not record["event_id"] or record["label"] not in (0, 1):
            detail = "label must be 0 or 1 and event_id non-empty"
            error = InvalidEventError("invalid_label", detail, topic=topic, partition=partition, offset=offset)
            invalid.append(InvalidMessage(message, error))
            continue
        labels.append(Label(record["event_id"], int(record["label"]), int(record["label_time"])))
    return labels, invalid


class LabelJoiner:
    """Joins batches of labels through Redis; pure bookkeeping apart from the two round trips."""

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

    def join(self, labels: Sequence[Label]) -> JoinOutcome:
        """Join a batch of freshly consumed labels."""
        outcome = JoinOutcome()
        if not labels:
            return outcome
        now = self._clock_ms()
        found, missing = self._read(labels, outcome)
        pipe = self._client.pipeline(transaction=False)
        for label in missing:  # held until its deadline, then unknown
            pipe.set(self._store.key("held", label.event_id), _pack_label(label), px=self._hold_ms + 60_000)
            pipe.zadd(self._held_set, {label.event_id: now + self._hold_ms})
            outcome.held += 1
        self._apply(found, pipe, outcome)
        _execute(pipe)
        return outcome

    def retry_held(self, limit: int = 1000) -> JoinOutcome:
        """Retry held labels: join those whose prediction arrived; count the overdue ones as unknown."""
        outcome = JoinOutcome()
        now = self._clock_ms()
        try:
            reply = self._client.zrangebyscore(self._held_set, "-inf", "+inf", start=0, num=limit, withscores=True)
            held = [(bytes(member), float(deadline)) for member, deadline in cast(list[tuple[bytes, float]], reply)]
        except Exception as exc:
            raise FeatureStoreError(f"redis: held labels not read: {type(exc).__name__}") from exc
        if not held:
            return outcome
        members = [m.decode() for m, _ in held]
        keys = [self._store.key("held", m) for m in members] + [self._store.key("pending", m) for m in members]
        values = _mget(self._client, keys)
        payloads, pending = values[: len(members)], values[len(members) :]
        ready, overdue = [], []
        for member, (_, deadline), payload, record in zip(members, held, payloads, pending, strict=True):
            if record is not None and payload is not None:
                ready.append(member)
            elif deadline <= now or payload is None:
                overdue.append(member)
        claims = self._claim(ready + overdue)  # only the process whose ZREM removed it goes on with it
        outcome.unknown += sum(1 for m in overdue if m in claims)
        payload_of = dict(zip(members, payloads, strict=True))
        labels = [_unpack_label(m, payload_of[m] or b"") for m in ready if m in claims]
        pipe = self._client.pipeline(transaction=False)
        if labels:
            found, _ = self._read(labels, outcome)
            self._apply(found, pipe, outcome)
        for member in claims:
            pipe.delete(self._store.key("held", member))
        _execute(pipe)
        return outcome

    def held_count(self) -> int:
        """How many labels are held, waiting for their prediction."""
        return int(self._client.zcard(self._held_set))

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

    def _read(
        self, labels: Sequence[Label], outcome: JoinOutcome
    ) -> tuple[list[tuple[Label, PendingPrediction, int | None]], list[Label]]:
        ids = [label.event_id for label in labels]
        values = _mget(
            self._client, [self._store.key("pending", i) for i in ids] + [self._store.key("label", i) for i in ids]
        )
        found: list[tuple[Label, PendingPrediction, int | None]] = []
        missing: list[Label] = []
        for label, record, previous in zip(labels, values[: len(ids)], values[len(ids) :], strict=True):
            if record is None:
                missing.append(label)
                continue
            try:
                prediction = unpack(record)
            except (ValueError, UnicodeDecodeError):
                outcome.unreadable += 1
                continue
            found.append((label, prediction, None if previous is None else int(previous)))
        return found, missing

    def _apply(
        self, found: Sequence[tuple[Label, PendingPrediction, int | None]], pipe: Any, outcome: JoinOutcome
    ) -> None:
        seen: dict[str, int] = {}  # labels of one event within this batch: the later one sees the earlier
        for label, prediction, previous in found:
            previous = seen.get(label.event_id, previous)
            if previous == label.label:
                outcome.duplicates += 1
                continue
            seen[label.event_id] = label.label
            pipe.set(self._store.key("label", label.event_id), str(label.label), px=self._horizon_ms)
            if previous is None:
                bucket = self._store.bucket(prediction.scored_at_ms)
                counter = self._store.key("labelled", str(bucket))
                pipe.incr(counter)
                pipe.pexpire(counter, 2 * self._horizon_ms + 86_400_000)
            else:
                outcome.contradicting += 1
            outcome.joined.append(JoinedPair(label, prediction, previous))

    def _claim(self, members: Sequence[str]) -> set[str]:
        if not members:
            return set()
        pipe = self._client.pipeline(transaction=False)
        for member in members:
            pipe.zrem(self._held_set, member)
        return {m for m, removed in zip(members, _execute(pipe), strict=True) if removed}


def _pack_label(label: Label) -> bytes:
    return f"{label.label}:{label.label_time_ms}".encode()


def _unpack_label(event_id: str, payload: bytes) -> Label:
    value, _, at = payload.decode().partition(":")
    return Label(event_id, int(value), int(at))


def _mget(client: redis.Redis, keys: Sequence[str]) -> list[bytes | None]:
    try:
        return cast(list[bytes | None], client.mget(keys)) if keys else []
    except Exception as exc:
        raise FeatureStoreError(f"redis: label join read failed: {type(exc).__name__}: {exc}") from exc


def _execute(pipe: Any) -> list[Any]:
    try:
        return list(pipe.execute())
    except Exception as exc:
        raise FeatureStoreError(f"redis: label join write failed: {type(exc).__name__}: {exc}") from exc
