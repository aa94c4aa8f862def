"""Decoding transactions: both framings, and every kind of bad input yields a located error, not a crash."""

from __future__ import annotations

import json
import math
from pathlib import Path

import fastavro
import numpy as np
import pytest

from stream_scorer.codec import confluent_frame, decode, encode, load_schemas
from stream_scorer.errors import SchemaError
from tests.support import FakeMessage, fraud_decoder, transaction

pytestmark = pytest.mark.usefixtures("decoder_kind")  # each test with the Python and the native decoder

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
EVENTS = Path(__file__).resolve().parents[2] / "examples" / "fraud" / "transaction.avsc"
NOW = 1_800_000_000_000  # later than every test event


@pytest.fixture(scope="module")
def schemas():
    return load_schemas(SCHEMAS_DIR, EVENTS, {"1": str(EVENTS)})


def messages(values: list[bytes | None]) -> list[FakeMessage]:
    return [
        FakeMessage(v, key_bytes=b"k%d" % i, partition_id=i % 2, offset_value=100 + i) for i, v in enumerate(values)
    ]


def test_plain_avro_batch_decodes_into_columns(schemas) -> None:
    records = [transaction(i) for i in range(5)]
    values = messages([encode(schemas.events, r) for r in records])
    result = fraud_decoder(schemas=schemas, input_format="avro").decode(values, NOW)
    batch = result.batch
    assert result.invalid == []
    assert batch.event_id == [r["event_id"] for r in records]
    assert batch.event_time_ms.tolist() == [r["event_time"] for r in records]
    assert batch.entity_keys["card"] == [r["card_id"] for r in records]
    assert batch.fields["amount"].values.tolist() == [r["amount"] for r in records]
    channel = batch.fields["channel"]
    assert channel.kind == "enum" and [channel.symbols[c] for c in channel.values] == ["POS"] * 5
    assert batch.fields["ip_address"].present.tolist() == [False] * 5
    assert batch.key == [b"k0", b"k1", b"k2", b"k3", b"k4"]
    assert batch.offset.tolist() == [100, 101, 102, 103, 104]
    assert batch.consumed_at_ms.tolist() == [NOW] * 5


def test_confluent_framing_decodes(schemas) -> None:
    body = encode(schemas.events, transaction(1))
    result = fraud_decoder(schemas=schemas, input_format="confluent").decode(messages([confluent_frame(1, body)]), NOW)
    assert result.invalid == [] and result.batch.event_id == ["evt-000001"]


def test_newer_compatible_writer_schema_is_resolved(tmp_path: Path) -> None:
    schema = json.loads(EVENTS.read_text())
    schema["fields"].append({"name": "loyalty_tier", "type": "string", "default": "none"})
    (tmp_path / "transaction_v2.avsc").write_text(json.dumps(schema))
    schemas = load_schemas(SCHEMAS_DIR, EVENTS, {"1": str(EVENTS), "2": str(tmp_path / "transaction_v2.avsc")})
    body = encode(fastavro.parse_schema(schema), {**transaction(3), "loyalty_tier": "gold"})
    result = fraud_decoder(schemas=schemas, input_format="confluent").decode(messages([confluent_frame(2, body)]), NOW)
    assert result.invalid == [] and result.batch.event_id == ["evt-000003"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty_value"),
        (b"", "empty_value"),
        (b"\x00\x01\x02", "malformed_avro"),
        (b"\xff" * 40, "malformed_avro"),
    ],
)
def test_garbage_is_rejected_with_a_reason(schemas, value, reason) -> None:
    result = fraud_decoder(schemas=schemas, input_format="avro").decode(messages([value]), NOW)
    assert len(result.batch) == 0
    [error] = [item.error for item in result.invalid]
    assert error.reason == reason
    assert (error.topic, error.partition, error.offset) == ("transactions", 0, 100)


def test_truncated_and_trailing_bytes_are_rejected(schemas) -> None:
    body = encode(schemas.events, transaction(0))
    result = fraud_decoder(schemas=schemas, input_format="avro").decode(messages([body[:-5], body + b"\x00\x00"]), NOW)
    assert [e.error.reason for e in result.invalid] == ["malformed_avro", "trailing_bytes"]


def test_confluent_errors(schemas) -> None:
    body = encode(schemas.events, transaction(0))
    values = [b"\x01" + body, confluent_frame(99, body), b"\x00\x00"]
    result = fraud_decoder(schemas=schemas, input_format="confluent").decode(messages(values), NOW)
    assert [e.error.reason for e in result.invalid] == ["bad_magic_byte", "unknown_schema_id", "malformed_avro"]


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"card_id": ""}, "missing_entity_id"),
        ({"event_id": ""}, "missing_event_id"),
        ({"amount": math.nan}, "not_finite"),
        ({"amount": math.inf}, "not_finite"),
        ({"amount": -1.0}, "below_minimum"),
    ],
)
def test_semantic_validation(schemas, override, reason) -> None:
    good = encode(schemas.events, transaction(0))
    bad = encode(schemas.events, transaction(1, **override))
    result = fraud_decoder(schemas=schemas, input_format="avro").decode(messages([good, bad, good]), NOW)
    assert [e.error.reason for e in result.invalid] == [reason]
    assert next(iter(override)) in result.invalid[0].error.detail or reason == "missing_entity_id"
    assert result.invalid[0].error.offset == 101
    # The valid rows keep their order and their own offsets.
    assert result.batch.offset.tolist() == [100, 102]


