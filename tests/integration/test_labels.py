"""Late labels on the real stack: the join in Redis, live quality metrics equal to scikit-learn on the same
joined pairs, label lag, the join's edge cases, a restart mid-stream, and PSI under a distribution shift."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import confluent_kafka
import numpy as np
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import brier_score_loss, precision_score, recall_score

from examples.fraud import world as fraud_world
from examples.fraud.world import World
from stream_scorer.config import DriftSettings, LabelSettings, Settings
from stream_scorer.features.store import RedisFeatureStore
from stream_scorer.labels.join import Label, LabelJoiner
from stream_scorer.labels.pending import RedisPendingStore, models_header, pack_many
from stream_scorer.model import artifact
from tests.integration.conftest import (
    SINGLE_AND_CLUSTER,
    RunningLabels,
    RunningWorker,
    Stack,
    Topics,
    committed_and_end,
    make_settings,
    read_all,
    wait_for,
)
from tests.support import FRAUD_CONTRACT
from tools.synth import io as synth_io

pytestmark = pytest.mark.integration

COUNT_WINDOW = "100000"


def label_settings(stack: Stack, topics: Topics, prefix: str, model_path: Path, **labels: object) -> Settings:
    settings = make_settings(stack, topics, prefix, model_path)
    options = {
        "windows": (COUNT_WINDOW, "1h"),
        "hold_seconds": 5.0,
        "retry_seconds": 0.2,
        "bucket_seconds": 1.0,
        "horizon_seconds": 60.0,
        "max_events": 500,
    } | labels
    return dataclasses.replace(settings, labels=LabelSettings(**options))  # type: ignore[arg-type]


def publish(stack: Stack, settings: Settings, world: World, schemas, n: int, delay: float, **options) -> dict:
    producer = confluent_kafka.Producer({"bootstrap.servers": stack.bootstrap, "linger.ms": 5})
    return synth_io.publish(
        fraud_world,
        world,
        producer,
        schemas,
        FRAUD_CONTRACT,
        events_topic=settings.kafka.input_topic,
        labels_topic=settings.kafka.labels_topic,
        count=n,
        label_delay_seconds=delay,
        **options,
    )


@SINGLE_AND_CLUSTER
def test_live_metrics_equal_sklearn_on_the_joined_pairs_and_lag_matches_the_delay(
    stack: Stack, topics: Topics, redis_prefix: str, store: RedisFeatureStore, world: World, model_path: Path, schemas
) -> None:
    settings = label_settings(stack, topics, redis_prefix, model_path)
    synth_io.seed_features(world, store, settings.feature_groups, now_ms=int(time.time() * 1000))
    n, delay = 3000, 2.0
    worker, labels = RunningWorker(settings), RunningLabels(settings)
    try:
        sent = publish(stack, settings, world, schemas, n, delay, rate=3000.0, seed=11)
        wait_for(lambda: labels.value("stream_scorer_labels_joined_total") >= n, 60, f"{n} labels joined")
        predictions = read_all(stack.bootstrap, topics.output, schemas.prediction, expect=n)
        received = read_all(stack.bootstrap, topics.labels, schemas.label, expect=n)
        time.sleep(0.5)
    finally:
        labels.stop()
        worker.stop()

    assert len(sent["event_ids"]) == n and len(predictions) == n and len(received) == n
    model = artifact.load(model_path)
    score = {p["event_id"]: p["score"] for p in predictions}
    truth = {r["event_id"]: r["label"] for r in received}
    ids = sorted(truth)
    y = np.array([truth[i] for i in ids])
    p = np.array([score[i] for i in ids])
    decided = p >= model.threshold
    key = {"model": model.name, "version": model.version, "window": COUNT_WINDOW}
    exported = {
        m: labels.registry.get_sample_value(f"stream_scorer_model_{m}", key)
        for m in ("precision", "recall", "brier", "log_loss", "ece", "positive_rate", "window_labels", "auc")
    }
    assert exported["window_labels"] == n
    assert exported["precision"] == pytest.approx(precision_score(y, decided), abs=1e-9)
    assert exported["recall"] == pytest.approx(recall_score(y, decided), abs=1e-9)
    assert exported["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-9)
    clipped = np.clip(p, 1e-15, 1 - 1e-15)
    log_loss = -np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))
    assert exported["log_loss"] == pytest.approx(log_loss, abs=1e-9)
    bins = np.minimum((p * 10).astype(int), 9)
    ece = sum(abs(p[bins == b].mean() - y[bins == b].mean()) * np.sum(bins == b) / n for b in set(bins.tolist()))
    assert exported["ece"] == pytest.approx(ece, abs=1e-9)
    assert exported["positive_rate"] == pytest.approx(y.mean(), abs=1e-12)
    from sklearn.metrics import roc_auc_score

    bound = labels.registry.get_sample_value("stream_scorer_model_auc_error_bound", key)
    assert abs(exported["auc"] - roc_auc_score(y, p)) <= bound + 1e-12 and bound < 0.01
    # Label lag: labels were published `delay` seconds after their events (in 0.2 s steps).
    lag_sum = labels.value("stream_scorer_label_lag_seconds_sum", reference="event_time")
    lag_count = labels.value("stream_scorer_label_lag_seconds_count", reference="event_time")
    assert lag_count == n and delay <= lag_sum / lag_count <= delay + 0.5
    assert labels.value("stream_scorer_labels_duplicate_total") == 0
    assert labels.value("stream_scorer_labels_unknown_total") == 0


@SINGLE_AND_CLUSTER
def test_join_edge_cases_on_redis(stack: Stack, redis_prefix: str) -> None:
    client = stack.redis()
    clock = [1_000_000]
    store = RedisPendingStore(client, redis_prefix, horizon_seconds=60, bucket_seconds=1, hash_tags=stack.hash_tags)
    joiner = LabelJoiner(store, horizon_seconds=60, hold_seconds=5, clock_ms=lambda: clock[0])
    header = models_header([("fraud", "1"), ("challenger", "2")])

    def predict(*event_ids: str) -> None:
        n = len(event_ids)
        scores = np.column_stack([np.full(n, 0.8), np.full(n, 0.3)])
        records = pack_many(header, np.full(n, clock[0] - 500), clock[0], scores, scores >= 0.5)
        store.write(event_ids, records, clock[0])

    try:
        # The label comes before its prediction: held, then joined once the prediction is written.
        early = joiner.join([Label("a", 1, clock[0])])
        assert early.held == 1 and not early.joined and joiner.held_count() == 1
        predict("a", "b")
        retried = joiner.retry_held()
        assert [pair.label.event_id for pair in retried.joined] == ["a"] and joiner.held_count() == 0
        assert retried.joined[0].prediction.models == (("fraud", "1"), ("challenger", "2"))
        # A duplicate label is counted once; a contradicting one replaces it (last one wins).
        first = joiner.join([Label("b", 0, clock[0]), Label("b", 0, clock[0])])
        assert len(first.joined) == 1 and first.duplicates == 1
        again = joiner.join([Label("b", 0, clock[0])])
        assert again.duplicates == 1 and not again.joined
        flipped = joiner.join([Label("b", 1, clock[0])])
        assert flipped.contradicting == 1 and flipped.joined[0].replaced == 0
        # A label for an unknown event: held, then counted as unknown after the hold time, no crash.
        assert joiner.join([Label("nobody", 1, clock[0])]).held == 1
        assert joiner.retry_held().unknown == 0
        clock[0] += 6000
        assert joiner.retry_held().unknown == 1 and joiner.held_count() == 0
        # Coverage: "a" and "b" were predicted in one bucket and both got a label.
        clock[0] += 60_000
        coverage, support = joiner.coverage(clock[0], lookback_seconds=120)
        assert (coverage, support) == (1.0, 2)
    finally:
        for key in list(client.scan_iter(match=f"{redis_prefix}:*")):
            client.delete(key)
        client.close()


@SINGLE_AND_CLUSTER
def test_join_races_redeliveries_and_odd_records_on_redis(stack: Stack, redis_prefix: str) -> None:
    client = stack.redis()
    clock = [1_000_000]
    store = RedisPendingStore(client, redis_prefix, horizon_seconds=60, bucket_seconds=1, hash_tags=stack.hash_tags)

    def joiner() -> LabelJoiner:  # each one stands for a separate label process
        return LabelJoiner(store, horizon_seconds=60, hold_seconds=5, clock_ms=lambda: clock[0])

    header = models_header([("fraud", "1")])

    def predict(*event_ids: str) -> None:
        n = len(event_ids)
        records = pack_many(header, np.full(n, clock[0] - 500), clock[0], np.full((n, 1), 0.7), np.ones((n, 1), bool))
        store.write(event_ids, records, clock[0])

    try:
        a, b = joiner(), joiner()
        # A held label and a newer one for the same event: the newer label time wins, whatever the order.
        assert a.join([Label("x", 1, 100, "labels/0/1")]).held == 1
        predict("x")
        newer = b.join([Label("x", 0, 200, "labels/0/2")])
        assert [(p.label.label, p.replaced) for p in newer.joined] == [(1, None), (0, 1)]
        assert a.retry_held().joined == [] and a.held_count() == 0  # the held copy was claimed once
        stale = a.join([Label("x", 1, 150, "labels/0/3")])
        assert stale.contradicting == 1 and not stale.joined  # older than the label that won: ignored
        # The same message read again (its batch's commit failed): joined again, not a duplicate, and the
        # coverage counter is not counted twice.
        predict("y")
        first = a.join([Label("y", 1, 300, "labels/0/7")])
        again = b.join([Label("y", 1, 300, "labels/0/7")])
        assert len(first.joined) == 1 and again.joined[0].redelivered and again.duplicates == 0
        # An event scored twice (its batch re-read by the worker) is kept as first written and counted once.
        predict("z")
        clock[0] += 1000
        predict("z")
        a.join([Label("z", 1, 400, "labels/0/9")])
        clock[0] += 120_000
        coverage, support = a.coverage(clock[0], lookback_seconds=180)
        assert (coverage, support) == (1.0, 3)  # x, y, z: each predicted once, each labelled once
        # An unreadable pending record is counted, never a crash.
        client.set(store.key("pending", "broken"), b"\x01\x05\x03ab")
        assert a.join([Label("broken", 1, 500, "labels/0/10")]).unreadable == 1
        # Labels for unknown events ahead of a ready one do not starve it: the retry pages through the held set.
        for i in range(6):
            a.join([Label(f"unknown-{i}", 1, 600, f"labels/0/{20 + i}")])
        clock[0] += 1
        a.join([Label("late", 1, 700, "labels/0/30")])
        predict("late")
        joined = [p.label.event_id for _ in range(4) for p in a.retry_held(limit=3).joined]
        assert joined == ["late"]
    finally:
        for key in list(client.scan_iter(match=f"{redis_prefix}:*")):
            client.delete(key)
        client.close()


def test_the_join_is_correct_after_a_restart_mid_stream(
    stack: Stack,
    topics: Topics,
    topic_factory,
    redis_prefix: str,
    store: RedisFeatureStore,
    world: World,
    model_path: Path,
    schemas,
) -> None:
    settings = label_settings(stack, topics, redis_prefix, model_path)
    labels_topic = topic_factory("labels3", 3)  # three partitions: two label processes share them
    settings = dataclasses.replace(settings, kafka=dataclasses.replace(settings.kafka, labels_topic=labels_topic))
    synth_io.seed_features(world, store, settings.feature_groups, now_ms=int(time.time() * 1000))
    n = 4000
    worker, labels = RunningWorker(settings), RunningLabels(settings)
    flows = [labels]
    try:
        publish(stack, settings, world, schemas, n // 2, 0.5, rate=2000.0, seed=12)
        wait_for(lambda: labels.value("stream_scorer_labels_joined_total") >= n // 4, 60, "a quarter of the labels")
        # Mid-stream, both the scoring worker and the label flow stop; events and labels keep coming.
        labels.stop()
        worker.stop()
        assert labels.value("stream_scorer_labels_joined_total") < n
        publisher = threading.Thread(
            target=publish, args=(stack, settings, world, schemas, n // 2, 0.5), kwargs={"rate": 2000.0, "seed": 13}
        )
        publisher.start()
        time.sleep(0.5)
        # A new worker, and two label processes in one group: the join state is in Redis, not in any of them.
        worker = RunningWorker(settings)
        flows += [RunningLabels(settings), RunningLabels(settings)]
        publisher.join(60)

        def joined() -> float:
            return sum(flow.value("stream_scorer_labels_joined_total") for flow in flows)

        wait_for(lambda: joined() >= n, 90, "every label joined across the restart")
        time.sleep(1.0)
    finally:
        for flow in flows[1:]:
            flow.stop()
        worker.stop()
    assert joined() == n  # each label joined exactly once, across three label processes
    assert sum(flow.value("stream_scorer_labels_unknown_total") for flow in flows) == 0
    group = settings.labels.group_id or f"{settings.kafka.group_id}-labels"
    committed, ends = committed_and_end(stack.bootstrap, group, labels_topic)
    assert committed == ends and sum(ends.values()) == n


def test_no_feature_drifts_on_unshifted_data_and_both_kinds_of_shift_cross_the_threshold(
    stack: Stack, topics: Topics, redis_prefix: str, store: RedisFeatureStore, world: World, model_path: Path, schemas
) -> None:
    """Unshifted events stamped with the current time: every feature, the time of day too, under the alert
    threshold. Amounts times 3: the amount drifts. Events stamped 8 hours early: the time of day drifts."""
    settings = dataclasses.replace(
        label_settings(stack, topics, redis_prefix, model_path),
        drift=DriftSettings(windows=("4s",), bucket_seconds=1.0),
    )
    synth_io.seed_features(world, store, settings.feature_groups, now_ms=int(time.time() * 1000))
    worker = RunningWorker(settings)

    def psi() -> dict[str, float]:
        families = text_string_to_metric_families(generate_latest(worker.registry).decode())
        return {
            s.labels.get("feature", "score"): s.value
            for f in families
            if f.name in ("stream_scorer_feature_psi", "stream_scorer_prediction_psi")
            for s in f.samples
        }

    def scored(n: int) -> None:
        wait_for(lambda: worker.registry.get_sample_value("stream_scorer_predictions_produced_total") == n, 30, str(n))

    try:
        publish(stack, settings, world, schemas, 3000, 0.0, rate=1500.0, seed=21)
        scored(3000)
        unshifted = psi()
        time.sleep(4.5)  # the window forgets the unshifted events
        publish(stack, settings, world, schemas, 3000, 0.0, rate=1500.0, seed=22, shift_after=0, shift_factor=3.0)
        scored(6000)
        amounts = psi()
        time.sleep(4.5)
        publish(stack, settings, world, schemas, 3000, 0.0, rate=1500.0, seed=23, clock_offset_seconds=8 * 3600.0)
        scored(9000)
        clock = psi()
        # Consumer lag per partition, from librdkafka's statistics (every 5 s); the input is drained by now.
        wait_for(
            lambda: (
                worker.registry.get_sample_value(
                    "stream_scorer_consumer_lag", {"topic": settings.kafka.input_topic, "partition": "0"}
                )
                == 0
            ),
            15,
            "the consumer lag of partition 0 from the statistics callback",
        )
    finally:
        worker.stop()
    assert {"event.hour_sin", "event.hour_cos", "event.amount_log", "score"} <= set(unshifted)
    assert max(unshifted.values()) < 0.25, unshifted  # the alert threshold (deploy/prometheus/alerts.yml)
    assert unshifted["event.amount_log"] < 0.1 and unshifted["score"] < 0.1
    assert unshifted["event.hour_sin"] < 0.1 and unshifted["event.hour_cos"] < 0.1
    assert amounts["event.amount_log"] > 0.25
    assert amounts["merchant_risk.fraud_rate_30d"] < 0.1  # a feature the shift does not touch
    assert clock["event.hour_sin"] > 0.25 or clock["event.hour_cos"] > 0.25
    assert clock["event.amount_log"] < 0.1
