"""Finishing a batch: at-least-once commits after the flush; exactly-once classifies transaction errors."""

from __future__ import annotations

import threading
import time

import confluent_kafka
import pytest
from confluent_kafka import KafkaError as RdKafkaError
from confluent_kafka import KafkaException, TopicPartition

from stream_scorer.errors import AccessDeniedError, BatchAborted, DeliveryError, KafkaError, TransactionStuckError
from stream_scorer.kafka.consumer import BatchConsumer
from stream_scorer.kafka.delivery import AtLeastOnce, ExactlyOnce
from stream_scorer.kafka.producer import CheckedProducer, Ticket
from tests.support import FakeMessage


class FakeRawProducer:
    """The transactional calls of confluent_kafka.Producer, scripted to fail on demand."""

    def __init__(self, fail: dict[str, list[RdKafkaError]] | None = None, undelivered: int = 0) -> None:
        self.fail = fail or {}
        self.calls: list[str] = []
        self.queued: list[tuple[str, bytes, object]] = []
        self.undelivered = undelivered

    def _maybe_fail(self, name: str) -> None:
        self.calls.append(name)
        if self.fail.get(name):
            raise KafkaException(self.fail[name].pop(0))

    def init_transactions(self, timeout: float) -> None:
        self._maybe_fail("init_transactions")

    def begin_transaction(self) -> None:
        self._maybe_fail("begin_transaction")

    def send_offsets_to_transaction(self, offsets, metadata, timeout: float) -> None:
        self.offsets = {(tp.topic, tp.partition): tp.offset for tp in offsets}
        self._maybe_fail("send_offsets_to_transaction")

    def commit_transaction(self, timeout: float) -> None:
        self._maybe_fail("commit_transaction")

    def abort_transaction(self, timeout: float) -> None:
        self._maybe_fail("abort_transaction")

    def produce(self, topic, value, key, on_delivery, headers=None) -> None:
        if self.fail.get("produce"):
            raise KafkaException(self.fail["produce"].pop(0))
        self.queued.append((topic, value, on_delivery))

    def poll(self, timeout: float) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.queued)

    def flush(self, timeout: float) -> int:
        for i, (topic, _, on_delivery) in enumerate(self.queued):
            failed = i < self.undelivered
            error = RdKafkaError(RdKafkaError._MSG_TIMED_OUT) if failed else None
            on_delivery(error, FakeMessage(b"", topic_name=topic))
        self.queued.clear()
        return 0


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[list[int]] = []
        self.rewinds = 0

    def commit(self, messages, asynchronous: bool = False) -> None:
        self.commits.append([m.offset() for m in messages])
        self.asynchronous = asynchronous

    def group_metadata(self) -> object:
        return object()

    def rewind_to_committed(self) -> None:
        self.rewinds += 1


MESSAGES = [
    FakeMessage(b"v", partition_id=0, offset_value=4),
    FakeMessage(b"v", partition_id=1, offset_value=9),
    FakeMessage(b"v", partition_id=0, offset_value=5),
]


def error(code: int, **flags: bool) -> RdKafkaError:
    return RdKafkaError(code, "scripted", **flags)


def test_at_least_once_commits_after_a_clean_flush_only() -> None:
    consumer = FakeConsumer()
    ok = AtLeastOnce(CheckedProducer(FakeRawProducer()), consumer, 1.0)
    ok.produce("out", [b"k"], [b"v"])
    assert ok.complete(MESSAGES) == 1 and consumer.commits == [[4, 9, 5]]
    failing = AtLeastOnce(CheckedProducer(FakeRawProducer(undelivered=1)), consumer, 1.0)
    failing.produce("out", [b"k", b"k"], [b"v", b"v"])
    with pytest.raises(DeliveryError):
        failing.complete(MESSAGES)
    assert consumer.commits == [[4, 9, 5]]  # nothing more


def test_at_least_once_commits_flushed_windows_synchronously_and_delivered_batches_without_waiting() -> None:
    consumer = FakeConsumer()
    delivery = AtLeastOnce(CheckedProducer(FakeRawProducer()), consumer, 1.0)
    delivery.complete(MESSAGES)
    assert consumer.asynchronous is False
    delivery.commit_delivered(MESSAGES)
    assert consumer.asynchronous is True and consumer.commits == [[4, 9, 5]] * 2


