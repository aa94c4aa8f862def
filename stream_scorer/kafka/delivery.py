"""How a batch is finished: at-least-once (flush, check, commit) or exactly-once (one transaction).

Both follow the same steps for every batch::

    begin()                       exactly-once: begin the transaction
    produce(...)                  predictions and dead letters
    complete(messages)            at-least-once: 1. flush  2. check every delivery  3. commit offset + 1
                                  exactly-once:  1. flush  2. check  3. send offset + 1 in the transaction
                                                 4. commit the transaction

Exactly-once errors are classified: a retriable commit is retried; an abortable one aborts the
transaction, rewinds the consumer to the committed offsets and raises :class:`BatchAborted` (the worker
goes on); a fenced or fatal one raises :class:`KafkaError` (the worker exits non-zero).

The transactional calls run under a watchdog: librdkafka 2.16 can block in ``send_offsets_to_transaction``
past its own timeout when the coordinator's broker dies (confluentinc/librdkafka#5456, #5511; seen here when
the killed broker of a three-broker cluster was the coordinator). Past the timeout and a grace period the
call raises :class:`TransactionStuckError` and the worker exits at once: a new worker with the same
transactional.id fences the stuck one and aborts its transaction, so nothing is lost or duplicated.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, NoReturn, Protocol

import confluent_kafka
from confluent_kafka import TopicPartition

from stream_scorer.batch import KafkaMessage
from stream_scorer.errors import BatchAborted, DeliveryError, KafkaError, StreamScorerError, TransactionStuckError
from stream_scorer.kafka.access import denied
from stream_scorer.kafka.consumer import BatchConsumer
from stream_scorer.kafka.offsets import next_offsets
from stream_scorer.kafka.producer import CheckedProducer, Ticket

log = logging.getLogger(__name__)
WATCHDOG_GRACE_SECONDS = 10.0


class Delivery(Protocol):
    """Where a batch's records go, and how the batch is made durable."""

    def begin(self) -> None: ...
    def produce(
        self,
        topic: str,
        keys: Sequence[bytes | None],
        values: Sequence[bytes | None],
        headers: Sequence[list[tuple[str, bytes]]] | None = None,
        ticket: Ticket | None = None,
    ) -> None: ...
    def flush(self) -> None: ...
    def complete(self, messages: Sequence[KafkaMessage]) -> int: ...
    def abort(self) -> None: ...

    @property
    def pipelined(self) -> bool:
        """Whether a batch may be committed alone once its own records are acknowledged, without a flush
        (:meth:`commit_delivered`), while later batches' records are still on their way."""
        ...

    def serve(self) -> None:
        """Serve the delivery reports that have arrived, without waiting."""
        ...

    def commit_delivered(self, messages: Sequence[KafkaMessage]) -> None:
        """Commit the offsets of batches whose records were all acknowledged (pipelined modes only)."""
        ...


class _Producing:
    """What both modes share: the producer, the consumer, the timeout, and producing."""

    def __init__(self, producer: CheckedProducer, consumer: BatchConsumer, timeout_seconds: float) -> None:
        self._producer = producer
        self._consumer = consumer
        self._timeout = timeout_seconds

    def produce(
        self,
        topic: str,
        keys: Sequence[bytes | None],
        values: Sequence[bytes | None],
        headers: Sequence[list[tuple[str, bytes]]] | None = None,
        ticket: Ticket | None = None,
    ) -> None:
        self._producer.produce(topic, keys, values, headers, ticket)

    def serve(self) -> None:
        self._producer.serve()


class AtLeastOnce(_Producing):
    """Commit a batch's offsets only after every record it produced was acknowledged: pipelined, once its
    :class:`Ticket` says so, or after a flush."""

    pipelined = True

    def begin(self) -> None:
        pass

    def commit_delivered(self, messages: Sequence[KafkaMessage]) -> None:
        self._consumer.commit(messages, asynchronous=True)  # never waits: a lost commit is a re-read, not a loss

    def abort(self) -> None:
        """Nothing to undo: what was produced stays (read again, it is produced again); rewind."""
        self._consumer.rewind_to_committed()

    def flush(self) -> None:
        """Wait for what was produced so far; raise :class:`DeliveryError` unless all of it was acknowledged."""
        self._producer.flush(self._timeout)

    def complete(self, messages: Sequence[KafkaMessage]) -> int:
        acked = self._producer.flush(self._timeout)  # 1-2: raises unless every record was acknowledged
        self._consumer.commit(messages)  # 3
        return acked


