"""Poison pills on the real stack: no single message, whatever its size or bytes, can stop a partition.

Each input message yields exactly one prediction or exactly one dead letter, and the worker keeps going.
"""

from __future__ import annotations

import dataclasses
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import confluent_kafka
import numpy as np
import pytest
import redis
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from examples.fraud.world import World, sample_events
from stream_scorer.codec import encode
from stream_scorer.config import BatchSettings
from stream_scorer.errors import ConfigError
from stream_scorer.features.layout import pack
from stream_scorer.features.store import RedisFeatureStore
from tests.integration.conftest import (
    RunningWorker,
    Stack,
    Topics,
    committed_and_end,
    make_settings,
    read_all,
    read_raw,
    read_to_end,
    wait_for,
)
from tools.synth import io as synth_io

pytestmark = pytest.mark.integration

BROKER_MAX = 1_048_588  # the broker's default message.max.bytes (a record batch, overhead included)


def produce_large(bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes | None]]) -> None:
    """Produce as a Java client with its defaults may: values up to the broker's limit, no compression."""
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 5, "message.max.bytes": BROKER_MAX, "compression.type": "none"}
    )
    errors: list[Any] = []
    for key, value in items:
        producer.produce(topic, value, key, on_delivery=lambda err, _m: err and errors.append(err))
        producer.poll(0)
    assert producer.flush(60) == 0 and not errors, errors


