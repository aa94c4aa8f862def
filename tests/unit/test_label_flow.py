"""The label flow with fakes: bad labels to the dead-letter topic, a Redis failure rewinds, metrics observed."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry

from stream_scorer.codec import encode
from stream_scorer.errors import LabelStoreError
from stream_scorer.labels.join import JoinedPair, JoinOutcome, Label
from stream_scorer.labels.pending import PendingPrediction
from stream_scorer.monitoring.label_metrics import LabelMetrics
from stream_scorer.worker.label_flow import LabelFlow
from tests.support import FakeMessage
from tests.unit.test_worker import SCHEMAS, FakeSink, FakeSource


class FakeJoiner:
    def __init__(self, fail_first: bool = False) -> None:
        self.fail_first = fail_first
        self.batches: list[list[Label]] = []

    def join(self, labels: list[Label]) -> JoinOutcome:
        if self.fail_first:
            self.fail_first = False
            raise LabelStoreError("redis: TimeoutError")
        self.batches.append(labels)
        prediction = PendingPrediction(1_000, 1_500, (("fraud", "3"),), (0.9,), (True,))
        return JoinOutcome(joined=[JoinedPair(label, prediction) for label in labels])

    def retry_held(self) -> JoinOutcome:
        return JoinOutcome()

    def held_count(self) -> int:
        return 0

    def coverage(self, now_ms: int, lookback_seconds: float) -> tuple[float, int]:
        return float("nan"), 0


class Quality:
    def __init__(self) -> None:
        self.seen: list[tuple] = []

    def observe(self, *args) -> None:
        self.seen.append(args)


def label_messages() -> list[FakeMessage]:
    good = encode(SCHEMAS.label, {"event_id": "e1", "label": 1, "label_time": 4_000})
    bad_value = encode(SCHEMAS.label, {"event_id": "e2", "label": 7, "label_time": 4_000})
    return [
        FakeMessage(good, b"e1", topic_name="labels", offset_value=0),
        FakeMessage(b"\x07garbage", b"x", topic_name="labels", offset_value=1),
        FakeMessage(bad_value, b"e2", topic_name="labels", offset_value=2),
    ]


def make_flow(joiner: FakeJoiner, source: FakeSource, sink: FakeSink) -> tuple[LabelFlow, LabelMetrics, Quality]:
    metrics, quality = LabelMetrics(CollectorRegistry()), Quality()
    flow = LabelFlow(
        source=source,
        delivery=sink,
        schema=SCHEMAS.label,
        joiner=joiner,  # type: ignore[arg-type]
        quality=quality,
        metrics=metrics,
        dead_letter_topic="dead-letters",
        max_events=100,
        max_wait_seconds=0.01,
        retry_seconds=1.0,
        coverage_lookback_seconds=60.0,
        clock=lambda: 10.0,
    )
    return flow, metrics, quality


def test_bad_labels_go_to_the_dead_letter_topic_and_good_ones_are_observed() -> None:
    sink = FakeSink()
    source = FakeSource([label_messages()])
    flow, metrics, quality = make_flow(FakeJoiner(), source, sink)
    assert source.listener is flow  # the label flow subscribed itself
    assert flow.step() == 3
    assert sink.committed == [[0, 1, 2]]
    assert sorted(h["dlq.error.class"] for _, _, h in sink.dead) == [b"invalid_label", b"malformed_avro"]
    assert quality.seen == [("e1", "fraud", "3", 0.9, True, 1, 10.0)]
    registry = metrics.registry
    assert registry.get_sample_value("stream_scorer_labels_joined_total") == 1
    assert registry.get_sample_value("stream_scorer_label_lag_seconds_sum", {"reference": "event_time"}) == 3.0
    assert registry.get_sample_value("stream_scorer_label_lag_seconds_sum", {"reference": "scored_at"}) == 2.5


def test_a_redis_failure_commits_nothing_and_reads_the_batch_again() -> None:
    sink = FakeSink()
    joiner = FakeJoiner(fail_first=True)
    source = FakeSource([label_messages()[:1], label_messages()[:1]])  # the second poll is the re-read
    flow, metrics, _ = make_flow(joiner, source, sink)
    stop = threading.Event()
    calls = {"n": 0}
    real_step = flow.step

    seen: list[str | None] = []

    def step() -> int:
        calls["n"] += 1
        seen.append(flow.retrying)
        if calls["n"] >= 3:
            stop.set()
        return real_step()

    flow.step = step  # type: ignore[method-assign]
    flow.run(stop)
    assert seen[0] is None and seen[1] is not None and "read again" in seen[1]  # not ready while retrying
    assert flow.retrying is None  # ready again once the re-read batch was committed
    assert sink.aborts == 1 and sink.committed == [[0]]
    assert metrics.registry.get_sample_value("stream_scorer_labels_store_errors_total") == 1
    assert [[label.event_id for label in batch] for batch in joiner.batches] == [["e1"]]
