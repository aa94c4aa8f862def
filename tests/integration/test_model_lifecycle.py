"""Model life cycle on the real stack: promote while events flow, refuse a corrupted version, shadow challengers."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from examples.fraud.world import World, sample_events
from stream_scorer.codec import encode
from stream_scorer.features.store import RedisFeatureStore
from stream_scorer.model import artifact
from stream_scorer.model.artifact import LogisticModel
from stream_scorer.model.registry import Registry
from stream_scorer.model.score import score_one
from tests.integration.conftest import RunningWorker, Stack, Topics, make_settings, produce, read_all
from tests.integration.test_end_to_end import reference_event_features
from tests.support import fraud_train
from tools.synth import io as synth_io

pytestmark = pytest.mark.integration


def expected_row(record: dict, i: int, model: LogisticModel, settings, world: World, entity_rows) -> list[float]:
    """The raw feature row of event ``i``, every group fresh (the test seeds no stale or missing group)."""
    event = reference_event_features(record)
    row = []
    for name in model.feature_names:
        source, _, feature = name.partition(".")
        if source == "event":
            row.append(event[feature])
        else:
            group = settings.group(source)
            stored = world.group_values[source][entity_rows[group.entity][i], group.features.index(feature)]
            row.append(float(np.float32(stored)))
    return row


def flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_promote_while_events_flow_switches_at_a_batch_boundary(
    stack: Stack,
    topics: Topics,
    redis_prefix: str,
    store: RedisFeatureStore,
    world: World,
    model_path: Path,
    schemas,
    tmp_path: Path,
) -> None:
    history = model_path.parent / "history.csv"
    registry = Registry.create(tmp_path / "registry")
    for C in (1.0, 0.01, 0.5):  # three versions with visibly different coefficients

        def write(directory: Path, version: int, C: float = C) -> None:
            artifact.save(fraud_train(history, name="fraud", version=str(version), C=C), directory)

        registry.register(write)
    registry.promote(1)
    challenger_dir = tmp_path / "challenger"
    artifact.save(fraud_train(history, name="fraud-l1", version="c1", C=0.05, penalty="l1"), challenger_dir)

    settings = make_settings(stack, topics, redis_prefix, registry.root)
    settings = type(settings)(
        **{f: getattr(settings, f) for f in settings.__dataclass_fields__}
        | {"model_reload_seconds": 0.1, "challengers": (str(challenger_dir),)}
    )
    synth_io.seed_features(world, store, settings.feature_groups, now_ms=int(time.time() * 1000))
    n, chunk = 6000, 200
    records, sampled = sample_events(
        world, n, start_ms=int(time.time() * 1000), rng=np.random.default_rng(31), spacing_ms=1.0
    )
    values = [(r["card_id"].encode(), encode(schemas.events, r)) for r in records]

    worker = RunningWorker(settings)
    produced = threading.Event()

    def publish() -> None:  # events keep flowing while the registry moves
        for start in range(0, n, chunk):
            produce(stack.bootstrap, topics.input, values[start : start + chunk])
            time.sleep(0.05)
        produced.set()

    publisher = threading.Thread(target=publish, daemon=True)
    try:
        publisher.start()
        read_all(stack.bootstrap, topics.output, schemas.prediction, expect=1500, timeout=60)
        registry.promote(2)  # the worker must switch at its next batch
        read_all(stack.bootstrap, topics.output, schemas.prediction, expect=3500, timeout=60)
        # Version 3 is corrupted on the volume (one flipped byte) and CURRENT is moved to it behind the
        # registry's back: the worker must refuse it and keep serving version 2.
        flip_one_byte(registry.path(3) / "arrays.npz")
        (registry.root / "CURRENT").write_text("3\n")
        publisher.join(60)
        assert produced.is_set()
        predictions = read_all(stack.bootstrap, topics.output, schemas.prediction, expect=n, timeout=90)
        time.sleep(0.5)
        metrics = urllib.request.urlopen(worker.metrics_url + "/metrics", timeout=10).read().decode()
    finally:
        worker.stop()

    # Every event scored exactly once, across the swap.
    ids = [p["event_id"] for p in predictions]
    assert len(ids) == n and set(ids) == {r["event_id"] for r in records}
    versions = [p["model_version"] for p in predictions]
    assert {"1", "2"} <= set(versions) and "3" not in versions
    # In each partition (read in offset order) the version switches once, from 1 to 2, and never back.
    by_partition: dict[bytes, list[str]] = defaultdict(list)
    for p in predictions:
        by_partition[p["_key"]].append(p["model_version"])
    for sequence in by_partition.values():
        assert sequence == sorted(sequence)
    # A whole batch is scored by one model: predictions with one scored_at time all carry the same version.
    by_batch: dict[int, set[str]] = defaultdict(set)
    for p in predictions:
        by_batch[p["scored_at"]].add(p["model_version"])
    assert all(len(v) == 1 for v in by_batch.values())
    # Each score is the one its claimed version gives, and the challenger's shadow score is its own.
    models = {v: artifact.load(registry.path(int(v))) for v in ("1", "2")}
    challenger = artifact.load(challenger_dir)
    entity_rows = {"card": sampled.card, "merchant": sampled.merchant, "device": sampled.device}
    by_id = {p["event_id"]: p for p in predictions}
    for i, record in enumerate(records[::7]):
        prediction = by_id[record["event_id"]]
        model = models[prediction["model_version"]]
        row = expected_row(record, i * 7, model, settings, world, entity_rows)
        assert prediction["score"] == pytest.approx(score_one(row, model), abs=1e-9)
        (shadow,) = prediction["shadow"]
        assert (shadow["model_name"], shadow["model_version"]) == ("fraud-l1", "c1")
        challenger_row = expected_row(record, i * 7, challenger, settings, world, entity_rows)
        assert shadow["score"] == pytest.approx(score_one(challenger_row, challenger), abs=1e-9)
        assert shadow["decision"] == (shadow["score"] >= challenger.threshold)
    assert "stream_scorer_model_reloads_total 1.0" in metrics
    assert 'stream_scorer_model_reload_failures_total{reason="ModelArtifactError"} 1.0' in metrics
    assert 'version="2"' in metrics.split("stream_scorer_model_info{")[1].split("}")[0]
    assert "stream_scorer_challenger_models 1.0" in metrics
