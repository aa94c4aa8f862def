"""The output side: produce records, then flush and check that every one was acknowledged."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import confluent_kafka

from stream_scorer.config.settings import MESSAGE_TIMEOUT_MS
from stream_scorer.errors import AccessDeniedError, DeliveryError, KafkaError
from stream_scorer.kafka.access import denied

log = logging.getLogger(__name__)


def producer_config(bootstrap_servers: str, extra: Mapping[str, str]) -> dict[str, Any]:
    """librdkafka settings: idempotent, acks from all in-sync replicas, small linger, lz4, failures reported.

    ``message.timeout.ms`` bounds how long a record may wait for the broker (a broker restart fits in it).
    """
    return {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "delivery.report.only.error": True,  # successes are known by flush() or serve(), not one call each
        "compression.type": "lz4",
        "message.timeout.ms": MESSAGE_TIMEOUT_MS,
        **extra,
    }


class Ticket:
    """Whether one batch's records were all acknowledged, without a flush.

    librdkafka reports only failed deliveries (``delivery.report.only.error``: a Python call per record
    cost a tenth of a worker's time); so a batch is known delivered once none of its records failed and the
    producer, polled after they were queued, had nothing left outstanding (:meth:`CheckedProducer.serve`).
    """

    __slots__ = ("epoch", "failed", "producer")

    def __init__(self) -> None:
        self.epoch = 0  # the producer's produce call that queued the last of the records
        self.failed = 0
        self.producer: Any = None  # the CheckedProducer that sends them

    @property
    def delivered(self) -> bool:
        """Every record was acknowledged."""
        return self.failed == 0 and self.producer is not None and self.epoch <= self.producer.settled_epoch

    def report(self, error: Any, message: Any) -> None:
        """librdkafka's delivery report of one record (of a failed one only, in production)."""
        if error is not None:
            self.failed += 1
        self.producer._on_delivery(error, message)


class CheckedProducer:
    """Produces records and counts delivery failures; :meth:`flush` raises if any record was lost."""

    def __init__(self, producer: confluent_kafka.Producer) -> None:
        self.raw = producer
        self.fatal_error: str | None = None  # set by :meth:`on_error` once librdkafka reports a fatal error
        self._failed = 0
        self._first_error: str | None = None
        self._failed_topics: set[str] = set()
        self._fatal = False
        self._acked = 0
        self._denied: AccessDeniedError | None = None  # the first failure was a missing right
        self._epoch = 0  # produce calls so far
        self.settled_epoch = 0  # every record of the produce calls up to this one was reported

    def produce(
        self,
        topic: str,
        keys: Sequence[bytes | None],
        values: Sequence[bytes | None],
        headers: Sequence[list[tuple[str, bytes]]] | None = None,
        ticket: Ticket | None = None,
    ) -> None:
        """Queue one record per (key, value); waits for room when librdkafka's queue is full. Each record's
        delivery report is counted in ``ticket`` too."""
        produce, on_delivery = self.raw.produce, self._on_delivery
        self._epoch += 1
        if ticket is not None:
            ticket.producer, ticket.epoch, on_delivery = self, self._epoch, ticket.report
        if headers is None and hasattr(self.raw, "produce_batch"):
            self._produce_batch(topic, keys, values, on_delivery, ticket)
        else:
            for i, (key, value) in enumerate(zip(keys, values, strict=True)):
                header: Any = None if headers is None else headers[i]
                while True:
                    try:
                        produce(topic, value, key, on_delivery=on_delivery, headers=header)
                        break
                    except BufferError:
                        self.raw.poll(0.05)
                    except confluent_kafka.KafkaException as exc:
                        self._refused(topic, exc.args[0] if exc.args else exc, len(values) - i, ticket, exc)
        self.raw.poll(0)

    def _produce_batch(
        self,
        topic: str,
        keys: Sequence[bytes | None],
        values: Sequence[bytes | None],
        on_delivery: Any,
        ticket: Ticket | None,
    ) -> None:
        """Records without headers in one librdkafka call (``produce_batch``, a third of a ``produce`` per
        record). A full queue refuses the rest of the list, queued again, in order, after a poll."""
        pending: list[dict[str, Any]] = [{"value": v, "key": k} for k, v in zip(keys, values, strict=True)]
        while pending:
            self.raw.produce_batch(topic, pending, on_delivery=on_delivery)
            refused = [m for m in pending if "_error" in m]
            if refused and refused[0]["_error"].code() != confluent_kafka.KafkaError._QUEUE_FULL:
                self._refused(topic, refused[0]["_error"], len(refused), ticket, None)
            for m in refused:
                del m["_error"]
            pending = refused
            if pending:
                self.raw.poll(0.05)

    def _refused(self, topic: str, error: Any, unqueued: int, ticket: Ticket | None, cause: Exception | None) -> None:
        """Raise for records librdkafka refused to queue (never reported: the ticket stops waiting for them)."""
        if ticket is not None:
            ticket.failed += 1
        problem = denied(error, topic=topic, using="write")
        if problem is not None:  # librdkafka refuses at once a topic it was told we may not write
            raise problem from cause
        raise KafkaError(f"produce to {topic} failed: {error}") from cause

    def serve(self) -> None:
        """Serve the delivery reports that arrived, without waiting; with nothing outstanding, every record
        queued so far is settled (its tickets are delivered unless one of their records failed)."""
        self.raw.poll(0)
        if len(self.raw) == 0:
            self.settled_epoch = self._epoch

    def flush(self, timeout: float) -> int:
        """Wait for every queued record. Returns how many were reported acknowledged since the last flush
        (none where only failures are reported).

        Raises :class:`DeliveryError` if any record failed or is still queued after ``timeout``.
        """
        remaining = self.raw.flush(timeout)
        if not remaining:
            self.settled_epoch = self._epoch
        failed, first_error, acked, topics = self._failed, self._first_error, self._acked, self._failed_topics
        fatal = self._fatal or self.fatal_error is not None
        problem = self._denied
        self.reset()
        if problem is not None:
            raise problem  # a topic this principal may not write: retrying cannot help
        if remaining:
            raise DeliveryError(f"{remaining} records still unacknowledged after {timeout} s")
        if failed:
            raise DeliveryError(
                f"{failed} records were not delivered; first error: {first_error}",
                topics=frozenset(topics),
                fatal=fatal,
            )
        return acked

    def reset(self) -> None:
        """Forget the delivery counts so far (after an aborted transaction)."""
        self.raw.poll(0)
        self._failed, self._first_error, self._acked, self._failed_topics, self._fatal = 0, None, 0, set(), False
        self._denied = None

    @classmethod
    def connect(cls, settings: Mapping[str, Any]) -> CheckedProducer:
        """A producer with these librdkafka settings, told of librdkafka's fatal errors (``error_cb``):
        delivery reports do not say an error was fatal, so this is how :meth:`flush` knows."""
        holder: list[CheckedProducer] = []
        raw = confluent_kafka.Producer({**settings, "error_cb": lambda error: holder[0].on_error(error)})
        holder.append(cls(raw))
        return holder[0]

    def on_error(self, error: Any) -> None:
        """librdkafka's error callback: remember a fatal error (the others are transient and retried)."""
        if error.fatal():
            self.fatal_error = str(error)
        log.warning("kafka producer: %s", error)

    def _on_delivery(self, error: Any, message: Any) -> None:
        if error is None:
            self._acked += 1
            return
        self._failed += 1
        self._failed_topics.add(message.topic())
        self._fatal = self._fatal or bool(error.fatal()) or error.code() == confluent_kafka.KafkaError._FATAL
        if self._first_error is None:
            self._first_error = f"{message.topic()}: {error}"
            self._denied = denied(error, topic=message.topic(), using="write")
