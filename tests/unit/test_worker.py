"""The run loop with fakes: commit only after delivery, bad input skipped and counted, metrics recorded."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from examples.fraud.world import FEATURE_GROUPS as DEFAULT_FEATURE_GROUPS
from examples.fraud.world import FEATURE_NAMES
from stream_scorer.codec import decode, encode
from stream_scorer.config import FeatureGroup
from stream_scorer.errors import BatchAborted, DeliveryError, FeatureStoreError, InvalidInputRateError
from stream_scorer.features.breaker import CircuitBreakerLookup
from stream_scorer.features.layout import GroupValues, pack, unpack_many
from stream_scorer.kafka.producer import Ticket
from stream_scorer.monitoring.metrics import ScorerMetrics
from stream_scorer.pipeline.emit import PredictionEncoder
from stream_scorer.worker import BatchBounds, ModelServing, Topics, Worker
from stream_scorer.worker.guard import InvalidInputGuard
from tests.support import FRAUD_SCHEMAS, FakeMessage, fraud_decoder, fraud_scorer, small_model, transaction

SCHEMAS = FRAUD_SCHEMAS
NOW = 1_700_000_100_000


class FakeSource:
    def __init__(self, batches: list[list[FakeMessage]]) -> None:
        self.batches = batches

    def subscribe(self, listener) -> None:
        self.listener = listener

    def poll_batch(self, max_events: int, timeout: float) -> list[FakeMessage]:
        return self.batches.pop(0) if self.batches else []


class FakeSink:
    """A Delivery that records what was produced and which offsets were committed (flushed windows only)."""

    pipelined = False

    def __init__(self, fail: bool | int = False) -> None:
        self.fail = fail  # True: every complete fails; a number: that many fail, then all succeed
        self.produced: list[tuple[bytes | None, bytes]] = []
        self.dead: list[tuple[bytes | None, bytes, dict[str, bytes]]] = []
        self.committed: list[list[int]] = []
        self.pending = 0
        self.begun = 0
        self.aborts = 0
        self.flushes = 0

    def begin(self) -> None:
        self.begun += 1

    def serve(self) -> None:
        pass

    def produce(self, topic, keys, values, headers=None, ticket=None) -> None:
        if topic == "predictions":
            self.produced.extend(zip(keys, values, strict=True))
        else:
            assert topic == "dead-letters"
            self.dead.extend((k, v, dict(h)) for k, v, h in zip(keys, values, headers, strict=True))
        self.pending += len(values)

    def abort(self) -> None:
        self.aborts += 1
        self.pending = 0

    def flush(self) -> None:
        self.flushes += 1
        self._maybe_fail()

    def _maybe_fail(self) -> None:
        if self.fail is True or (self.fail is not False and self.fail > 0):
            if self.fail is not True:
                self.fail -= 1
            self.pending = 0
            raise DeliveryError("1 records were not delivered", topics=frozenset({"dead-letters"}))

    def complete(self, messages: Sequence[FakeMessage]) -> int:
        self._maybe_fail()
        acked, self.pending = self.pending, 0
        self.committed.append([m.offset() for m in messages])
        return acked


class PipelinedSink(FakeSink):
    """A pipelined Delivery whose records are acknowledged when the test says (:meth:`ack`)."""

    pipelined = True

    def __init__(self, fail: bool | int = False) -> None:
        super().__init__(fail)
        self.tickets: list[Ticket] = []
        self.settled_epoch = 0
        self._epoch = 0

    def produce(self, topic, keys, values, headers=None, ticket=None) -> None:
        super().produce(topic, keys, values, headers)
        self._epoch += 1
        ticket.producer, ticket.epoch = self, self._epoch
        self.tickets.append(ticket)

    def ack(self, index: int, failed: int = 0) -> None:
        """Every record up to those of the index-th produce call was reported; ``failed`` of that one failed."""
        self.settled_epoch = max(self.settled_epoch, self.tickets[index].epoch)
        self.tickets[index].failed += failed

    def commit_delivered(self, messages: Sequence[FakeMessage]) -> None:
        self.committed.append([m.offset() for m in messages])


class FakeLookup:
    """Every entity has fresh features equal to 1.0, except card-0 whose groups are missing."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls = 0

    def fetch(
        self, groups: Sequence[FeatureGroup], ids_by_entity: Mapping[str, Sequence[str]]
    ) -> dict[str, GroupValues]:
        self.calls += 1
        if self.fail:
            raise FeatureStoreError("redis: TimeoutError")
        out = {}
        for g in groups:
            blobs = [
                None if e == "card-0" else pack([1.0] * len(g.features), NOW - 1000, g.version)
                for e in ids_by_entity[g.entity]
            ]
            out[g.name] = unpack_many(blobs, len(g.features), g.version)
        return out


