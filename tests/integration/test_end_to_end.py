"""The worker end to end on the real broker and Redis: every event scored once, exactly as offline."""

from __future__ import annotations

import math
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from examples.fraud.world import HIGH_RISK_MCC, World, sample_events
from stream_scorer.codec import confluent_frame, encode
from stream_scorer.features.freshness import FRESH, STATUS_NAMES
from stream_scorer.features.store import RedisFeatureStore
from stream_scorer.model import artifact
from stream_scorer.model.score import score_one
from tests.integration.conftest import (
    SINGLE_AND_CLUSTER,
    RunningWorker,
    Stack,
    Topics,
    committed_and_end,
    make_settings,
    produce,
    read_all,
    read_raw,
)
from tools.synth import io as synth_io

pytestmark = pytest.mark.integration

DOCUMENTED_METRICS = (
    "stream_scorer_events_consumed_total",
    "stream_scorer_predictions_produced_total",
    "stream_scorer_decode_errors_total",
    "stream_scorer_batch_size_events_bucket",
    "stream_scorer_stage_duration_seconds_bucket",
    "stream_scorer_event_to_prediction_seconds_bucket",
    "stream_scorer_feature_age_seconds_bucket",
    "stream_scorer_feature_group_lookups_total",
    "stream_scorer_predictions_imputed_total",
    "stream_scorer_commits_total",
    "stream_scorer_model_info",
    "stream_scorer_last_batch_timestamp_seconds",
    "stream_scorer_assigned_partitions",
)


def reference_event_features(record: dict) -> dict[str, float]:
    """Event features written out in plain Python, independently of the vectorized code."""
    angle = (record["event_time"] % 86_400_000) * 2 * math.pi / 86_400_000
    return {
        "amount_log": math.log1p(record["amount"]),
        "hour_sin": math.sin(angle),
        "hour_cos": math.cos(angle),
        "is_ecom": float(record["channel"] == "ECOM"),
        "is_atm": float(record["channel"] == "ATM"),
        "card_not_present": float(not record["card_present"]),
        "cross_border": float(record["country"] != record["card_country"]),
        "manual_entry": float(record["entry_mode"] == "MANUAL"),
        "high_risk_mcc": float(record["merchant_category_code"] in HIGH_RISK_MCC.tolist()),
    }


def seeded(world: World, store: RedisFeatureStore, settings) -> synth_io.SeedSummary:
    return synth_io.seed_features(
        world,
        store,
        settings.feature_groups,
        now_ms=int(time.time() * 1000),
        stale_fraction=0.1,
        missing_fraction=0.1,
        seed=8,
    )


@SINGLE_AND_CLUSTER
def test_every_event_is_scored_once_and_matches_offline_scoring(
    stack: Stack,
    topics: Topics,
    redis_prefix: str,
    store: RedisFeatureStore,
    world: World,
    model_path: Path,
    schemas,
) -> None:
    settings = make_settings(stack, topics, redis_prefix, model_path)
    seed = seeded(world, store, settings)
    n = 3000
    records, sampled = sample_events(
        world, n, start_ms=int(time.time() * 1000), rng=np.random.default_rng(4), spacing_ms=1.0
    )
    produce(stack.bootstrap, topics.input, [(r["card_id"].encode(), encode(schemas.events, r)) for r in records])

    worker = RunningWorker(settings)
    try:
        predictions = read_all(stack.bootstrap, topics.output, schemas.prediction, expect=n, timeout=90)
        time.sleep(0.5)  # let the last commit and metrics land
        metrics = urllib.request.urlopen(worker.metrics_url + "/metrics", timeout=10).read().decode()
    finally:
        worker.stop()

    # None lost, none duplicated, each keyed by its input key.
    by_id = {p["event_id"]: p for p in predictions}
    assert len(predictions) == n and set(by_id) == {r["event_id"] for r in records}
    model = artifact.load(model_path)
    entity_rows = {"card": sampled.card, "merchant": sampled.merchant, "device": sampled.device}
    flagged = {"STALE": 0, "MISSING": 0}
    for i, record in enumerate(records):
        prediction = by_id[record["event_id"]]
        assert prediction["_key"] == record["card_id"].encode()
        assert prediction["model_version"] == "it-1" and prediction["event_time"] == record["event_time"]
        # The freshness flags are exactly what was seeded into Redis.
        statuses = {item["group"]: item["status"] for item in prediction["feature_freshness"]}
        row: list[float] = []
        event = reference_event_features(record)
        for position, name in enumerate(model.feature_names):
            source, _, feature = name.partition(".")
            if source == "event":
                row.append(event[feature])
                continue
            group = settings.group(source)
            expected = STATUS_NAMES[seed.status[source][entity_rows[group.entity][i]]]
            assert statuses[source] == expected
            if expected == STATUS_NAMES[FRESH]:
                stored = world.group_values[source][entity_rows[group.entity][i], group.features.index(feature)]
                row.append(float(np.float32(stored)))  # Redis holds float32
            else:
                row.append(float(model.defaults[position]))
        for status in statuses.values():
            if status != "FRESH":
                flagged[status] += 1
        assert prediction["imputed"] == any(s != "FRESH" for s in statuses.values())
        assert prediction["score"] == pytest.approx(score_one(row, model), abs=1e-9)
        assert prediction["decision"] == (prediction["score"] >= model.threshold)
    assert flagged["STALE"] > 50 and flagged["MISSING"] > 50  # the test did exercise both

    committed, ends = committed_and_end(stack.bootstrap, settings.kafka.group_id, topics.input)
    assert committed == ends and sum(ends.values()) == n

    for name in DOCUMENTED_METRICS:
        assert name in metrics, name
    assert f"stream_scorer_events_consumed_total {float(n)}" in metrics
    assert f"stream_scorer_predictions_produced_total {float(n)}" in metrics
    assert 'stream_scorer_model_info{checksum="' + model.checksum in metrics