class ExactlyOnce(_Producing):
    """One Kafka transaction per batch: its predictions, its dead letters and its consumed offsets."""

    pipelined = False

    def commit_delivered(self, messages: Sequence[KafkaMessage]) -> None:
        raise NotImplementedError("a transaction commits its whole window: complete()")

    def __init__(
        self,
        producer: CheckedProducer,
        consumer: BatchConsumer,
        timeout_seconds: float,
        commit_retries: int = 5,
        transactional_id: str = "",
        watchdog_grace_seconds: float = WATCHDOG_GRACE_SECONDS,
    ) -> None:
        super().__init__(producer, consumer, timeout_seconds)
        self._grace = watchdog_grace_seconds
        self._retries = commit_retries
        self._transactional_id = transactional_id  # named when the principal may not use it
        self._call("init_transactions", producer.raw.init_transactions, timeout_seconds)

    def begin(self) -> None:
        self._call("begin_transaction", self._producer.raw.begin_transaction)

    def produce(
        self,
        topic: str,
        keys: Sequence[bytes | None],
        values: Sequence[bytes | None],
        headers: Sequence[list[tuple[str, bytes]]] | None = None,
        ticket: Ticket | None = None,
    ) -> None:
        try:
            self._producer.produce(topic, keys, values, headers, ticket)
        except KafkaError as exc:
            # A transaction in an abortable state refuses new records with a plain _STATE error.
            cause = exc.__cause__
            if (
                isinstance(cause, confluent_kafka.KafkaException)
                and cause.args[0].code() == confluent_kafka.KafkaError._STATE
            ):
                self._abort(f"the transaction refused records: {cause}")
            raise

    def abort(self) -> None:
        """Abort the open transaction (its records are never seen by read_committed consumers) and rewind."""
        try:
            self._watched("abort_transaction", self._producer.raw.abort_transaction, self._timeout)
        except confluent_kafka.KafkaException as exc:
            raise KafkaError(f"abort_transaction failed: {exc}") from exc
        self._producer.reset()  # the aborted records' failure reports are not the next window's
        self._consumer.rewind_to_committed()

    def flush(self) -> None:
        """Wait for what the transaction produced so far; abort it unless all of it was acknowledged."""
        try:
            self._producer.flush(self._timeout)
        except DeliveryError as exc:
            self._abort(f"a record of the transaction was not delivered: {exc}", exc)

    def complete(self, messages: Sequence[KafkaMessage]) -> int:
        raw = self._producer.raw
        try:
            acked = self._producer.flush(self._timeout)  # 1-2
        except DeliveryError as exc:
            self._abort(f"a record of the transaction was not delivered: {exc}", exc)
        offsets = [TopicPartition(t, p, o) for (t, p), o in next_offsets(messages).items()]
        self._call(
            "send_offsets_to_transaction",
            raw.send_offsets_to_transaction,
            offsets,
            self._consumer.group_metadata(),
            self._timeout,
        )  # 3
        for attempt in range(self._retries + 1):  # 4
            try:
                self._watched("commit_transaction", raw.commit_transaction, self._timeout)
                return acked
            except confluent_kafka.KafkaException as exc:
                error = exc.args[0]
                if error.retriable() and attempt < self._retries:
                    log.warning("commit_transaction: %s; retrying", error)
                    time.sleep(0.2 * (attempt + 1))
                    continue
                self._classify("commit_transaction", exc)
        raise KafkaError("commit_transaction kept failing")  # pragma: no cover - the loop returns or raises

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return self._watched(what, fn, *args)
        except confluent_kafka.KafkaException as exc:
            self._classify(what, exc)

    def _watched(self, what: str, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` in a thread, waited for up to the timeout and a grace period (see the module docstring)."""
        outcome: list[Any] = []

        def call() -> None:
            try:
                outcome.append((True, fn(*args)))
            except BaseException as exc:  # handed to the caller's thread
                outcome.append((False, exc))

        thread = threading.Thread(target=call, name=f"kafka-{what}", daemon=True)
        thread.start()
        thread.join(self._timeout + self._grace)
        if not outcome:
            raise TransactionStuckError(
                f"{what} did not return within {self._timeout + self._grace:.0f} s (a librdkafka hang "
                "when the transaction or group coordinator's broker dies): exiting, so that a restarted worker "
                "fences this one and aborts its transaction"
            )
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    def _classify(self, what: str, exc: confluent_kafka.KafkaException) -> NoReturn:
        error = exc.args[0] if exc.args else None
        problem = denied(error, transactional_id=self._transactional_id)
        if problem is not None:
            if error is not None and error.txn_requires_abort():
                with contextlib.suppress(StreamScorerError, confluent_kafka.KafkaException):
                    self.abort()  # best effort: an open transaction holds read_committed readers back
            raise problem from exc
        if error is not None and error.txn_requires_abort():
            self._abort(f"{what}: {error}")
        raise KafkaError(
            f"{what} failed fatally (fenced by a newer worker, or the producer is unusable): {exc}"
        ) from exc

    def _abort(self, why: str, cause: BaseException | None = None) -> NoReturn:
        log.warning("aborting the batch's transaction: %s", why)
        self.abort()
        raise BatchAborted(why) from cause