def make_worker(
    source,
    sink,
    lookup=None,
    registry=None,
    guard=None,
    commit_interval=0.0,
    models=None,
    backoff=0.01,
    decoder=None,
    max_uncommitted=8,
):
    registry = registry or CollectorRegistry()
    scorer = fraud_scorer(small_model(FEATURE_NAMES), DEFAULT_FEATURE_GROUPS, lookup or FakeLookup())
    worker = Worker(
        source=source,
        delivery=sink,
        decoder=decoder or fraud_decoder(input_format="avro"),
        serving=ModelServing(scorer, PredictionEncoder(SCHEMAS.prediction, scorer.model)),
        metrics=ScorerMetrics(registry),
        bounds=BatchBounds(
            max_events=100,
            max_wait_seconds=0.01,
            commit_interval_seconds=commit_interval,
            retry_backoff_seconds=backoff,
            max_retry_backoff_seconds=4 * backoff,
            max_uncommitted_batches=max_uncommitted,
        ),
        topics=Topics(predictions="predictions", dead_letters="dead-letters"),
        guard=guard or InvalidInputGuard(max_consecutive=1000, max_ratio=1.0, window=1000),
        models=models,
        clock_ms=lambda: NOW,
    )
    return worker, registry


def messages(records, start_offset=0, bad_at=()):
    out = []
    for i, r in enumerate(records):
        value = b"\x07garbage" if i in bad_at else encode(SCHEMAS.events, r)
        out.append(FakeMessage(value, key_bytes=r["card_id"].encode(), offset_value=start_offset + i))
    return out


def test_each_batch_is_produced_then_committed() -> None:
    source = FakeSource([messages([transaction(i) for i in range(10)]), messages([transaction(10)], 10)])
    sink = FakeSink()
    worker, registry = make_worker(source, sink)
    assert source.listener is worker  # the worker subscribed itself: it commits before any revoke
    assert worker.step() == 10 and worker.step() == 1 and worker.step() == 0
    assert sink.committed == [list(range(10)), [10]]
    predictions = [decode(SCHEMAS.prediction, v) for _, v in sink.produced]
    assert [p["event_id"] for p in predictions] == [f"evt-{i:06d}" for i in range(11)]
    assert [k for k, _ in sink.produced][:2] == [b"card-0", b"card-1"]  # keyed by the input key
    assert registry.get_sample_value("stream_scorer_predictions_produced_total") == 11
    assert registry.get_sample_value("stream_scorer_events_consumed_total") == 11
    assert registry.get_sample_value("stream_scorer_commits_total") == 2


def test_missing_groups_are_flagged_in_the_prediction_and_counted() -> None:
    source = FakeSource([messages([transaction(0), transaction(1)])])  # card-0 has no features
    sink = FakeSink()
    worker, registry = make_worker(source, sink)
    worker.step()
    first, second = (decode(SCHEMAS.prediction, v) for _, v in sink.produced)
    card_groups = {g.name for g in DEFAULT_FEATURE_GROUPS if g.entity == "card"}
    assert first["imputed"] is True and second["imputed"] is False
    for item in first["feature_freshness"]:
        assert item["status"] == ("MISSING" if item["group"] in card_groups else "FRESH")
        assert (item["age_ms"] is None) == (item["group"] in card_groups)
    assert all(i["status"] == "FRESH" and i["age_ms"] == 1000 for i in second["feature_freshness"])
    assert (
        registry.get_sample_value(
            "stream_scorer_feature_group_lookups_total", {"group": "card_velocity", "status": "missing"}
        )
        == 1
    )
    assert registry.get_sample_value("stream_scorer_predictions_imputed_total") == 1
    assert registry.get_sample_value("stream_scorer_feature_age_seconds_count", {"group": "merchant_risk"}) == 2