def test_confluent_framing_with_bad_messages_in_between(
    stack: Stack,
    topics: Topics,
    redis_prefix: str,
    store: RedisFeatureStore,
    world: World,
    model_path: Path,
    schemas,
) -> None:
    settings = make_settings(stack, topics, redis_prefix, model_path, input_format="confluent")
    seeded(world, store, settings)
    records, _ = sample_events(world, 400, start_ms=int(time.time() * 1000), rng=np.random.default_rng(9))
    items: list[tuple[bytes | None, bytes]] = []
    bad = {
        "bad_magic_byte": b"\x01\x00\x00\x00\x01garbage",
        "unknown_schema_id": confluent_frame(77, encode(schemas.events, records[0])),
        "malformed_avro": confluent_frame(1, b"\x02\x03"),
        "not_finite": confluent_frame(1, encode(schemas.events, {**records[1], "amount": float("nan")})),
        "missing_entity_id": confluent_frame(1, encode(schemas.events, {**records[2], "device_id": ""})),
    }
    for i, record in enumerate(records):
        items.append((record["card_id"].encode(), confluent_frame(1, encode(schemas.events, record))))
        if i % 80 == 0:
            items.extend((b"bad", value) for value in bad.values())
    produce(stack.bootstrap, topics.input, items)

    worker = RunningWorker(settings)
    try:
        predictions = read_all(stack.bootstrap, topics.output, schemas.prediction, expect=len(records), timeout=60)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            consumed = worker.registry.get_sample_value("stream_scorer_events_consumed_total") or 0
            if consumed >= len(items):
                break
            time.sleep(0.2)
    finally:
        worker.stop()

    assert sorted(p["event_id"] for p in predictions) == sorted(r["event_id"] for r in records)
    for reason in bad:
        assert worker.registry.get_sample_value("stream_scorer_decode_errors_total", {"reason": reason}) == 5, reason
        assert worker.registry.get_sample_value("stream_scorer_dead_letters_total", {"reason": reason}) == 5, reason
    # Every bad message is on the dead-letter topic: original bytes, key and location, and why.
    letters = read_raw(stack.bootstrap, topics.dead_letters, expect=25)
    assert len(letters) == 25
    by_class: dict[str, int] = {}
    for letter in letters:
        headers = {k: v.decode() for k, v in letter.headers()}
        by_class[headers["dlq.error.class"]] = by_class.get(headers["dlq.error.class"], 0) + 1
        assert letter.key() == b"bad" and letter.value() == bad[headers["dlq.error.class"]]
        assert headers["dlq.original.topic"] == topics.input and int(headers["dlq.original.offset"]) >= 0
        assert int(headers["dlq.original.timestamp"]) > 0
        if headers["dlq.error.class"] in ("unknown_schema_id", "malformed_avro", "not_finite"):
            assert headers["dlq.schema.id"] in ("77", "1")
    assert by_class == dict.fromkeys(bad, 5)
    committed, ends = committed_and_end(stack.bootstrap, settings.kafka.group_id, topics.input)
    assert committed == ends  # bad messages are skipped, never retried forever