def readiness(worker: RunningWorker) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(worker.metrics_url + "/readyz", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def set_max_message_bytes(stack: Stack, topic: str, limit: int) -> None:
    admin = AdminClient({"bootstrap.servers": stack.bootstrap})
    entry = ConfigEntry("max.message.bytes", str(limit), incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


def all_committed(stack: Stack, group: str, topic: str) -> bool:
    committed, ends = committed_and_end(stack.bootstrap, group, topic)
    return committed == ends


def test_a_message_of_any_size_up_to_the_broker_limit_yields_one_dead_letter(
    stack: Stack, topics: Topics, redis_prefix: str, store: RedisFeatureStore, world: World, model_path: Path, schemas
) -> None:
    settings = make_settings(stack, topics, redis_prefix, model_path)
    synth_io.seed_features(world, store, settings.feature_groups, now_ms=int(time.time() * 1000))
    records, _ = sample_events(world, 300, start_ms=int(time.time() * 1000), rng=np.random.default_rng(4))
    rng = np.random.default_rng(5)
    poison: dict[str, bytes | None] = {
        "tombstone": None,
        "empty": b"",
        "fits": rng.bytes(990_000),
        "at-the-edge": rng.bytes(999_700),
        "over-the-producer-limit": rng.bytes(999_900),
        "near-the-broker-limit": rng.bytes(1_040_000),
    }
    items: list[tuple[bytes | None, bytes | None]] = []
    for i, record in enumerate(records):
        items.append((record["card_id"].encode(), encode(schemas.events, record)))
        if i % 60 == 0:
            items.extend((name.encode(), value) for name, value in poison.items())
    produce_large(stack.bootstrap, topics.input, items)
    n_poison = len(items) - len(records)

    worker = RunningWorker(settings)
    try:
        predictions = read_all(stack.bootstrap, topics.output, schemas.prediction, expect=len(records), timeout=90)
        letters = read_raw(stack.bootstrap, topics.dead_letters, expect=n_poison, timeout=60)
        wait_for(lambda: all_committed(stack, settings.kafka.group_id, topics.input), 60, "every offset committed")
        assert worker.error is None and readiness(worker)[0] == 200
    finally:
        worker.stop()

    assert sorted(p["event_id"] for p in predictions) == sorted(r["event_id"] for r in records)
    assert len(letters) == n_poison  # one dead letter per poison message, none twice
    for letter in letters:
        name = letter.key().decode()
        original = poison[name]
        headers = {k: v.decode() for k, v in letter.headers()}
        assert headers["dlq.original.topic"] == topics.input and int(headers["dlq.original.offset"]) >= 0
        if original is None:
            assert letter.value() is None and headers["dlq.error.class"] == "empty_value"  # null stays null
        elif len(original) <= 990_000 or "dlq.value_truncated" not in headers:
            assert letter.value() == original and len(original) < 1_000_000
        else:
            assert headers["dlq.value_truncated"] == "true" and headers["dlq.original_size"] == str(len(original))
            assert original.startswith(letter.value()) and len(letter.value()) < 1_000_000
        if original:
            assert headers["dlq.error.class"] == "oversized"


def test_a_dead_letter_the_broker_refuses_is_retried_with_readiness_false_until_it_is_accepted(
    stack: Stack, topics: Topics, redis_prefix: str, store: RedisFeatureStore, world: World, model_path: Path, schemas
) -> None:
    batch = BatchSettings(max_events=500, max_wait_seconds=0.05, retry_backoff_seconds=0.2, max_retry_backoff_seconds=1)
    settings = dataclasses.replace(make_settings(stack, topics, redis_prefix, model_path), batch=batch)
    synth_io.seed_features(world, store, settings.feature_groups, now_ms=int(time.time() * 1000))
    records, _ = sample_events(world, 100, start_ms=int(time.time() * 1000), rng=np.random.default_rng(6))

    def set_dead_letter_limit(limit: int) -> None:
        set_max_message_bytes(stack, topics.dead_letters, limit)

    worker = RunningWorker(settings)  # reads the dead-letter topic's limit (the broker default) at start
    try:
        set_dead_letter_limit(2000)  # now the broker refuses the dead letter below: the worker must not skip it
        bad = b"\x02x" + np.random.default_rng(7).bytes(5000)  # malformed, incompressible: over the topic limit
        items = [(r["card_id"].encode(), encode(schemas.events, r)) for r in records[:50]]
        items += [(b"bad", bad)] + [(r["card_id"].encode(), encode(schemas.events, r)) for r in records[50:]]
        produce_large(stack.bootstrap, topics.input, items)

        failures = ("stream_scorer_delivery_failures_total", {"output": "dead_letters"})
        wait_for(lambda: (worker.registry.get_sample_value(*failures) or 0) >= 2, 60, "two refused deliveries")
        status, why = readiness(worker)
        assert status == 503 and "read again" in why
        committed, ends = committed_and_end(stack.bootstrap, settings.kafka.group_id, topics.input)
        assert committed != ends  # the batch with the refused dead letter is not committed
        set_dead_letter_limit(BROKER_MAX)  # fixed by an operator: the next retry goes through
        wait_for(lambda: readiness(worker)[0] == 200, 60, "readiness back once the batch was delivered")
        wait_for(lambda: all_committed(stack, settings.kafka.group_id, topics.input), 60, "every offset committed")
        # Everything, read once all is committed: a count of records could be reached by the retried batch's
        # duplicates before the last predictions arrive.
        predictions = read_to_end(stack.bootstrap, topics.output, schemas.prediction)
        assert worker.error is None
    finally:
        worker.stop()
    letters = read_raw(stack.bootstrap, topics.dead_letters, expect=2, timeout=10)
    assert [(m.key(), m.value()) for m in letters] == [(b"bad", bad)]  # exactly one, whole
    assert {p["event_id"] for p in predictions} == {r["event_id"] for r in records}  # at-least-once: maybe twice
    assert worker.registry.get_sample_value("stream_scorer_batch_retry_backoff_seconds") == 0


def test_absurd_and_future_feature_records_are_served_as_missing_and_counted(
    stack: Stack, topics: Topics, redis_prefix: str, store: RedisFeatureStore, world: World, model_path: Path, schemas
) -> None:
    settings = make_settings(stack, topics, redis_prefix, model_path)
    now = int(time.time() * 1000)
    synth_io.seed_features(world, store, settings.feature_groups, now_ms=now)
    group = next(g for g in settings.feature_groups if g.name == "card_velocity")
    absurd, future, fine = world.card_ids[:3]
    client = redis.Redis.from_url(stack.redis_url)
    k = len(group.features)
    client.set(store.key(group, absurd), pack([3e38] * k, now, group.version))  # finite, but no count is 3e38
    client.set(store.key(group, future), pack([1.0] * k, now + 10 * 365 * 86_400_000, group.version))
    client.close()
    records, _ = sample_events(world, 30, start_ms=now, rng=np.random.default_rng(9))
    records = [{**r, "card_id": (absurd, future, fine)[i % 3], "event_id": f"odd-{i}"} for i, r in enumerate(records)]
    produce_large(stack.bootstrap, topics.input, [(r["card_id"].encode(), encode(schemas.events, r)) for r in records])

    worker = RunningWorker(settings)
    try:
        predictions = read_all(stack.bootstrap, topics.output, schemas.prediction, expect=30, timeout=60)
    finally:
        worker.stop()
    status = {
        p["event_id"]: next(f["status"] for f in p["feature_freshness"] if f["group"] == "card_velocity")
        for p in predictions
    }
    by_card = {r["event_id"]: r["card_id"] for r in records}
    for event_id, seen in status.items():
        assert seen == ("FRESH" if by_card[event_id] == fine else "MISSING"), (by_card[event_id], seen)
    assert all(p["imputed"] for p in predictions if by_card[p["event_id"]] != fine)
    assert all(0.0 <= p["score"] <= 1.0 for p in predictions)
    value = worker.registry.get_sample_value
    implausible = "stream_scorer_feature_records_implausible_total"
    assert value(implausible, {"group": "card_velocity", "reason": "out_of_range"}) == 10
    assert value(implausible, {"group": "card_velocity", "reason": "future_time"}) == 10
    assert value("stream_scorer_feature_records_malformed_total", {"group": "card_velocity"}) == 20


def test_many_dead_letters_fit_a_small_dead_letter_topic_and_a_tiny_one_is_refused_at_startup(
    stack: Stack, topics: Topics, redis_prefix: str, store: RedisFeatureStore, world: World, model_path: Path, schemas
) -> None:
    settings = make_settings(stack, topics, redis_prefix, model_path)
    set_max_message_bytes(stack, topics.dead_letters, 8_000)
    with pytest.raises(ConfigError, match=r"raise its max\.message\.bytes to at least 16384"):
        RunningWorker(settings)
    set_max_message_bytes(stack, topics.dead_letters, 20_000)  # small, but enough for most dead letters
    synth_io.seed_features(world, store, settings.feature_groups, now_ms=int(time.time() * 1000))
    records, _ = sample_events(world, 40, start_ms=int(time.time() * 1000), rng=np.random.default_rng(10))
    rng = np.random.default_rng(11)
    bad = [b"\x02x" + rng.bytes(6000) for _ in range(12)] + [rng.bytes(60_000)]  # incompressible
    items = [(r["card_id"].encode(), encode(schemas.events, r)) for r in records]
    items += [(f"bad-{i}".encode(), value) for i, value in enumerate(bad)]
    produce_large(stack.bootstrap, topics.input, items)  # one batch: 13 dead letters for one partition

    worker = RunningWorker(settings)
    try:
        wait_for(lambda: all_committed(stack, settings.kafka.group_id, topics.input), 60, "every offset committed")
        failures = worker.registry.get_sample_value("stream_scorer_delivery_failures_total", {"output": "dead_letters"})
    finally:
        worker.stop()
    letters = read_raw(stack.bootstrap, topics.dead_letters, expect=len(bad), timeout=30)
    assert sorted(m.key() for m in letters) == sorted(f"bad-{i}".encode() for i in range(len(bad)))
    cut = [m for m in letters if dict(m.headers()).get("dlq.value_truncated") == b"true"]
    assert [m.key() for m in cut] == [b"bad-12"] and len(cut[0].value()) < 20_000  # only the 60 KB one is cut
    assert not failures  # nothing was refused: no batch of dead letters outgrew the topic's limit