def test_nothing_is_committed_when_a_delivery_fails() -> None:
    source = FakeSource([messages([transaction(i) for i in range(3)])])
    sink = FakeSink(fail=True)
    worker, registry = make_worker(source, sink)
    with pytest.raises(DeliveryError):
        worker.step()
    assert sink.committed == []
    assert registry.get_sample_value("stream_scorer_commits_total") == 0


def test_an_undelivered_batch_is_rewound_and_retried_with_a_growing_backoff_and_readiness_false() -> None:
    import threading

    stop = threading.Event()
    batch = messages([transaction(i) for i in range(3)], bad_at=(1,))  # two events and one dead letter
    source = FakeSource([batch] * 5)  # each rewind makes the consumer return the batch again
    sink = FakeSink(fail=4)
    worker, registry = make_worker(source, sink, backoff=0.01)
    seen: list[tuple[str | None, float | None]] = []
    original = worker._back_off

    def observing(exc, stop_event):
        original(exc, stop_event)
        seen.append((worker.retrying, registry.get_sample_value("stream_scorer_batch_retry_backoff_seconds")))

    worker._back_off = observing
    source_poll = source.poll_batch

    def poll(max_events, timeout):
        got = source_poll(max_events, timeout)
        if not got and sink.committed:
            stop.set()
        return got

    source.poll_batch = poll
    worker.run(stop)
    assert sink.aborts == 4 and sink.committed == [[0, 1, 2]]  # never skipped: committed once delivered
    # While retrying, the dead letter is flushed before the predictions: the refused attempts produce none.
    assert sink.flushes == 4 and len(sink.produced) == 2 + 2 and len(sink.dead) == 5
    for name in ("stream_scorer_decode_errors_total", "stream_scorer_dead_letters_total"):  # once, not per attempt
        assert registry.get_sample_value(name, {"reason": "malformed_avro"}) == 1
    assert [delay for _, delay in seen] == [0.01, 0.02, 0.04, 0.04]  # doubling, capped
    assert all(why is not None and "read again" in why for why, _ in seen)
    assert worker.retrying is None and registry.get_sample_value("stream_scorer_batch_retry_backoff_seconds") == 0
    assert registry.get_sample_value("stream_scorer_delivery_failures_total", {"output": "dead_letters"}) == 4


def test_a_fatal_delivery_error_stops_the_loop() -> None:
    import threading

    class FatalSink(FakeSink):
        def complete(self, messages):
            raise DeliveryError("producer fenced", fatal=True)

    worker, _ = make_worker(FakeSource([messages([transaction(0)])]), FatalSink())
    with pytest.raises(DeliveryError, match="fenced"):
        worker.run(threading.Event())


def test_nothing_is_committed_when_the_feature_store_fails() -> None:
    source = FakeSource([messages([transaction(i) for i in range(3)])])
    sink = FakeSink()
    worker, _ = make_worker(source, sink, FakeLookup(fail=True))
    with pytest.raises(FeatureStoreError):
        worker.step()
    assert sink.committed == [] and sink.produced == []


def test_invalid_messages_are_skipped_counted_and_committed() -> None:
    records = [transaction(i) for i in range(6)]
    records[4] = transaction(4, amount=float("nan"))
    source = FakeSource([messages(records, bad_at=(1, 3))])
    sink = FakeSink()
    worker, registry = make_worker(source, sink)
    worker.step()
    assert [decode(SCHEMAS.prediction, v)["event_id"] for _, v in sink.produced] == [
        "evt-000000",
        "evt-000002",
        "evt-000005",
    ]
    assert sink.committed == [[0, 1, 2, 3, 4, 5]]
    assert registry.get_sample_value("stream_scorer_decode_errors_total", {"reason": "malformed_avro"}) == 2
    assert registry.get_sample_value("stream_scorer_decode_errors_total", {"reason": "not_finite"}) == 1


def test_a_batch_of_only_bad_messages_is_committed_without_scoring() -> None:
    lookup = FakeLookup()
    source = FakeSource([messages([transaction(0), transaction(1)], bad_at=(0, 1))])
    sink = FakeSink()
    worker, _ = make_worker(source, sink, lookup)
    worker.step()
    assert sink.produced == [] and lookup.calls == 0 and sink.committed == [[0, 1]]


