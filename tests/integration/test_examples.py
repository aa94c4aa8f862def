"""The ads example end to end on the real stack: a second event contract, structurally unlike fraud's, trained,
streamed, scored, labelled and measured with no code of its own in the package.

Its impressions have nested records, a long and an int entity key, enums, nullable fields and a
timestamp-micros time; its label record has its own field names; its predictions pass fields through.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import confluent_kafka
import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, precision_score, recall_score

from examples.ads import world as ads_world
from stream_scorer import wiring
from stream_scorer.codec import encode
from stream_scorer.config import Settings
from stream_scorer.events.contract import EventContract
from stream_scorer.features.store import RedisFeatureStore
from stream_scorer.model import artifact
from stream_scorer.model.score import score_columns
from stream_scorer.wiring.labels import label_fields
from tests.integration.conftest import (
    RunningLabels,
    RunningWorker,
    Stack,
    Topics,
    make_settings,
    read_all,
    read_raw,
    wait_for,
)
from tools.synth import io as synth_io
from tools.synth.examples import example_history, example_settings, train_example

pytestmark = pytest.mark.integration
WINDOW = "100000"


@pytest.fixture(scope="module")
def ads(tmp_path_factory: pytest.TempPathFactory) -> tuple[ads_world.World, Path]:
    world = ads_world.make_world(seed=5, n_users=800, n_creatives=60)
    directory = tmp_path_factory.mktemp("ads")
    example_history("ads", world, directory / "history.csv", 8000, seed=2)
    artifact.save(train_example("ads", directory / "history.csv", version="it-1"), directory / "model")
    return world, directory / "model"


def ads_settings(stack: Stack, topics: Topics, prefix: str, model_path: Path) -> Settings:
    settings = make_settings(stack, topics, prefix, model_path, base=example_settings("ads"))
    labels = dataclasses.replace(
        settings.labels,
        windows=(WINDOW,),
        hold_seconds=5.0,
        retry_seconds=0.2,
        bucket_seconds=1.0,
        horizon_seconds=60.0,
    )
    return dataclasses.replace(settings, labels=labels)


def offline_scores(
    model: Any, world: ads_world.World, records: list[dict[str, Any]], contract: EventContract, settings: Settings
) -> np.ndarray:
    """The model's scores of the records as sent, computed offline: columns as a training file holds them,
    feature values as Redis stores them (float32), every group fresh."""
    flat = synth_io.flatten(records, contract)
    columns: dict[str, Any] = {
        name: np.array(values, dtype=object if isinstance(values[0], str) else np.float64)
        for name, values in flat.items()
    }
    groups = synth_io.group_columns(world, records, contract, settings.feature_groups)
    columns.update({name: values.astype(np.float32).astype(np.float64) for name, values in groups.items()})
    scores, _, _ = score_columns(model, columns, 0)
    return scores


def bad_impressions(schemas: Any, record: dict[str, Any]) -> dict[str, bytes]:
    """One impression breaking each of the example's declared rules, by the reason it should get."""
    return {
        "below_minimum": encode(schemas.events, {**record, "bid_price": -1.0}),
        "above_maximum": encode(schemas.events, {**record, "slot_position": 51}),
        "too_long": encode(schemas.events, {**record, "search_query": "q" * 201}),
        "missing_event_id": encode(schemas.events, {**record, "impression_id": ""}),
        "event_time_too_old": encode(schemas.events, {**record, "shown_at": record["shown_at"] - 31 * 86_400_000_000}),
    }


def test_the_ads_example_streams_end_to_end(
    stack: Stack, topics: Topics, redis_prefix: str, store: RedisFeatureStore, ads: tuple[ads_world.World, Path]
) -> None:
    world, model_path = ads
    settings = ads_settings(stack, topics, redis_prefix, model_path)
    schemas = wiring.schemas(settings)
    contract = wiring.event_contract(settings, schemas)
    synth_io.seed_features(world, store, settings.feature_groups, now_ms=int(time.time() * 1000))
    template, _ = ads_world.simulate(world, 1, start_ms=int(time.time() * 1000), rng=np.random.default_rng(8))
    bad = bad_impressions(schemas, template[0])
    n = 800
    worker, labels = RunningWorker(settings), RunningLabels(settings)
    try:
        producer = confluent_kafka.Producer({"bootstrap.servers": stack.bootstrap, "linger.ms": 5})
        for value in bad.values():
            producer.produce(topics.input, value, b"bad")
        sent = synth_io.publish(
            ads_world,
            world,
            producer,
            schemas,
            contract,
            events_topic=topics.input,
            labels_topic=topics.labels,
            count=n,
            rate=2000.0,
            label_delay_seconds=1.0,
            seed=4,
            label_fields=label_fields(settings),
        )
        wait_for(lambda: labels.value("stream_scorer_labels_joined_total") >= n, 60, f"{n} clicks joined")
        predictions = read_all(stack.bootstrap, topics.output, schemas.prediction, expect=n)
        clicks = read_all(stack.bootstrap, topics.labels, schemas.label, expect=n)
        dead = read_raw(stack.bootstrap, topics.dead_letters, expect=len(bad))
        time.sleep(0.5)
    finally:
        labels.stop()
        worker.stop()

    # Every impression scored exactly once; every bad one dead-lettered with the rule it broke.
    assert sorted(p["event_id"] for p in predictions) == sorted(sent["event_ids"])
    reasons = sorted(dict(m.headers())["dlq.error.class"].decode() for m in dead)
    assert reasons == sorted(bad)
    assert all(dict(m.headers())["dlq.error.reason"].decode().count("q" * 201) == 0 for m in dead)
    # Predictions carry the message key (the visitor id) and the passthrough fields; times in milliseconds.
    by_id = {p["event_id"]: p for p in predictions}
    for record in sent["records"]:
        prediction = by_id[record["impression_id"]]
        assert prediction["key"] == str(record["visitor"]["visitor_id"]).encode()
        assert prediction["passthrough"] == {"ad.campaign": record["ad"]["campaign"], "placement": record["placement"]}
        assert prediction["event_time"] == record["shown_at"] // 1000
        assert not prediction["imputed"]
    # Scores equal the offline scores of the same rows.
    model = artifact.load(model_path)
    served = np.array([by_id[r["impression_id"]]["score"] for r in sent["records"]])
    offline = offline_scores(model, world, sent["records"], contract, settings)
    np.testing.assert_allclose(served, offline, rtol=0, atol=1e-9)
    # Live quality on the joined pairs equals scikit-learn's.
    truth = {c["impression_id"]: c["clicked"] for c in clicks}
    ids = sorted(truth)
    y = np.array([truth[i] for i in ids])
    p = np.array([by_id[i]["score"] for i in ids])
    key = {"model": model.name, "version": model.version, "window": WINDOW}
    exported = {
        m: labels.registry.get_sample_value(f"stream_scorer_model_{m}", key) for m in ("precision", "recall", "brier")
    }
    assert exported["precision"] == pytest.approx(precision_score(y, p >= model.threshold), abs=1e-9)
    assert exported["recall"] == pytest.approx(recall_score(y, p >= model.threshold), abs=1e-9)
    assert exported["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-9)
    assert labels.value("stream_scorer_labels_unknown_total") == 0
