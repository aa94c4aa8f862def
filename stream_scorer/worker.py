"""The run loop: poll -> decode -> score (enrich, freshness, vectorize) -> encode -> produce -> flush -> commit.

Delivery is at-least-once. A batch's offsets are committed only after every prediction of the
batch was acknowledged by the broker; if anything fails before that, the worker stops without
committing, and a restart resumes from the last commit. Invalid messages are counted, logged
without their payload and skipped (their offsets are committed with the batch).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from stream_scorer.codec import EventDecoder, KafkaMessage, encode_many
from stream_scorer.errors import InvalidEventError
from stream_scorer.monitoring.metrics import ScorerMetrics
from stream_scorer.pipeline import ScoredBatch, Scorer, prediction_records, status_counts

log = logging.getLogger(__name__)


class MessageSource(Protocol):
    """Where events come from (a consumer-group member)."""

    def poll_batch(self, max_events: int, timeout: float) -> list[KafkaMessage]: ...
    def commit(self, messages: Sequence[KafkaMessage]) -> None: ...


class PredictionSink(Protocol):
    """Where predictions go; ``flush`` raises if any record was not acknowledged."""

    def produce(self, keys: Sequence[bytes | None], values: Sequence[bytes]) -> None: ...
    def flush(self, timeout: float) -> int: ...


def wall_clock_ms() -> int:
    """Milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchBounds:
    """How much to poll and how long to wait."""

    max_events: int
    max_wait_seconds: float
    flush_timeout_seconds: float


class Worker:
    """Scores micro-batches from ``source`` into ``sink`` until stopped."""

    def __init__(
        self,
        *,
        source: MessageSource,
        sink: PredictionSink,
        decoder: EventDecoder,
        scorer: Scorer,
        prediction_schema: object,
        metrics: ScorerMetrics,
        bounds: BatchBounds,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._source = source
        self._sink = sink
        self._decoder = decoder
        self._scorer = scorer
        self._prediction_schema = prediction_schema
        self._metrics = metrics
        self._bounds = bounds
        self._clock_ms = clock_ms
        model = scorer.model
        metrics.model.info({"name": model.name, "version": model.version, "checksum": model.checksum})

    def run(self, stop: threading.Event) -> None:
        """Process batches until ``stop`` is set; the batch in hand is finished, flushed and committed first."""
        while not stop.is_set():
            self.step()

    def step(self) -> int:
        """Poll and process one micro-batch. Returns the number of messages polled."""
        seconds: dict[str, float] = {}
        t0 = time.perf_counter()
        messages = self._source.poll_batch(self._bounds.max_events, self._bounds.max_wait_seconds)  # poll
        t1 = time.perf_counter()
        if not messages:
            return 0
        seconds["poll"] = t1 - t0
        decoded = self._decoder.decode(messages, self._clock_ms())  # decode
        t2 = time.perf_counter()
        seconds["decode"] = t2 - t1
        self._report_invalid(decoded.invalid)
        scored: ScoredBatch | None = None
        if len(decoded.batch):
            scored = self._scorer.score(decoded.batch, self._clock_ms())  # enrich, vectorize, score
            seconds.update(scored.stage_seconds)
            t3 = time.perf_counter()
            values = encode_many(self._prediction_schema, prediction_records(scored, self._scorer.model))  # encode
            t4 = time.perf_counter()
            self._sink.produce(decoded.batch.key, values)  # produce
            t5 = time.perf_counter()
            seconds["encode"], seconds["produce"] = t4 - t3, t5 - t4
        t5 = time.perf_counter()
        acked = self._sink.flush(self._bounds.flush_timeout_seconds)  # flush
        t6 = time.perf_counter()
        self._source.commit(messages)  # commit
        t7 = time.perf_counter()
        seconds["flush"], seconds["commit"], seconds["batch"] = t6 - t5, t7 - t6, t7 - t0
        self._record(len(messages), acked, scored, seconds)
        return len(messages)

    def _report_invalid(self, invalid: list[InvalidEventError]) -> None:
        for error in invalid:
            self._metrics.decode_errors.labels(error.reason).inc()
            log.warning("skipped invalid event %s", error)  # the error names the location, never the payload

    def _record(self, polled: int, acked: int, scored: ScoredBatch | None, seconds: dict[str, float]) -> None:
        metrics = self._metrics
        metrics.events_consumed.inc(polled)
        metrics.batch_size.observe(polled)
        metrics.observe_stages(seconds)
        metrics.commits.inc()
        metrics.last_batch.set(time.time())
        if scored is None:
            return
        metrics.predictions_produced.inc(acked)
        acked_at = self._clock_ms()
        metrics.event_latency.observe_many((acked_at - scored.batch.event_time_ms) / 1000.0)
        for name, counts in status_counts(scored).items():
            metrics.observe_freshness(
                name, counts, scored.freshness[name].age_ms, int(np.count_nonzero(scored.group_values[name].malformed))
            )
        metrics.predictions_imputed.inc(int(np.count_nonzero(scored.imputed)))