def test_one_feature_lookup_per_batch_and_scores_are_probabilities() -> None:
    lookup = FakeLookup()
    source = FakeSource([messages([transaction(i) for i in range(50)])])
    sink = FakeSink()
    worker, registry = make_worker(source, sink, lookup)
    worker.step()
    assert lookup.calls == 1
    decoded = [decode(SCHEMAS.prediction, v) for _, v in sink.produced]
    scores = np.array([p["score"] for p in decoded])
    assert np.all((scores >= 0) & (scores <= 1))
    for p in decoded:  # three reason codes each, largest contribution first, named by the model's features
        contributions = [r["contribution"] for r in p["reasons"]]
        assert len(contributions) == 3 and contributions == sorted(contributions, reverse=True)
        assert all(r["feature"] in FEATURE_NAMES for r in p["reasons"])
    for stage in ("poll", "decode", "enrich", "vectorize", "score", "encode", "produce", "commit"):
        assert registry.get_sample_value("stream_scorer_stage_duration_seconds_count", {"stage": stage}) == 1


def test_run_stops_when_asked() -> None:
    import threading

    stop = threading.Event()
    source = FakeSource([messages([transaction(0)])])

    class StoppingSink(FakeSink):
        def complete(self, messages: Sequence[FakeMessage]) -> int:
            stop.set()  # a stop request arrives mid-batch: the batch still finishes and commits
            return super().complete(messages)

    sink = StoppingSink()
    worker, _ = make_worker(source, sink)
    worker.run(stop)
    assert sink.committed == [[0]]


def test_invalid_messages_go_to_the_dead_letter_topic_in_the_same_batch() -> None:
    records = [transaction(i) for i in range(4)]
    records[2] = transaction(2, merchant_id="")
    source = FakeSource([messages(records, bad_at=(0,))])
    sink = FakeSink()
    worker, registry = make_worker(source, sink)
    worker.step()
    assert [(k, headers["dlq.error.class"], headers["dlq.original.offset"]) for k, _, headers in sink.dead] == [
        (b"card-0", b"malformed_avro", b"0"),
        (b"card-2", b"missing_entity_id", b"2"),
    ]
    assert sink.dead[0][1] == b"\x07garbage"  # the original bytes
    assert sink.committed == [[0, 1, 2, 3]] and sink.begun == 1
    assert registry.get_sample_value("stream_scorer_dead_letters_total", {"reason": "missing_entity_id"}) == 1


def test_too_much_invalid_input_stops_before_anything_is_produced_or_committed() -> None:
    source = FakeSource([messages([transaction(i) for i in range(10)], bad_at=range(1, 10))])
    sink = FakeSink()
    guard = InvalidInputGuard(max_consecutive=5, max_ratio=1.0, window=100)
    worker, registry = make_worker(source, sink, guard=guard)
    with pytest.raises(InvalidInputRateError):
        worker.step()
    assert sink.committed == [] and sink.produced == [] and sink.dead == []
    assert registry.get_sample_value("stream_scorer_invalid_input_stops_total") == 1


def test_with_the_breaker_a_redis_outage_degrades_instead_of_stopping() -> None:
    registry = CollectorRegistry()
    metrics_errors: list[int] = []
    lookup = CircuitBreakerLookup(
        FakeLookup(fail=True), failures=1, reset_seconds=60, on_error=lambda: metrics_errors.append(1)
    )
    source = FakeSource([messages([transaction(i) for i in range(3)])])
    sink = FakeSink()
    worker, registry = make_worker(source, sink, lookup=lookup, registry=registry)
    worker.step()
    predictions = [decode(SCHEMAS.prediction, v) for _, v in sink.produced]
    assert len(predictions) == 3 and sink.committed == [[0, 1, 2]]
    for p in predictions:
        assert p["imputed"] and {i["status"] for i in p["feature_freshness"]} == {"UNAVAILABLE"}
    assert (
        registry.get_sample_value(
            "stream_scorer_feature_group_lookups_total", {"group": "card_velocity", "status": "unavailable"}
        )
        == 3
    )
    assert len(metrics_errors) == 2  # one call and one retry


