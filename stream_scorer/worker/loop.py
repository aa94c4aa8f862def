"""The run loop: poll -> decode -> score (enrich, freshness, vectorize) -> encode -> produce -> complete.

Each batch is finished by a :class:`~stream_scorer.kafka.delivery.Delivery`. At-least-once is pipelined:
the loop polls and scores the next batch while a batch's records are on their way, and commits ``offset + 1``
of each batch, in order, once every record it produced was acknowledged (a full window, a failed record, an
idle poll or a rebalance flush instead). Exactly-once flushes and commits one Kafka transaction per window.
If anything fails before that, nothing is committed. Invalid messages go to the
dead-letter topic with their reason (in the same batch, so they are committed with it), are counted,
and the worker moves on, unless so many are invalid that the guard stops it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from stream_scorer import errors
from stream_scorer.batch import KafkaMessage
from stream_scorer.codec import EventDecoder, InvalidMessage
from stream_scorer.errors import BatchAborted, DeliveryError, InvalidInputRateError, SchemaRegistryError
from stream_scorer.kafka.delivery import Delivery
from stream_scorer.kafka.producer import Ticket
from stream_scorer.monitoring.drift import DriftMonitor
from stream_scorer.monitoring.metrics import ScorerMetrics
from stream_scorer.pipeline import ScoredBatch, Scorer
from stream_scorer.pipeline.observe import observe_scored
from stream_scorer.worker import parts
from stream_scorer.worker.deadletter import dead_letters
from stream_scorer.worker.guard import InvalidInputGuard
from stream_scorer.worker.join_records import JoinRecords, PendingPredictionStore
from stream_scorer.worker.parts import BatchBounds, MessageSource, ModelServing, ModelSource, Topics, wall_clock_ms
from stream_scorer.worker.window import Uncommitted, count_committed, delivered_prefix

log = logging.getLogger(__name__)


class Worker:
    """Scores micro-batches from ``source`` through ``delivery`` until stopped."""

    def __init__(
        self,
        *,
        source: MessageSource,
        delivery: Delivery,
        decoder: EventDecoder,
        serving: ModelServing,
        metrics: ScorerMetrics,
        bounds: BatchBounds,
        topics: Topics,
        guard: InvalidInputGuard,
        models: ModelSource | None = None,
        pending_predictions: PendingPredictionStore | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self._source = source
        self._delivery = delivery
        self._decoder = decoder
        self._serving = serving
        self._metrics = metrics
        self._bounds = bounds
        self._topics = topics
        self._guard = guard
        self._models = models
        self._join = None if pending_predictions is None else JoinRecords(pending_predictions, metrics)
        self._clock_ms = clock_ms
        self._window: list[Uncommitted] = []
        self._window_started = 0.0
        self._guard_at_begin = guard.snapshot()
        self._failures_in_row = 0
        self.retrying: str | None = None  # why the last batch is being retried; None when all is well
        self._announce()
        source.subscribe(self)  # commit before a revoke, abandon on a loss: whoever builds a worker gets both

    def _announce(self) -> None:
        scorer = self._serving.scorer
        model = scorer.model
        self._metrics.model.info({"name": model.name, "version": model.version, "checksum": model.checksum})
        self._metrics.challengers.set(len(scorer.challengers))
        served = scorer.models
        self._metrics.announce_models([(m.name, m.version, m.metrics.get("validation", {})) for m in served])

    @property
    def scorer(self) -> Scorer:
        """The scorer in use (it changes on a reload)."""
        return self._serving.scorer

    def current_drift(self) -> DriftMonitor | None:
        """The served model's drift monitor (it changes on a reload); read by the drift collector at scrape time."""
        return self._serving.drift

    def run(self, stop: threading.Event) -> None:
        """Process batches until ``stop`` is set; the batch in hand is finished and committed first.

        A batch that could not be delivered (or whose transaction was aborted) was rewound, never committed:
        it is read again after a backoff that doubles (``BatchBounds``: 1 s to 30 s) while failures follow each other.
        Meanwhile :attr:`retrying` says why (readiness is false), and the worker never skips the batch.
        """
        while not stop.is_set():
            try:
                self.step()
            except (DeliveryError, BatchAborted, SchemaRegistryError) as exc:
                if isinstance(exc, DeliveryError) and exc.fatal:
                    raise
                self._back_off(exc, stop)
        self.commit_window()

    def _back_off(self, exc: DeliveryError | BatchAborted | SchemaRegistryError, stop: threading.Event) -> None:
        self._failures_in_row += 1
        undelivered = exc if isinstance(exc, DeliveryError) else exc.__cause__
        aborted = isinstance(exc, BatchAborted) and not isinstance(undelivered, DeliveryError)
        waits = self._failures_in_row - aborted  # a first aborted transaction is retried at once, as before
        delay = parts.backoff_seconds(self._bounds, waits)
        if isinstance(exc, BatchAborted):
            self._metrics.batches_aborted.inc()
        if isinstance(undelivered, DeliveryError):
            outputs = {"dead_letters" if t == self._topics.dead_letters else "predictions" for t in undelivered.topics}
            for output in outputs or {"predictions"}:
                self._metrics.delivery_failures.labels(output).inc()
        if isinstance(exc, SchemaRegistryError):
            self._metrics.schema_registry_errors.inc()
        self._metrics.retry_backoff.set(delay)
        what = "transaction aborted" if aborted else "batch not delivered"
        what = "schema registry unavailable" if isinstance(exc, SchemaRegistryError) else what
        self.retrying = f"{what}, read again in {delay:g} s: {exc}"
        log.log(
            logging.WARNING if waits == 0 else logging.ERROR,
            "%s (failure %d in a row; nothing was committed)",
            self.retrying,
            self._failures_in_row,
        )
        stop.wait(delay)

    def step(self) -> int:
        """Poll and process one micro-batch. Returns the number of messages polled.

        If anything fails, the uncommitted window is abandoned (aborted and rewound), never committed.
        """
        try:
            return self._step()
        except (BatchAborted, errors.TransactionStuckError):  # aborted and rewound, or stuck: no abort can run
            self._drop_window()  # (a no-op if commit_window dropped it)
            raise
        except BaseException:
            try:
                self.abandon_window()
            except Exception as exc:  # keep the original error; a restart re-reads from the last commit
                log.warning("could not abandon the window cleanly: %s", exc)
            raise

    def _step(self) -> int:
        self._reload()  # between batches: this batch is scored by one model from start to end
        seconds: dict[str, float] = {}
        t0 = time.perf_counter()
        messages = self._source.poll_batch(self._bounds.max_events, self._bounds.max_wait_seconds)  # poll
        t1 = time.perf_counter()
        if not messages:
            if self._window and self._interval_passed():
                self.commit_window()  # traffic stopped: do not leave a window (or a transaction) open
            return 0
        seconds["poll"] = t1 - t0
        try:
            decoded = self._decoder.decode(messages, self._clock_ms())  # decode
        except SchemaRegistryError:
            self.commit_window()  # the batches before this one are complete
            self._source.rewind_to(messages)  # this one is read again once the registry answers
            raise
        t2 = time.perf_counter()
        seconds["decode"] = t2 - t1
        guard_before = self._guard.snapshot()
        if not self._window:
            self._guard_at_begin = guard_before
        self._check_invalid(decoded.invalid, decoded.valid_flags)
        if not self._window:
            self._delivery.begin()
            self._window_started = time.monotonic()
        ticket = Ticket()
        self._window.append(Uncommitted(messages, None, decoded.invalid, ticket, guard_before))  # now it rewinds
        if decoded.invalid and self._failures_in_row:
            # Retrying: the dead letters go first and are flushed, so that while one is refused the batch's
            # predictions are not produced again on every attempt.
            self._produce_dead_letters(decoded.invalid, ticket)
            self._delivery.flush()
        scored: ScoredBatch | None = None
        if len(decoded.batch):
            scored = self._serving.scorer.score(decoded.batch, self._clock_ms())  # enrich, freshness, vectorize, score
            seconds.update(scored.stage_seconds)
            if self._join is not None:  # for the label join: in the background while we encode and produce
                self._join.submit(scored, self._serving.join_header)
            t3 = time.perf_counter()
            values = self._serving.encoder.encode(scored)  # encode
            t4 = time.perf_counter()
            self._delivery.serve()  # before this batch is queued: are the earlier ones all acknowledged?
            self._delivery.produce(self._topics.predictions, decoded.batch.key, values, ticket=ticket)  # produce
            seconds["encode"], seconds["produce"] = t4 - t3, time.perf_counter() - t4
        if decoded.invalid and not self._failures_in_row:
            self._produce_dead_letters(decoded.invalid, ticket)  # dead letters
        self._window[-1] = Uncommitted(messages, scored, decoded.invalid, ticket, guard_before)
        t5 = time.perf_counter()
        if self._interval_passed():
            self._commit_delivered() if self._delivery.pipelined else self.commit_window()  # (flush,) check, commit
            seconds["commit"] = time.perf_counter() - t5
        seconds["batch"] = time.perf_counter() - t0
        self._record(len(messages), scored, seconds)
        return len(messages)

    def _produce_dead_letters(self, invalid: Sequence[InvalidMessage], ticket: Ticket) -> None:
        letters = dead_letters(invalid, self._topics.max_dead_letter_bytes)
        self._delivery.produce(self._topics.dead_letters, letters.keys, letters.values, letters.headers, ticket)

    def close(self) -> None:
        """Stop the background writer (after :meth:`commit_window`)."""
        if self._join is not None:
            self._join.close()

    def _await_join(self, keep: int = 0) -> None:
        if self._join is not None:
            self._join.wait(keep)  # durable before the offsets are committed (keep: the newer batches' writes)

    def _reload(self) -> None:
        if self._models is None or (self._window and not self._delivery.pipelined):
            return  # a transaction (or a flushed commit window) holds one model's output; a pipeline need not
        serving = self._models.poll()
        if serving is not None:
            self._serving = serving
            self._metrics.model_reloads.inc()
            self._announce()

    def _interval_passed(self) -> bool:
        return time.monotonic() - self._window_started >= self._bounds.commit_interval_seconds

    def before_revoke(self) -> None:
        """Before partitions are given up: commit what was delivered. A batch being retried may belong to
        the partitions that move: its new owner retries it, so this worker stops saying it is retrying."""
        try:
            self.commit_window()
        finally:
            self._clear_retrying()

    def before_lost(self) -> None:
        """When partitions were lost: abandon the window (never commit it); see :meth:`before_revoke`."""
        try:
            self.abandon_window()
        finally:
            self._clear_retrying()

    def _clear_retrying(self) -> None:
        if self._failures_in_row:
            self._failures_in_row, self.retrying = 0, None
            self._metrics.retry_backoff.set(0)

    def abandon_window(self) -> None:
        """Drop the uncommitted window: abort its transaction (exactly-once) and rewind the consumer to the
        committed offsets, so that its events are read again. Used after a failure and when partitions are lost."""
        if not self._window:
            return
        self._drop_window()  # also waits for its pending writes: re-read and scored again, the first are kept
        self._delivery.abort()

    def _drop_window(self) -> None:
        self._await_join()
        if self._window:
            self._window = []
            self._guard.restore(self._guard_at_begin)  # the re-read messages will be counted again

    def commit_window(self) -> None:
        """Make every batch since the last commit durable: flush, check and commit (or commit the transaction).
        Called after each batch (or once per ``commit_interval_seconds``), on shutdown and before a rebalance."""
        if self._window:
            self._commit(len(self._window), self._delivery.complete)

    def _commit_delivered(self) -> None:
        """Pipelined: commit, oldest first, the batches whose records were all acknowledged, without waiting;
        flush and commit the whole window when it is full or a record failed (the flush raises, it is read again)."""
        self._delivery.serve()
        window = self._window
        if len(window) >= self._bounds.max_uncommitted_batches or any(b.ticket.failed for b in window):
            self.commit_window()
        elif done := delivered_prefix(window):
            self._commit(done, self._delivery.commit_delivered)
            if self._window:
                self._guard_at_begin = self._window[0].guard_before
                self._window_started = time.monotonic()

    def _commit(self, count: int, commit: Callable[[Sequence[KafkaMessage]], object]) -> None:
        """Commit the window's oldest ``count`` batches with ``commit``; on a failure drop and rewind them all."""
        self._await_join(keep=sum(batch.scored is not None for batch in self._window[count:]))
        committed = self._window[:count]
        try:
            commit([m for batch in committed for m in batch.messages])
        except (BatchAborted, errors.TransactionStuckError):  # aborted and rewound, or stuck: no abort can run
            self._drop_window()
            raise
        except BaseException:
            self._drop_window()  # never retried as is: a failed window is read again, not committed later
            self._delivery.abort()  # rewind; if even that fails, its KafkaError stops the worker
            raise
        del self._window[:count]
        if self._failures_in_row:
            self._clear_retrying()
            log.info("the retried batch was delivered and committed")
        self._metrics.last_batch.set(time.time())
        count_committed(self._metrics, committed, self._clock_ms())

    def _check_invalid(self, invalid: Sequence[InvalidMessage], valid_flags: Sequence[bool]) -> None:
        for item in invalid:  # counted once committed, so that a retried batch is not counted twice
            log.warning("invalid event, to the dead-letter topic: %s", item.error)  # location, never the payload
        try:
            self._guard.observe(valid_flags)
        except InvalidInputRateError as exc:
            for item in invalid:  # never committed, but the burst that stopped the worker is what to look at
                self._metrics.decode_errors.labels(item.error.reason).inc()
            self._metrics.invalid_input_stops.inc()
            log.error("%s", exc)
            raise

    def _record(self, polled: int, scored: ScoredBatch | None, seconds: dict[str, float]) -> None:
        metrics = self._metrics
        metrics.events_consumed.inc(polled)
        metrics.batch_size.observe(polled)
        metrics.observe_stages(seconds)
        if scored is None:
            return
        observe_scored(metrics, scored)
        drift = self._serving.drift
        if drift is not None:
            drift.observe(scored.features, scored.scores)