def test_an_asynchronous_commit_keeps_offsets_until_confirmed_and_raises_a_refusal_at_the_next() -> None:
    consumer = BatchConsumer({"bootstrap.servers": "127.0.0.1:9", "group.id": "g"}, ["t"])
    consumer._to_commit = {("t", 0): 6, ("t", 1): 10}
    consumer._on_commit(None, [TopicPartition("t", 0, 6), TopicPartition("t", 1, 9)])  # t[1]: an older commit
    assert consumer.uncommitted == {("t", 1): 10}
    for error in (RdKafkaError.REBALANCE_IN_PROGRESS, RdKafkaError.REQUEST_TIMED_OUT):
        consumer._on_commit(RdKafkaError(error), [TopicPartition("t", 1, 10)])
        assert consumer.uncommitted == {("t", 1): 10}  # kept: sent again at the next commit, or on the revoke
    consumer._on_commit(None, [TopicPartition("t", 1, 10)])  # a later commit of it went through
    assert consumer.uncommitted == {}
    consumer.commit([], asynchronous=True)  # nothing raised: those failures mended themselves
    consumer._on_commit(RdKafkaError(RdKafkaError.GROUP_AUTHORIZATION_FAILED), [TopicPartition("t", 1, 11)])
    with pytest.raises(AccessDeniedError, match="not authorized for consumer group g"):
        consumer.commit(MESSAGES, asynchronous=True)
    assert consumer.uncommitted == {}  # the commit that raised took nothing in
    consumer.close()


def test_exactly_once_sends_offsets_plus_one_inside_the_transaction() -> None:
    raw = FakeRawProducer()
    delivery = ExactlyOnce(CheckedProducer(raw), FakeConsumer(), 1.0)
    delivery.begin()
    delivery.produce("out", [b"k"], [b"v"])
    delivery.complete(MESSAGES)
    assert raw.calls == ["init_transactions", "begin_transaction", "send_offsets_to_transaction", "commit_transaction"]
    assert raw.offsets == {("transactions", 0): 6, ("transactions", 1): 10}


def test_exactly_once_retries_a_retriable_commit() -> None:
    raw = FakeRawProducer({"commit_transaction": [error(RdKafkaError.REQUEST_TIMED_OUT, retriable=True)]})
    delivery = ExactlyOnce(CheckedProducer(raw), FakeConsumer(), 1.0)
    delivery.begin()
    delivery.complete(MESSAGES)
    assert raw.calls.count("commit_transaction") == 2 and "abort_transaction" not in raw.calls


def test_exactly_once_aborts_and_rewinds_on_an_abortable_error() -> None:
    raw = FakeRawProducer({"commit_transaction": [error(RdKafkaError._STATE, txn_requires_abort=True)]})
    consumer = FakeConsumer()
    delivery = ExactlyOnce(CheckedProducer(raw), consumer, 1.0)
    delivery.begin()
    with pytest.raises(BatchAborted):
        delivery.complete(MESSAGES)
    assert raw.calls[-1] == "abort_transaction" and consumer.rewinds == 1


def test_exactly_once_aborts_when_a_record_is_not_delivered() -> None:
    raw = FakeRawProducer(undelivered=1)
    consumer = FakeConsumer()
    delivery = ExactlyOnce(CheckedProducer(raw), consumer, 1.0)
    delivery.begin()
    delivery.produce("out", [b"k"], [b"v"])
    with pytest.raises(BatchAborted):
        delivery.complete(MESSAGES)
    assert "send_offsets_to_transaction" not in raw.calls and consumer.rewinds == 1


def test_exactly_once_fenced_or_fatal_errors_stop_the_worker() -> None:
    raw = FakeRawProducer({"send_offsets_to_transaction": [error(RdKafkaError._FENCED, fatal=True)]})
    consumer = FakeConsumer()
    delivery = ExactlyOnce(CheckedProducer(raw), consumer, 1.0)
    delivery.begin()
    with pytest.raises(KafkaError, match="fatally") as raised:
        delivery.complete(MESSAGES)
    assert not isinstance(raised.value, BatchAborted) and consumer.rewinds == 0
    assert isinstance(raised.value.__cause__, confluent_kafka.KafkaException)


def test_exactly_once_aborts_when_the_transaction_refuses_records() -> None:
    raw = FakeRawProducer({"produce": [error(RdKafkaError._STATE)]})
    consumer = FakeConsumer()
    delivery = ExactlyOnce(CheckedProducer(raw), consumer, 1.0)
    delivery.begin()
    with pytest.raises(BatchAborted):
        delivery.produce("out", [b"k"], [b"v"])
    assert raw.calls[-1] == "abort_transaction" and consumer.rewinds == 1


def test_after_an_abort_the_next_window_does_not_inherit_failure_reports() -> None:
    raw = FakeRawProducer(undelivered=1)
    delivery = ExactlyOnce(CheckedProducer(raw), FakeConsumer(), 1.0)
    delivery.begin()
    delivery.produce("out", [b"k"], [b"v"])
    with pytest.raises(BatchAborted):
        delivery.complete(MESSAGES)
    raw.undelivered = 0
    delivery.begin()
    delivery.produce("out", [b"k"], [b"v"])
    assert delivery.complete(MESSAGES) == 1


