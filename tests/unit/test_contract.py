"""The event contract from configuration: checked against the schema at startup, with errors that say how to
fix them; and the columns and rules of any schema, without a line written for it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stream_scorer.cli import main
from stream_scorer.errors import ConfigError
from stream_scorer.events.columns import check, to_batch
from stream_scorer.events.contract import Entity, FieldRule, build_contract
from tests.support import FRAUD_SETTINGS_FILE, FakeMessage

SCHEMA = {
    "type": "record",
    "name": "Order",
    "fields": [
        {"name": "order_id", "type": "long"},
        {"name": "placed_at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {
            "name": "buyer",
            "type": {
                "type": "record",
                "name": "Buyer",
                "fields": [
                    {"name": "id", "type": "string"},
                    {"name": "tier", "type": {"type": "enum", "name": "Tier", "symbols": ["BASIC", "GOLD"]}},
                ],
            },
        },
        {"name": "previous_tier", "type": ["null", "Tier"], "default": None},
        {"name": "total", "type": "double"},
        {"name": "coupon", "type": ["null", "string"], "default": None},
        {"name": "lines", "type": {"type": "array", "items": "string"}},
        {"name": "gift", "type": "boolean"},
        {"name": "shipped_at", "type": ["null", "long"], "default": None},
    ],
}


def contract(**changes: object):  # type: ignore[no-untyped-def]
    options: dict[str, object] = {
        "id_field": "order_id",
        "time_field": "placed_at",
        "entities": (Entity(name="buyer", key="buyer.id"),),
        "rules": (
            FieldRule(field="total", finite=True, minimum=0, maximum=100),
            FieldRule(field="coupon", max_length=4),
        ),
        "passthrough": ("buyer.tier",),
        "sensitive": ("coupon",),
    } | changes
    return build_contract(SCHEMA, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"id_field": "nope"}, r"events.id_field: 'nope' is not in the schema Order; its fields are: order_id"),
        ({"id_field": "total"}, "must be a string, int or long field"),
        ({"time_field": "total"}, r"'total' is double; it must be a long, timestamp-millis or timestamp-micros"),
        ({"time_field": "previous_tier"}, "is enum; it must be a long"),
        ({"time_field": "shipped_at"}, "may be null"),
        ({"entities": (Entity(name="buyer", key="buyer.tier"),)}, "an entity key must be a string, int or long"),
        ({"entities": (Entity(name="buyer", key="buyer.email"),)}, r"buyer's key field 'buyer.email' is not in"),
        ({"entities": (Entity(name="a", key="buyer.id"),) * 2}, "distinct identifiers"),
        ({"rules": (FieldRule(field="coupon", minimum=0),)}, "apply to numbers only"),
        ({"rules": (FieldRule(field="total", max_length=3),)}, "string fields only"),
        ({"rules": (FieldRule(field="total", minimum=5, maximum=1),)}, "above maximum"),
        ({"rules": (FieldRule(field="total"),)}, "checks nothing"),
        ({"passthrough": ("lines",)}, r"passthrough: field 'lines' is not in"),  # an array is not a leaf
        ({"sensitive": ("buyer.name",)}, "sensitive_fields"),
    ],
)
def test_startup_refuses_a_contract_the_schema_cannot_keep(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        contract(**changes)


def records() -> list[dict[str, object]]:
    base = {
        "order_id": 9_000_000_001,
        "placed_at": 1_700_000_000_123_456,
        "buyer": {"id": "b-1", "tier": "GOLD"},
        "previous_tier": None,
        "total": 12.5,
        "coupon": None,
        "lines": ["x"],
        "gift": False,
        "shipped_at": None,
    }
    return [
        base,
        {**base, "order_id": 2, "previous_tier": "BASIC", "coupon": "SAVE"},
        {**base, "order_id": 3, "total": float("nan")},
        {**base, "order_id": 4, "buyer": {"id": "", "tier": "BASIC"}},
        {**base, "order_id": 5, "total": 101.0},
        {**base, "order_id": 6, "coupon": "TOOLONG"},
        {**base, "order_id": 7, "placed_at": 1_800_000_000_000_000},
    ]


def test_any_schema_decodes_into_typed_columns_and_its_rules_are_checked() -> None:
    c = contract()
    rows = records()
    batch = to_batch(
        rows, [FakeMessage(None, offset_value=i) for i in range(len(rows))], c, ("previous_tier", "gift"), 0
    )
    assert batch.event_id[:2] == ["9000000001", "2"]
    assert batch.event_time_ms[0] == 1_700_000_000_123  # micros read as milliseconds
    assert batch.entity_keys == {"buyer": ["b-1"] * 3 + [""] + ["b-1"] * 3}
    tier = batch.fields["previous_tier"]
    assert tier.kind == "enum" and tier.symbols == ("BASIC", "GOLD") and tier.present.tolist()[:2] == [False, True]
    assert batch.fields["gift"].values.dtype == np.bool_ and "lines" not in batch.fields
    problems = check(batch, c, earliest_ms=0, latest_ms=1_750_000_000_000)
    assert {row: e.reason for row, e in problems.items()} == {
        2: "not_finite",
        3: "missing_entity_id",
        4: "above_maximum",
        5: "too_long",
        6: "event_time_in_future",
    }
    assert "total=101.0 is above the maximum 100" in problems[4].detail
    assert "TOOLONG" not in problems[5].detail and "coupon has 7 characters, over 4" in problems[5].detail


def test_events_check_lists_the_fields_and_refuses_a_broken_contract(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["events", "check", "--config", str(FRAUD_SETTINGS_FILE), "--model", str(tmp_path / "none")]) == 1
    out = capsys.readouterr()
    assert "event.merchant_category_code" in out.out and "(key of entity card)" in out.out
    assert "manifest.json is missing" in out.err
    broken = tmp_path / "settings.toml"
    broken.write_text(
        FRAUD_SETTINGS_FILE.read_text()
        .replace('key = "card_id"', 'key = "card.pan"')
        .replace('schema = "transaction.avsc"', f'schema = "{FRAUD_SETTINGS_FILE.parent / "transaction.avsc"}"')
        .replace('"1" = "transaction.avsc"', f'"1" = "{FRAUD_SETTINGS_FILE.parent / "transaction.avsc"}"')
    )
    assert main(["events", "check", "--config", str(broken)]) == 1
    assert "card's key field 'card.pan' is not in the schema Transaction" in capsys.readouterr().err


def label_settings(tmp_path: Path, fields: list[dict[str, object]]):  # type: ignore[no-untyped-def]
    import json

    from stream_scorer.config import load_settings

    (tmp_path / "outcome.avsc").write_text(json.dumps({"type": "record", "name": "Outcome", "fields": fields}))
    (tmp_path / "s.toml").write_text(
        '[labels]\nschema = "outcome.avsc"\nid_field = "order_id"\nlabel_field = "returned"\ntime_field = "at"\n'
    )
    return load_settings(tmp_path / "s.toml", {})


def test_the_label_record_is_checked_and_read_by_its_own_types(tmp_path: Path) -> None:
    from stream_scorer.codec import encode
    from stream_scorer.labels.decode import decode_labels
    from stream_scorer.wiring import schemas
    from stream_scorer.wiring.labels import label_fields

    micros = {"type": "long", "logicalType": "timestamp-micros"}
    good = [
        {"name": "order_id", "type": "long"},
        {"name": "returned", "type": "boolean"},
        {"name": "at", "type": micros},
    ]
    settings = label_settings(tmp_path, good)
    names = label_fields(settings)
    assert names.time_units_per_ms == 1000
    schema = schemas(settings).label
    value = encode(schema, {"order_id": 42, "returned": True, "at": 1_700_000_000_123_456})
    [label], invalid = decode_labels(schema, [FakeMessage(value)], names)
    assert (label.event_id, label.label, label.label_time_ms, invalid) == ("42", 1, 1_700_000_000_123, [])
    for bad, message in (
        ({"name": "at", "type": ["null", "long"]}, r"labels.time_field: 'at' .* is long or null; it must be"),
        ({"name": "at", "type": "string"}, "it must be a long"),
        ({"name": "at", "type": {"type": "long", "logicalType": "time-micros"}}, "long \\(time-micros\\)"),
    ):
        with pytest.raises(ConfigError, match=message):
            label_fields(label_settings(tmp_path, [*good[:2], bad]))
    with pytest.raises(ConfigError, match=r"labels.label_field: 'returned' .* is missing"):
        label_fields(label_settings(tmp_path, [good[0], good[2]]))


def test_without_a_time_field_the_kafka_timestamp_is_the_event_time() -> None:
    c = contract(time_field="")
    assert c.time_field is None and "placed_at" not in c.read_fields
    rows = records()[:2]
    messages = [FakeMessage(None, timestamp_ms=1_700_000_000_000 + i) for i in range(2)]
    batch = to_batch(rows, messages, c, (), 0)
    assert batch.event_time_ms.tolist() == [1_700_000_000_000, 1_700_000_000_001]


def test_an_artifact_that_named_computed_event_features_is_refused_with_how_to_retrain() -> None:
    import dataclasses

    from stream_scorer.errors import ModelArtifactError
    from tests.support import FRAUD_SETTINGS, fraud_scorer, small_model

    trained_before = dataclasses.replace(small_model(("event.amount_log", "card_velocity.txn_count_1h")), spec=None)
    with pytest.raises(ModelArtifactError, match=r"\['event.amount_log'\].*must be retrained"):
        fraud_scorer(trained_before, FRAUD_SETTINGS.feature_groups, None)