def test_an_aborted_exactly_once_batch_is_counted_and_the_loop_goes_on() -> None:
    import threading

    stop = threading.Event()

    class AbortOnceSink(FakeSink):
        aborted = False

        def complete(self, messages):
            if not self.aborted:
                self.aborted = True
                raise BatchAborted("commit_transaction: abortable")
            stop.set()
            return super().complete(messages)

    batch = messages([transaction(0)])
    source = FakeSource([batch, batch])  # the rewind makes the consumer return the batch again
    sink = AbortOnceSink()
    worker, registry = make_worker(source, sink)
    worker.run(stop)
    assert sink.committed == [[0]] and registry.get_sample_value("stream_scorer_batches_aborted_total") == 1


def test_a_commit_interval_commits_several_batches_at_once_and_everything_on_finish() -> None:
    source = FakeSource([messages([transaction(0)]), messages([transaction(1)], 1), messages([transaction(2)], 2)])
    sink = FakeSink()
    worker, registry = make_worker(source, sink, commit_interval=3600)
    worker.step()
    worker.step()
    assert sink.committed == [] and sink.begun == 1 and len(sink.produced) == 2
    assert registry.get_sample_value("stream_scorer_predictions_produced_total") == 0  # not durable yet
    worker.commit_window()
    assert sink.committed == [[0, 1]] and registry.get_sample_value("stream_scorer_predictions_produced_total") == 2
    worker.step()
    worker.commit_window()
    worker.commit_window()  # nothing pending: no empty commit
    assert sink.committed == [[0, 1], [2]] and sink.begun == 2


def test_an_idle_source_still_finishes_a_window_once_the_interval_has_passed() -> None:
    source = FakeSource([messages([transaction(0)])])
    sink = FakeSink()
    worker, _ = make_worker(source, sink, commit_interval=0.05)
    worker.step()
    worker.step()  # nothing polled, interval not yet passed
    assert sink.committed == []
    time.sleep(0.06)
    assert worker.step() == 0
    assert sink.committed == [[0]]


def test_a_failure_abandons_the_window_instead_of_committing_it_later() -> None:
    records = [transaction(i) for i in range(3)]
    source = FakeSource([messages(records[:2]), messages(records[2:], 2)])
    sink = FakeSink()
    lookup = FakeLookup()
    worker, _ = make_worker(source, sink, lookup=lookup, commit_interval=3600)
    worker.step()
    lookup.fail = True  # the second batch fails after the first was produced but not committed
    with pytest.raises(FeatureStoreError):
        worker.step()
    assert sink.aborts == 1
    worker.commit_window()  # e.g. at close: nothing is left to commit
    assert sink.committed == []


def test_a_rewound_window_does_not_count_its_invalid_messages_twice() -> None:
    guard = InvalidInputGuard(max_consecutive=5, max_ratio=1.0, window=100)
    bad = messages([transaction(i) for i in range(4)], bad_at=range(4))

    class AbortOnce(FakeSink):
        aborted = False

        def complete(self, batch):
            if not self.aborted:
                self.aborted = True
                raise BatchAborted("abortable")
            return super().complete(batch)

    sink = AbortOnce()
    worker, _ = make_worker(FakeSource([bad, bad]), sink, guard=guard)
    with pytest.raises(BatchAborted):
        worker.step()
    worker.step()  # the same four invalid messages, read again: 4 in a row, not 8
    assert guard.consecutive == 4 and sink.committed == [[0, 1, 2, 3]]


def test_a_rebalance_clears_the_retrying_state_and_an_aborted_delivery_counts_as_one() -> None:
    import threading

    worker, registry = make_worker(FakeSource([]), FakeSink())
    try:  # exactly-once: a record that was not delivered aborts the transaction
        raise BatchAborted("a record of the transaction was not delivered") from DeliveryError(
            "refused", topics=frozenset({"dead-letters"})
        )
    except BatchAborted as exc:
        worker._back_off(exc, threading.Event())
    assert registry.get_sample_value("stream_scorer_delivery_failures_total", {"output": "dead_letters"}) == 1
    assert registry.get_sample_value("stream_scorer_batches_aborted_total") == 1
    assert worker.retrying is not None and worker.retrying.startswith("batch not delivered, read again in 0.01 s")
    worker.before_revoke()  # the partitions move: their new owner retries the batch
    assert worker.retrying is None and registry.get_sample_value("stream_scorer_batch_retry_backoff_seconds") == 0


