"""The uncommitted window: the batches polled, scored and produced whose offsets are not committed yet."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stream_scorer.batch import KafkaMessage
from stream_scorer.codec import InvalidMessage
from stream_scorer.kafka.producer import Ticket
from stream_scorer.monitoring.metrics import ScorerMetrics
from stream_scorer.pipeline import ScoredBatch

GuardState = tuple[list[bool], int, int]


@dataclass(frozen=True, slots=True)
class Uncommitted:
    """A batch of the window: its messages, what was scored and refused, the delivery reports of what it
    produced, and the invalid-input guard's state before it (restored when the batch is read again)."""

    messages: list[KafkaMessage]
    scored: ScoredBatch | None
    invalid: list[InvalidMessage]
    ticket: Ticket
    guard_before: GuardState


def delivered_prefix(window: Sequence[Uncommitted]) -> int:
    """How many batches, from the oldest, had every record acknowledged (they may be committed, in order)."""
    done = 0
    while done < len(window) and window[done].ticket.delivered:
        done += 1
    return done


def count_committed(metrics: ScorerMetrics, batches: Sequence[Uncommitted], acked_at_ms: int) -> None:
    """Count what committed batches produced and refused, and their event-to-acknowledgement latency."""
    metrics.commits.inc()
    for batch in batches:
        for item in batch.invalid:
            metrics.decode_errors.labels(item.error.reason).inc()
            metrics.dead_letters.labels(item.error.reason).inc()
        if batch.scored is not None:
            metrics.predictions_produced.inc(len(batch.scored.batch))
            # A publisher clock ahead of ours would give negative latencies: count those as 0.
            latency = np.maximum(acked_at_ms - batch.scored.batch.event_time_ms, 0) / 1000.0
            metrics.event_latency.observe_many(latency)