def test_error_messages_never_carry_the_payload(schemas) -> None:
    secret = transaction(0, card_id="", ip_address="203.0.113.77")
    decoder = fraud_decoder(schemas=schemas, input_format="avro")
    result = decoder.decode(messages([encode(schemas.events, secret)]), NOW)
    text = str(result.invalid[0].error)
    assert "203.0.113.77" not in text and "evt-000000" not in text
    assert "transactions[0]@100" in text


def test_mixed_batch_keeps_every_valid_event(schemas) -> None:
    rng = np.random.default_rng(1)
    values: list[bytes | None] = []
    expected = []
    for i in range(200):
        if rng.random() < 0.3:
            values.append(bytes(rng.integers(0, 256, int(rng.integers(1, 60)), dtype=np.uint8)))
        else:
            values.append(encode(schemas.events, transaction(i)))
            expected.append(f"evt-{i:06d}")
    result = fraud_decoder(schemas=schemas, input_format="avro").decode(messages(values), NOW)
    # Random bytes can happen to be a valid record; every one we wrote must be there, in order.
    decoded = [e for e in result.batch.event_id if e.startswith("evt-")]
    assert decoded == expected
    assert len(result.batch) + len(result.invalid) == 200


def test_prediction_round_trip(schemas) -> None:
    record = {
        "event_id": "e",
        "model_name": "m",
        "model_version": "1",
        "score": 0.25,
        "threshold": 0.5,
        "decision": False,
        "imputed": True,
        "feature_freshness": [{"group": "g", "status": "MISSING", "age_ms": None}],
        "event_time": 1,
        "consumed_at": 2,
        "scored_at": 3,
        "reasons": [{"feature": "event.amount_log", "contribution": 0.5}],
        "shadow": [{"model_name": "m", "model_version": "2", "score": 0.75, "decision": True}],
        "key": b"k",
        "passthrough": {"a": None, "b": True, "c": 3, "d": 0.5, "e": "x"},
    }
    assert decode(schemas.prediction, encode(schemas.prediction, record)) == record


def test_missing_or_broken_schema_file_is_a_schema_error(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="does not exist"):
        load_schemas(SCHEMAS_DIR, tmp_path / "missing.avsc")
    (tmp_path / "broken.avsc").write_text('{"type": "record", "name": "X", "fields": [{"name": "a"}]}')
    with pytest.raises(SchemaError, match="does not parse"):
        load_schemas(SCHEMAS_DIR, tmp_path / "broken.avsc")


@pytest.mark.parametrize("input_format", ["avro", "confluent"])
def test_random_and_corrupted_bytes_only_ever_raise_invalid_event_error(schemas, input_format) -> None:
    from stream_scorer.errors import InvalidEventError

    rng = np.random.default_rng(7)
    good = encode(schemas.events, transaction(3))
    if input_format == "confluent":
        good = confluent_frame(1, good)
    decoder = fraud_decoder(schemas=schemas, input_format=input_format)
    for i in range(3000):
        if i % 3 == 0:
            value = bytes(rng.integers(0, 256, int(rng.integers(1, 80)), dtype=np.uint8))
        else:
            corrupted = bytearray(good)
            for _ in range(int(rng.integers(1, 4))):
                corrupted[int(rng.integers(0, len(corrupted)))] = int(rng.integers(0, 256))
            value = bytes(corrupted[: int(rng.integers(1, len(corrupted) + 1))] if i % 3 == 2 else corrupted)
        try:
            decoder.decode_one(value)
        except InvalidEventError as exc:
            assert exc.reason in ("malformed_avro", "trailing_bytes", "bad_magic_byte", "unknown_schema_id")


def test_oversized_future_and_masked_values(schemas) -> None:
    decoder = fraud_decoder(
        schemas=schemas, input_format="avro", max_message_bytes=200, max_future_ms=60_000, sensitive_fields=["amount"]
    )
    values = [
        encode(schemas.events, transaction(0)),
        encode(schemas.events, transaction(1, event_time=NOW + 61_000)),
        encode(schemas.events, transaction(2, event_time=NOW + 59_000)),
        encode(schemas.events, transaction(3, ip_address="x" * 300)),
        encode(schemas.events, transaction(4, amount=-5.0)),
    ]
    result = decoder.decode(messages(values), NOW)
    assert [(i.error.reason, i.error.offset) for i in result.invalid] == [
        ("oversized", 103),
        ("event_time_in_future", 101),
        ("below_minimum", 104),
    ]
    assert result.valid_flags == [True, False, True, False, False]
    assert "-5.0" not in result.invalid[2].error.detail and "***" in result.invalid[2].error.detail


def test_incompatible_writer_schema_and_schema_id_on_errors(tmp_path: Path) -> None:
    schema = json.loads(EVENTS.read_text())
    for field in schema["fields"]:
        if field["name"] == "amount":
            field["type"] = "string"  # no promotion from string to double
    (tmp_path / "bad.avsc").write_text(json.dumps(schema))
    schemas = load_schemas(SCHEMAS_DIR, EVENTS, {"1": str(EVENTS), "9": str(tmp_path / "bad.avsc")})
    body = encode(fastavro.parse_schema(schema), {**transaction(3), "amount": "12"})
    result = fraud_decoder(schemas=schemas, input_format="confluent").decode(messages([confluent_frame(9, body)]), NOW)
    [item] = result.invalid
    assert item.error.reason == "incompatible_schema" and item.error.schema_id == 9
