"""Writer schemas learnt by id from a schema registry: resolution against the reader schema, unusable schemas
and unknown ids per message, a registry that cannot answer as one error before anything is decoded."""

from __future__ import annotations

import json

import pytest

from stream_scorer.codec import confluent_frame, encode
from stream_scorer.errors import SchemaRegistryError
from tests.support import FRAUD_SCHEMAS, FRAUD_SETTINGS_FILE, FakeMessage, fraud_decoder, transaction

READER = json.loads((FRAUD_SETTINGS_FILE.parent / "transaction.avsc").read_text())
NOW = 1_800_000_000_000


def evolved(**change: object) -> dict[str, object]:
    """The reader schema with fields added (name -> type, with a default) or removed (name -> None)."""
    fields = [f for f in READER["fields"] if change.get(f["name"], True) is not None]
    fields += [{"name": n, "type": t, "default": "none"} for n, t in change.items() if t is not None]
    return {**READER, "fields": fields}


class Registry:
    """A schema source for the decoder's resolution rules (the real registry is in the integration tests)."""

    def __init__(self, schemas: dict[int, str]) -> None:
        self.schemas, self.asked, self.down = schemas, [], False

    def schema(self, schema_id: int) -> str | None:
        self.asked.append(schema_id)
        if self.down:
            raise SchemaRegistryError("registry down")
        return self.schemas.get(schema_id)


def framed(schema_id: int, schema: dict[str, object], record: dict[str, object]) -> FakeMessage:
    import fastavro

    return FakeMessage(confluent_frame(schema_id, encode(fastavro.parse_schema(schema), record)))


def test_new_ids_are_fetched_once_and_resolved_against_the_reader_schema() -> None:
    v2, v3 = evolved(tier="string"), evolved(ip_address=None)
    registry = Registry({1: json.dumps(READER), 2: json.dumps(v2), 3: json.dumps(v3)})
    decoder = fraud_decoder(input_format="confluent", registry=registry, schemas=FRAUD_SCHEMAS)
    record = transaction(1)
    messages = [
        framed(1, READER, record),
        framed(2, v2, {**record, "tier": "gold"}),
        framed(3, v3, {k: v for k, v in record.items() if k != "ip_address"}),
    ]
    result = decoder.decode(messages, NOW)
    assert result.invalid == [] and len(result.batch) == 3
    assert sorted(registry.asked) == [2, 3]  # 1 is configured (kafka.schema_ids): never asked
    assert result.batch.fields["amount"].values.tolist() == [record["amount"]] * 3
    assert result.batch.fields["ip_address"].present.tolist() == [False] * 3  # v3 lacks it: the reader's default
    decoder.decode(messages, NOW)
    assert sorted(registry.asked) == [2, 3]  # cached


def test_unknown_unusable_and_incompatible_ids_are_rejected_per_message() -> None:
    incompatible = {
        **READER,
        "fields": [{**f, "type": "string"} if f["name"] == "amount" else f for f in READER["fields"]],
    }
    registry = Registry({4: json.dumps(incompatible), 5: "not json", 6: json.dumps({"type": "string"})})
    decoder = fraud_decoder(input_format="confluent", registry=registry, schemas=FRAUD_SCHEMAS)
    record = transaction(2)
    messages = [
        framed(4, incompatible, {**record, "amount": "12"}),
        FakeMessage(confluent_frame(5, b"\x00")),
        FakeMessage(confluent_frame(6, b"\x00")),
        FakeMessage(confluent_frame(7, b"\x00")),
        framed(1, READER, record),  # 1 is configured in the fraud settings
    ]
    result = decoder.decode(messages, NOW)
    reasons = [(i.error.reason, i.error.schema_id) for i in result.invalid]
    assert reasons == [
        ("incompatible_schema", 4),
        ("incompatible_schema", 5),
        ("incompatible_schema", 6),
        ("unknown_schema_id", 7),
    ]
    assert "cannot be read" in result.invalid[1].error.detail and len(result.batch) == 1
    decoder.decode(messages[3:4], NOW)
    assert registry.asked.count(7) == 1  # an absent id is not asked again at once


def test_a_registry_that_cannot_answer_raises_before_anything_is_decoded_and_known_ids_keep_working() -> None:
    registry = Registry({2: json.dumps(evolved(tier="string"))})
    decoder = fraud_decoder(input_format="confluent", registry=registry, schemas=FRAUD_SCHEMAS)
    record = transaction(3)
    assert len(decoder.decode([framed(2, evolved(tier="string"), {**record, "tier": "x"})], NOW).batch) == 1
    registry.down = True
    assert len(decoder.decode([framed(2, evolved(tier="string"), {**record, "tier": "x"})], NOW).batch) == 1
    with pytest.raises(SchemaRegistryError):
        decoder.decode([framed(1, READER, record), FakeMessage(confluent_frame(9, b"\x00"))], NOW)