def test_a_fatal_error_reported_by_librdkafka_makes_the_delivery_error_fatal() -> None:
    producer = CheckedProducer(FakeRawProducer(undelivered=1))
    producer.produce("out", [b"k"], [b"v"])
    with pytest.raises(DeliveryError) as transient:
        producer.flush(1.0)
    assert not transient.value.fatal and transient.value.topics == frozenset({"out"})
    producer.on_error(RdKafkaError(RdKafkaError._ALL_BROKERS_DOWN))  # transient: retried
    producer.on_error(RdKafkaError(RdKafkaError._FENCED, fatal=True))
    producer.produce("out", [b"k"], [b"v"])
    with pytest.raises(DeliveryError) as fatal:
        producer.flush(1.0)
    assert fatal.value.fatal


def test_a_transactional_call_that_hangs_past_its_timeout_raises_transaction_stuck() -> None:
    raw = FakeRawProducer()
    released = threading.Event()
    raw.send_offsets_to_transaction = lambda *_: released.wait(30)  # type: ignore[method-assign]  # librdkafka#5511
    delivery = ExactlyOnce(CheckedProducer(raw), FakeConsumer(), 0.2, watchdog_grace_seconds=0.3)
    delivery.begin()
    started = time.monotonic()
    with pytest.raises(TransactionStuckError, match="send_offsets_to_transaction did not return within 0 s"):
        delivery.complete(MESSAGES)
    assert time.monotonic() - started < 5 and "commit_transaction" not in raw.calls
    released.set()


def test_a_ticket_is_delivered_once_nothing_is_outstanding_and_none_of_its_records_failed() -> None:
    raw = FakeRawProducer(undelivered=1)
    producer = CheckedProducer(raw)
    first, second = Ticket(), Ticket()
    producer.produce("predictions", [None, None], [b"a", b"b"], ticket=first)
    producer.produce("predictions", [None], [b"c"], ticket=second)
    producer.serve()
    assert not first.delivered and not second.delivered  # still queued
    with pytest.raises(DeliveryError):
        producer.flush(1.0)  # the first record failed: the flush says so, and so does its ticket
    assert (first.failed, first.delivered) == (1, False) and (second.failed, second.delivered) == (0, True)
    third, raw.undelivered = Ticket(), 0
    producer.produce("predictions", [None], [b"d"], ticket=third)
    raw.flush(0)  # reported, as librdkafka's threads would, but not served yet
    assert not third.delivered
    producer.serve()
    assert third.delivered
    raw.fail["produce"] = [RdKafkaError(RdKafkaError._TRANSPORT)]
    fourth = Ticket()
    with pytest.raises(KafkaError):
        producer.produce("predictions", [None, None], [b"d", b"e"], ticket=fourth)
    assert not fourth.delivered  # never queued: never delivered


def test_a_produce_refused_for_a_missing_write_right_is_access_denied() -> None:
    raw = FakeRawProducer({"produce": [RdKafkaError(RdKafkaError.TOPIC_AUTHORIZATION_FAILED)]})
    with pytest.raises(AccessDeniedError, match="not authorized to write to topic predictions"):
        CheckedProducer(raw).produce("predictions", [None], [b"a"], ticket=Ticket())


class BatchingRawProducer(FakeRawProducer):
    """A raw producer with produce_batch whose queue holds ``room`` records until polled."""

    def __init__(self, room: int, error: RdKafkaError | None = None) -> None:
        super().__init__()
        self.room, self.error, self.polls = room, error, 0

    def produce_batch(self, topic, messages, on_delivery=None) -> int:
        queued = 0
        for m in messages:
            if self.error is not None or self.room == 0:
                m["_error"] = self.error or RdKafkaError(RdKafkaError._QUEUE_FULL)
                continue
            self.room -= 1
            queued += 1
            self.queued.append((topic, m["value"], on_delivery))
        return queued

    def poll(self, timeout: float) -> int:
        self.polls += 1
        self.room = 2
        return 0


def test_records_without_headers_go_in_one_batch_call_and_a_full_queue_queues_the_rest_in_order() -> None:
    raw = BatchingRawProducer(room=3)
    producer, ticket = CheckedProducer(raw), Ticket()
    values = [b"%d" % i for i in range(7)]
    producer.produce("predictions", [None] * 7, values, ticket=ticket)
    assert [v for _, v, _ in raw.queued] == values and not ticket.delivered
    assert producer.flush(1.0) == 7 and ticket.delivered


def test_a_batch_call_refused_for_a_missing_right_is_access_denied_and_the_ticket_stops_waiting() -> None:
    raw = BatchingRawProducer(room=10, error=RdKafkaError(RdKafkaError.TOPIC_AUTHORIZATION_FAILED))
    ticket = Ticket()
    with pytest.raises(AccessDeniedError):
        CheckedProducer(raw).produce("predictions", [None, None], [b"a", b"b"], ticket=ticket)
    assert ticket.failed == 1 and not ticket.delivered