def test_a_batch_waits_for_the_schema_registry_rewound_to_its_own_offsets_and_nothing_is_dead_lettered() -> None:
    import json as json_module
    import threading

    from stream_scorer.codec import confluent_frame
    from stream_scorer.errors import SchemaRegistryError
    from tests.support import FRAUD_SETTINGS_FILE

    writer = json_module.loads((FRAUD_SETTINGS_FILE.parent / "transaction.avsc").read_text())
    writer["fields"].append({"name": "tier", "type": "string", "default": "none"})

    class Registry:
        calls = 0

        def schema(self, schema_id: int) -> str | None:
            Registry.calls += 1
            if Registry.calls == 1:
                raise SchemaRegistryError("registry down")
            return json_module.dumps(writer)

    class RewindingSource(FakeSource):
        def __init__(self, batches: list[list[FakeMessage]]) -> None:
            super().__init__(batches)
            self.rewound: list[list[int]] = []

        def poll_batch(self, max_events: int, timeout: float) -> list[FakeMessage]:
            self.last = super().poll_batch(max_events, timeout)
            return self.last

        def rewind_to(self, polled) -> None:
            self.rewound.append([m.offset() for m in polled])
            self.batches.insert(0, self.last)

    import fastavro

    parsed = fastavro.parse_schema(writer)
    values = [confluent_frame(42, encode(parsed, {**transaction(i), "tier": "gold"})) for i in range(3)]
    source = RewindingSource([[FakeMessage(v, offset_value=10 + i) for i, v in enumerate(values)]])
    sink = FakeSink()
    worker, registry = make_worker(source, sink)
    worker._decoder = fraud_decoder(input_format="confluent", registry=Registry())
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 10
    while not sink.committed and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(10)
    assert source.rewound == [[10, 11, 12]]  # read again from its own first offset
    assert sink.committed == [[10, 11, 12]] and sink.dead == [] and len(sink.produced) == 3
    assert registry.get_sample_value("stream_scorer_schema_registry_errors_total") == 1
    assert worker.retrying is None


def test_pipelined_each_batch_is_committed_in_order_once_its_records_are_acknowledged() -> None:
    batches = [messages([transaction(i)], i) for i in range(4)]
    source = FakeSource(batches)
    sink = PipelinedSink()
    worker, _ = make_worker(source, sink)
    assert worker.step() == 1 and sink.committed == []  # batch 0 is on its way: the loop goes on
    assert worker.step() == 1 and sink.committed == []
    sink.ack(0)
    assert worker.step() == 1 and sink.committed == [[0]]  # batch 1 is still on its way
    sink.ack(2)  # everything up to batch 2 was reported
    assert worker.step() == 1
    assert sink.committed == [[0], [1, 2]]  # both, in one commit, and no flush so far
    assert sink.flushes == 0 and len(worker._window) == 1
    sink.ack(3)
    assert worker.step() == 0  # idle: the rest is flushed and committed
    assert sink.committed == [[0], [1, 2], [3]]


def test_pipelined_a_failed_record_rewinds_the_window_and_nothing_after_it_is_committed() -> None:
    source = FakeSource([messages([transaction(0)], 0), messages([transaction(1)], 1), messages([transaction(2)], 2)])
    sink = PipelinedSink(fail=1)
    worker, _ = make_worker(source, sink)
    worker.step()
    worker.step()
    sink.ack(0, failed=1)
    sink.ack(1)
    with pytest.raises(DeliveryError):
        worker.step()  # the flush reports the failure: the window is dropped and rewound
    assert sink.committed == [] and sink.aborts == 1 and worker._window == []


def test_pipelined_a_full_window_is_flushed() -> None:
    source = FakeSource([messages([transaction(i)], i) for i in range(3)])
    sink = PipelinedSink()
    worker, _ = make_worker(source, sink, max_uncommitted=2)
    worker.step()
    assert sink.committed == []
    worker.step()  # two batches wait for their records: flush and commit both
    assert sink.committed == [[0, 1]]
