"""The label flow: poll labels -> decode -> join (Redis) -> rolling metrics -> dead letters -> commit.

Run it with ``stream-scorer labels``: a consumer group of its own on the labels topic, any number of
processes. Offsets are committed after the batch's Redis writes and dead letters succeed
(at-least-once). The metrics observe a batch after its commit; a batch read again (its writes applied,
its commit failed) is recognized message by message in Redis and observed then, once. The rolling
windows live in the process and start empty after a restart; the join itself (pending predictions,
labels joined, held labels) lives in Redis.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from stream_scorer.errors import DeliveryError, LabelStoreError
from stream_scorer.kafka.delivery import Delivery
from stream_scorer.labels.decode import LABEL_FIELDS, LabelFields, decode_labels
from stream_scorer.labels.join import JoinOutcome, LabelJoiner
from stream_scorer.monitoring.label_metrics import LabelMetrics
from stream_scorer.worker import MessageSource
from stream_scorer.worker.deadletter import DEFAULT_MAX_RECORD_BYTES, dead_letters

log = logging.getLogger(__name__)


class QualitySink(Protocol):
    """The rolling metrics (see :mod:`stream_scorer.labels.quality`)."""

    def observe(
        self, key: str, model: str, version: str, score: float, decision: bool, label: int, at: float
    ) -> None: ...


class LabelFlow:
    """Joins label micro-batches until stopped; held labels are retried and coverage refreshed on a timer."""

    def __init__(
        self,
        *,
        source: MessageSource,
        delivery: Delivery,
        schema: Any,
        label_fields: LabelFields = LABEL_FIELDS,
        joiner: LabelJoiner,
        quality: QualitySink,
        metrics: LabelMetrics,
        dead_letter_topic: str,
        max_events: int,
        max_wait_seconds: float,
        retry_seconds: float,
        coverage_lookback_seconds: float,
        clock: Callable[[], float] = time.time,
        max_dead_letter_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:
        self._source = source
        self.retrying: str | None = None  # why the last batch is being retried; None when all is well
        self._delivery = delivery
        self._schema = schema
        self._label_fields = label_fields
        self._joiner = joiner
        self._quality = quality
        self._metrics = metrics
        self._dead_letter_topic = dead_letter_topic
        self._max_dead_letter_bytes = max_dead_letter_bytes
        self._max_events = max_events
        self._max_wait = max_wait_seconds
        self._retry_seconds = retry_seconds
        self._lookback = coverage_lookback_seconds
        self._clock = clock
        self._timers_at = 0.0
        source.subscribe(self)  # last: the listener is complete when the first rebalance calls it

    def before_revoke(self) -> None:
        """Nothing to commit before a revoke: every label batch is committed before the next is polled."""

    def before_lost(self) -> None:
        """Nothing to abandon when partitions are lost, for the same reason."""

    def run(self, stop: threading.Event) -> None:
        """Process batches until ``stop`` is set. A Redis failure, or a dead letter that was not delivered,
        rewinds the batch and retries it after a pause (nothing is committed past it); meanwhile
        :attr:`retrying` says why, and readiness is false."""
        while not stop.is_set():
            try:
                if self.step():
                    self.retrying = None  # the re-read batch was committed
            except LabelStoreError as exc:
                self._metrics.store_errors.inc()
                self._pause(stop, 1.0, f"label join paused, the batch will be read again: {exc}")
            except DeliveryError as exc:
                if exc.fatal:
                    raise
                self._pause(stop, 5.0, f"dead letters not delivered, the batch will be read again in 5 s: {exc}")

    def _pause(self, stop: threading.Event, seconds: float, why: str) -> None:
        self.retrying = why
        log.warning("%s", why)
        self._delivery.abort()
        stop.wait(seconds)

    def step(self) -> int:
        """Poll and join one batch of labels (and run the timers when due). Returns the messages polled."""
        self._timers()
        messages = self._source.poll_batch(self._max_events, self._max_wait)  # poll
        if not messages:
            return 0
        self._metrics.consumed.inc(len(messages))
        labels, invalid = decode_labels(self._schema, messages, self._label_fields)  # decode
        self._delivery.begin()
        outcome = self._joiner.join(labels)  # join
        if invalid:
            letters = dead_letters(invalid, self._max_dead_letter_bytes)  # dead letters
            self._delivery.produce(self._dead_letter_topic, letters.keys, letters.values, letters.headers)
        self._delivery.complete(messages)  # flush, check, commit
        self._observe(outcome)  # metrics, once the batch is committed
        for item in invalid:
            self._metrics.invalid.labels(item.error.reason).inc()
        self._metrics.last_batch.set(self._clock())
        return len(messages)

    def _timers(self) -> None:
        now = self._clock()
        if now - self._timers_at < self._retry_seconds:
            return
        self._timers_at = now
        self._observe(self._joiner.retry_held())
        self._metrics.held.set(self._joiner.held_count())
        coverage, support = self._joiner.coverage(int(now * 1000), self._lookback)
        self._metrics.coverage.set(coverage)
        self._metrics.coverage_predictions.set(support)

    def _observe(self, outcome: JoinOutcome) -> None:
        metrics = self._metrics
        metrics.duplicate.inc(outcome.duplicates)
        metrics.contradicting.inc(outcome.contradicting)
        metrics.early.inc(outcome.held)
        metrics.unknown.inc(outcome.unknown)
        metrics.unreadable.inc(outcome.unreadable)
        first = [pair for pair in outcome.joined if pair.replaced is None]
        metrics.joined.inc(len(first))
        now = self._clock()
        for pair in outcome.joined:
            prediction, label = pair.prediction, pair.label
            for (name, version), score, decision in zip(
                prediction.models, prediction.scores, prediction.decisions, strict=True
            ):
                try:
                    self._quality.observe(label.event_id, name, version, score, decision, label.label, now)
                except ValueError as exc:  # a score the windows refuse (NaN): counted, the flow goes on
                    metrics.unreadable.inc()
                    log.warning("pair of %s not observed: %s", label.event_id, exc)
        if first:
            label_ms = np.array([p.label.label_time_ms for p in first], dtype=np.float64)
            event_ms = np.array([p.prediction.event_time_ms for p in first], dtype=np.float64)
            scored_ms = np.array([p.prediction.scored_at_ms for p in first], dtype=np.float64)
            metrics.lag.observe_many(np.maximum(label_ms - event_ms, 0.0) / 1000.0, "event_time")
            metrics.lag.observe_many(np.maximum(label_ms - scored_ms, 0.0) / 1000.0, "scored_at")
