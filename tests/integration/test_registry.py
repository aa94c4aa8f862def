"""The schema registry of the local stack (Apicurio, Confluent-compatible API) behaves as the worker expects."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import pytest

from examples.fraud.world import World, sample_events
from stream_scorer.codec import confluent_frame, encode
from stream_scorer.config import SchemaRegistrySettings, Settings
from stream_scorer.features.store import RedisFeatureStore
from stream_scorer.model import artifact
from stream_scorer.model.score import score_one
from tests.integration.conftest import (
    REPO,
    RunningWorker,
    Stack,
    Topics,
    make_settings,
    produce,
    read_all,
    read_raw,
    wait_for,
)
from tests.integration.test_model_lifecycle import expected_row
from tools.synth import io as synth_io

pytestmark = pytest.mark.integration
TRANSACTION = Path(__file__).resolve().parents[2] / "examples" / "fraud" / "transaction.avsc"


def call(url: str, method: str = "GET", body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """One registry request; the status and the decoded JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data, {"Content-Type": "application/vnd.schemaregistry.v1+json"}, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read() or b"null")


def test_the_stack_registry_registers_serves_by_id_and_enforces_compatibility(stack: Stack) -> None:
    subject = f"it-{uuid.uuid4().hex[:10]}-value"
    v1 = json.loads(TRANSACTION.read_text())
    status, answer = call(f"{stack.registry_url}/subjects/{subject}/versions", "POST", {"schema": json.dumps(v1)})
    assert status == 200 and isinstance(answer["id"], int) and 0 < answer["id"] < 2**31  # fits a Confluent frame
    schema_id = answer["id"]
    status, answer = call(f"{stack.registry_url}/schemas/ids/{schema_id}")
    assert status == 200 and json.loads(answer["schema"])["name"] == "Transaction"
    assert call(f"{stack.registry_url}/config/{subject}", "PUT", {"compatibility": "BACKWARD"})[0] == 200
    no_default = {**v1, "fields": [*v1["fields"], {"name": "tier", "type": "string"}]}
    status, _ = call(f"{stack.registry_url}/subjects/{subject}/versions", "POST", {"schema": json.dumps(no_default)})
    assert status == 409  # a new field without a default breaks BACKWARD compatibility
    with_default = {**v1, "fields": [*v1["fields"], {"name": "tier", "type": "string", "default": "none"}]}
    status, answer = call(
        f"{stack.registry_url}/subjects/{subject}/versions", "POST", {"schema": json.dumps(with_default)}
    )
    assert status == 200 and answer["id"] != schema_id
    assert call(f"{stack.registry_url}/schemas/ids/999999999")[0] == 404
    assert call(f"{stack.registry_url}/subjects/{subject}", "DELETE")[0] == 200


def register(stack: Stack, subject: str, schema: dict[str, Any]) -> int:
    status, answer = call(f"{stack.registry_url}/subjects/{subject}/versions", "POST", {"schema": json.dumps(schema)})
    assert status == 200, answer
    return int(answer["id"])


def registry_settings(stack: Stack, topics: Topics, prefix: str, model_path: Path) -> Settings:
    """The fraud example in Confluent framing with no configured writer schema: every id comes from the registry."""
    settings = make_settings(stack, topics, prefix, model_path, input_format="confluent", schema_ids={})
    return dataclasses.replace(settings, schema_registry=SchemaRegistrySettings(url=stack.registry_url))


