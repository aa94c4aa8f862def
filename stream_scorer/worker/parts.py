"""What the scoring loop is built from: the served model, where messages come from, bounds and topics."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from stream_scorer.batch import KafkaMessage
from stream_scorer.kafka.consumer import RebalanceListener
from stream_scorer.monitoring.drift import DriftMonitor
from stream_scorer.pipeline import Scorer
from stream_scorer.pipeline.emit import PredictionEncoder
from stream_scorer.worker.deadletter import DEFAULT_MAX_RECORD_BYTES


@dataclass(frozen=True, slots=True)
class ModelServing:
    """What scores and encodes batches: swapped as a whole, between batches, on a reload."""

    scorer: Scorer
    encoder: PredictionEncoder
    drift: DriftMonitor | None = None  # the model's training baselines vs what it sees now
    # The label join's record prefix naming the models, checked when the serving is built (not per batch).
    join_header: bytes = b""


class ModelSource(Protocol):
    """Offers a new :class:`ModelServing` when the served model changes (see :mod:`stream_scorer.model.reload`)."""

    def poll(self) -> ModelServing | None: ...


class MessageSource(Protocol):
    """Where events come from: a consumer-group member, told whom to call before it gives partitions up."""

    def subscribe(self, listener: RebalanceListener) -> None: ...
    def poll_batch(self, max_events: int, timeout: float) -> list[KafkaMessage]: ...
    def rewind_to(self, messages: Sequence[KafkaMessage]) -> None: ...


def backoff_seconds(bounds: BatchBounds, waits: int) -> float:
    """How long a failed batch waits before it is read again: not at all before the first wait, then doubling."""
    if waits == 0:
        return 0.0
    return min(bounds.max_retry_backoff_seconds, bounds.retry_backoff_seconds * 2.0 ** (waits - 1))


def wall_clock_ms() -> int:
    """Milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchBounds:
    """How much to poll and how long to wait for it."""

    max_events: int
    max_wait_seconds: float
    # 0: commit after every batch; more: flush and commit at most this often (fewer blocking flushes).
    commit_interval_seconds: float = 0.0
    # At-least-once commits each batch once its records are acknowledged; past this many batches waiting
    # for their acknowledgements, the loop flushes.
    max_uncommitted_batches: int = 8
    # A batch that was not delivered is read again after this, doubling up to the maximum while it fails.
    retry_backoff_seconds: float = 1.0
    max_retry_backoff_seconds: float = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Topics:
    """Where predictions and dead letters go."""

    predictions: str
    dead_letters: str
    max_dead_letter_bytes: int = DEFAULT_MAX_RECORD_BYTES  # the producer's (or the topic's) message size limit