def framed(schema_id: int, schema: dict[str, Any], records: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    parsed = fastavro.parse_schema(schema)
    return [(r["card_id"].encode(), confluent_frame(schema_id, encode(parsed, r))) for r in records]


def test_schemas_evolve_while_events_flow_and_an_incompatible_one_is_dead_lettered(
    stack: Stack, topics: Topics, redis_prefix: str, store: RedisFeatureStore, world: World, model_path: Path, schemas
) -> None:
    subject = f"{topics.input}-value"
    v1 = json.loads(TRANSACTION.read_text())
    v2 = {**v1, "fields": [*v1["fields"], {"name": "tier", "type": "string", "default": "none"}]}  # a field added
    v3 = {**v2, "fields": [f for f in v2["fields"] if f["name"] != "ip_address"]}  # an optional field removed
    v4 = {**v1, "fields": [{**f, "type": "string"} if f["name"] == "amount" else f for f in v1["fields"]]}
    ids = [register(stack, subject, v1)]
    assert call(f"{stack.registry_url}/config/{subject}", "PUT", {"compatibility": "BACKWARD"})[0] == 200
    ids += [register(stack, subject, v2), register(stack, subject, v3)]
    assert call(f"{stack.registry_url}/subjects/{subject}/versions", "POST", {"schema": json.dumps(v4)})[0] == 409
    assert call(f"{stack.registry_url}/config/{subject}", "PUT", {"compatibility": "NONE"})[0] == 200
    bad_id = register(stack, subject, v4)  # forced in: its events cannot be read as Transactions
    settings = registry_settings(stack, topics, redis_prefix, model_path)
    synth_io.seed_features(world, store, settings.feature_groups, now_ms=int(time.time() * 1000))
    records, sampled = sample_events(world, 300, start_ms=int(time.time() * 1000), rng=np.random.default_rng(5))
    chunks = [records[:100], records[100:200], records[200:]]
    worker = RunningWorker(settings)
    try:
        produce(stack.bootstrap, topics.input, framed(ids[0], v1, chunks[0]))
        produce(stack.bootstrap, topics.input, framed(ids[1], v2, [{**r, "tier": "gold"} for r in chunks[1]]))
        v3_records = [{k: v for k, v in r.items() if k != "ip_address"} for r in chunks[2]]
        produce(stack.bootstrap, topics.input, framed(ids[2], v3, v3_records))
        produce(stack.bootstrap, topics.input, framed(bad_id, v4, [{**r, "amount": "9"} for r in chunks[0][:7]]))
        predictions = read_all(stack.bootstrap, topics.output, schemas.prediction, expect=300)
        dead = read_raw(stack.bootstrap, topics.dead_letters, expect=7)
    finally:
        worker.stop()
    assert sorted(p["event_id"] for p in predictions) == sorted(r["event_id"] for r in records)  # each once
    assert [dict(m.headers())["dlq.error.class"] for m in dead] == [b"incompatible_schema"] * 7
    assert {dict(m.headers())["dlq.schema.id"] for m in dead} == {str(bad_id).encode()}
    model = artifact.load(model_path)
    by_id = {p["event_id"]: p["score"] for p in predictions}
    entity_rows = {"card": sampled.card, "merchant": sampled.merchant, "device": sampled.device}
    for i, record in enumerate(records):  # the same events read through three writer schemas score as offline
        expected = score_one(expected_row(record, i, model, settings, world, entity_rows), model)
        assert by_id[record["event_id"]] == pytest.approx(expected, abs=1e-9)


def test_a_registry_outage_holds_the_batch_until_it_answers(
    stack: Stack, topics: Topics, redis_prefix: str, store: RedisFeatureStore, world: World, model_path: Path, schemas
) -> None:
    subject = f"{topics.input}-value"
    v1 = json.loads(TRANSACTION.read_text())
    v2 = {**v1, "fields": [*v1["fields"], {"name": "tier", "type": "string", "default": "none"}]}
    first, second = register(stack, subject, v1), register(stack, subject, v2)
    settings = registry_settings(stack, topics, redis_prefix, model_path)
    settings = dataclasses.replace(settings, batch=dataclasses.replace(settings.batch, retry_backoff_seconds=0.5))
    synth_io.seed_features(world, store, settings.feature_groups, now_ms=int(time.time() * 1000))
    records, _ = sample_events(world, 100, start_ms=int(time.time() * 1000), rng=np.random.default_rng(6))
    worker = RunningWorker(settings)
    try:
        produce(stack.bootstrap, topics.input, framed(first, v1, records[:50]))
        read_all(stack.bootstrap, topics.output, schemas.prediction, expect=50)
        run_stack("down", "registry")
        try:
            produce(stack.bootstrap, topics.input, framed(second, v2, [{**r, "tier": "x"} for r in records[50:]]))
            wait_for(lambda: worker.runtime.worker.retrying is not None, 30, "the worker to say it is waiting")
            assert "schema registry unavailable" in (worker.runtime.worker.retrying or "")
            assert not worker.runtime.ready()[0]
        finally:
            run_stack("up", "registry")
        predictions = read_all(stack.bootstrap, topics.output, schemas.prediction, expect=100, timeout=90)
        wait_for(lambda: worker.runtime.worker.retrying is None, 30, "the worker to be ready again")
        errors = worker.registry.get_sample_value("stream_scorer_schema_registry_errors_total")
    finally:
        worker.stop()
    assert sorted(p["event_id"] for p in predictions) == sorted(r["event_id"] for r in records)
    assert read_raw(stack.bootstrap, topics.dead_letters, expect=1, timeout=3) == []
    assert errors is not None and errors >= 1


def run_stack(*args: str) -> None:
    subprocess.run([str(REPO / "scripts" / "stack"), *args], check=True, capture_output=True, timeout=180)


def test_confluent_framed_predictions_are_read_by_a_standard_deserializer_and_framed_labels_join(
    stack: Stack, topics: Topics, redis_prefix: str, store: RedisFeatureStore, world: World, model_path: Path, schemas
) -> None:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from tests.integration.conftest import RunningLabels

    v1 = json.loads(TRANSACTION.read_text())
    event_id = register(stack, f"{topics.input}-value", v1)
    label_schema = json.loads((REPO / "schemas" / "label.avsc").read_text())
    label_id = register(stack, f"{topics.labels}-value", label_schema)
    settings = registry_settings(stack, topics, redis_prefix, model_path)
    settings = dataclasses.replace(
        settings,
        kafka=dataclasses.replace(settings.kafka, output_format="confluent"),
        labels=dataclasses.replace(settings.labels, input_format="confluent", hold_seconds=5.0, retry_seconds=0.2),
    )
    synth_io.seed_features(world, store, settings.feature_groups, now_ms=int(time.time() * 1000))
    records, _ = sample_events(world, 60, start_ms=int(time.time() * 1000), rng=np.random.default_rng(7))
    labels_parsed = fastavro.parse_schema(label_schema)
    worker, flow = RunningWorker(settings), RunningLabels(settings)
    try:
        produce(stack.bootstrap, topics.input, framed(event_id, v1, records))
        raw = read_raw(stack.bootstrap, topics.output, expect=60)
        outcomes = [
            {"event_id": r["event_id"], "label": i % 2, "label_time": int(time.time() * 1000)}
            for i, r in enumerate(records)
        ]
        produce(
            stack.bootstrap,
            topics.labels,
            [(None, confluent_frame(label_id, encode(labels_parsed, o))) for o in outcomes],
        )
        wait_for(lambda: flow.value("stream_scorer_labels_joined_total") >= 60, 60, "60 framed labels joined")
    finally:
        flow.stop()
        worker.stop()
    context = SerializationContext(topics.output, MessageField.VALUE)
    with SchemaRegistryClient({"url": stack.registry_url}) as client:  # a standard reader, knowing nothing of ours
        deserialize = AvroDeserializer(client)
        read = [deserialize(m.value(), context) for m in raw]
    assert sorted(p["event_id"] for p in read) == sorted(r["event_id"] for r in records)
    assert all(0.0 <= p["score"] <= 1.0 and p["key"] == r for p, r in zip(read, (m.key() for m in raw), strict=True))
    status, latest = call(f"{stack.registry_url}/subjects/{topics.output}-value/versions/latest")
    assert status == 200 and json.loads(latest["schema"])["name"] == "Prediction"


def test_the_client_tells_an_absent_id_from_a_registry_fault(stack: Stack) -> None:
    from stream_scorer.codec.registry import RegistryClient
    from stream_scorer.errors import SchemaRegistryError

    assert RegistryClient(stack.registry_url).schema(987_654_321) is None  # 404 with Confluent's 40403
    with pytest.raises(SchemaRegistryError, match="HTTP 404"):
        RegistryClient(stack.registry_url + "/wrong").schema(1)  # a 404 of a wrong path is a fault, retried
    with pytest.raises(SchemaRegistryError, match="did not answer"):
        RegistryClient("http://127.0.0.1:9", timeout_seconds=0.5).schema(1)  # nothing listens on port 9
