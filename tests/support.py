"""Helpers shared by unit and integration tests: fake messages, records, small models, and readable references
(one model's matrix, prediction records as dicts) that tests hold the vectorized code to."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stream_scorer import wiring
from stream_scorer.batch import BoolArray, EventBatch, Float64Array, KafkaMessage
from stream_scorer.codec import EventDecoder
from stream_scorer.events.columns import to_batch
from stream_scorer.events.contract import EventContract
from stream_scorer.features.freshness import STATUS_NAMES, Freshness
from stream_scorer.features.layout import GroupValues
from stream_scorer.model.artifact import LogisticModel
from stream_scorer.model.fitted_spec import FittedNumeric, FittedSpec, transform
from stream_scorer.pipeline import ScoredBatch, Scorer
from stream_scorer.pipeline.vectorize import InputPlan, gather, groups_read
from stream_scorer.training.specfile import load_spec
from tools.synth.examples import example_history, example_settings, train_example
from tools.synth.io import REPO

FRAUD_SPEC_FILE = REPO / "examples" / "fraud" / "features.toml"
FRAUD_SETTINGS_FILE = REPO / "examples" / "fraud" / "settings.toml"

FRAUD_SETTINGS = example_settings("fraud")  # the fraud example's settings.toml
FRAUD_SCHEMAS = wiring.schemas(FRAUD_SETTINGS)
FRAUD_CONTRACT = wiring.event_contract(FRAUD_SETTINGS, FRAUD_SCHEMAS)


@dataclass
class FakeMessage:
    """Stands in for ``confluent_kafka.Message`` in unit tests."""

    payload: bytes | None
    key_bytes: bytes | None = None
    topic_name: str = "transactions"
    partition_id: int = 0
    offset_value: int = 0
    timestamp_ms: int = 1_700_000_000_000

    def value(self) -> bytes | None:
        return self.payload

    def key(self) -> bytes | None:
        return self.key_bytes

    def topic(self) -> str | None:
        return self.topic_name

    def partition(self) -> int | None:
        return self.partition_id

    def offset(self) -> int | None:
        return self.offset_value

    def timestamp(self) -> tuple[int, int]:
        return (1, self.timestamp_ms)  # TIMESTAMP_CREATE_TIME


def transaction(i: int = 0, **overrides: Any) -> dict[str, Any]:
    """A valid Transaction record."""
    record = {
        "event_id": f"evt-{i:06d}",
        "event_time": 1_700_000_000_000 + i * 1000,
        "card_id": f"card-{i % 7}",
        "merchant_id": f"merchant-{i % 3}",
        "device_id": f"device-{i % 5}",
        "amount": 10.0 + i,
        "currency": "USD",
        "merchant_category_code": 5411,
        "country": "US",
        "card_country": "US",
        "channel": "POS",
        "entry_mode": "CHIP",
        "card_present": True,
        "ip_address": None,
    }
    record.update(overrides)
    return record


# Which decoder fraud_decoder builds by default; the `decoder_kind` fixture of tests/unit/conftest.py runs a
# test module once with each.
DECODER: dict[str, bool] = {"native": False}


def fraud_decoder(**options: Any) -> EventDecoder:
    """The fraud example's decoder (plain Avro unless ``input_format`` says otherwise), every field read."""
    fmt = options.pop("input_format", "avro")
    options.setdefault("native", DECODER["native"])
    schemas = options.pop("schemas", FRAUD_SCHEMAS)
    contract = dataclasses.replace(FRAUD_CONTRACT, sensitive=frozenset(options.pop("sensitive_fields", ())))
    decoder = EventDecoder(contract, schemas, fmt, **options)
    decoder.read_also(tuple(FRAUD_CONTRACT.fields))
    return decoder


def records_batch(
    records: Sequence[Mapping[str, Any]],
    consumed_at_ms: int = 0,
    messages: Sequence[KafkaMessage] | None = None,
    contract: EventContract = FRAUD_CONTRACT,
) -> EventBatch:
    """Decoded records (the fraud example's by default) as a batch with every field, as the decoder makes it."""
    if not records:
        return EventBatch.empty()
    origin = messages if messages is not None else [FakeMessage(None, offset_value=i) for i in range(len(records))]
    return to_batch(records, origin, contract, tuple(contract.fields), consumed_at_ms)


def small_model(feature_names: tuple[str, ...], seed: int = 0) -> LogisticModel:
    """A model with random but fixed parameters over ``feature_names``. A name the fraud example's feature spec
    declares (``event.amount_log``) is computed as it declares; any other is an input of its own name."""
    rng = np.random.default_rng(seed)
    k = len(feature_names)
    mean, scale, defaults = rng.normal(0, 2, k), rng.uniform(0.5, 3, k), rng.normal(0, 1, k)
    derivations = {f.column: f.derive for f in load_spec(FRAUD_SPEC_FILE).numeric}
    spec = FittedSpec(
        numeric=tuple(
            FittedNumeric(name, float(d), float(m), float(sc), derive=derivations.get(name))
            for name, d, m, sc in zip(feature_names, defaults, mean, scale, strict=True)
        )
    )
    return LogisticModel(
        name="test",
        version="1",
        feature_names=feature_names,
        coef=rng.normal(0, 1, k),
        intercept=-1.5,
        mean=mean,
        scale=scale,
        defaults=defaults,
        threshold=0.3,
        checksum="0" * 64,
        spec=spec if any(derivations.get(n) for n in feature_names) else None,
    )


def fraud_history(world: Any, path: Path, rows: int, seed: int = 11, end_ms: int | None = None) -> float:
    """A labelled training CSV of the fraud example's world; returns the positive rate."""
    return example_history("fraud", world, path, rows, seed=seed, end_ms=end_ms)


def fraud_train(path: Path, **options: Any) -> LogisticModel:
    """A model trained on a fraud history CSV with the fraud example's feature spec."""
    return train_example(
        "fraud", path, model=options.pop("name", "fraud"), version=options.pop("version", "test-1"), **options
    )


def fraud_scorer(*args: Any, **kwargs: Any) -> Scorer:
    """A :class:`Scorer` that reads the fraud example's event fields."""
    return Scorer(*args, event_fields=FRAUD_CONTRACT.fields, **kwargs)


def vectorize(
    plan: InputPlan,
    spec: FittedSpec,
    batch: EventBatch,
    group_values: Mapping[str, GroupValues],
    freshness: Mapping[str, Freshness],
) -> tuple[Float64Array, BoolArray]:
    """The raw (imputed, not standardized) feature matrix of one model's spec, and the rows with an imputed group."""
    columns, usable = gather(plan, batch, group_values, freshness)
    imputed = np.zeros(len(batch), dtype=bool)
    for group in groups_read(spec):
        imputed |= ~usable[group]
    return transform(spec, columns), imputed


def prediction_records(
    scored: ScoredBatch,
    model: LogisticModel,
    challengers: Sequence[LogisticModel] = (),
    passthrough: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """One ``Prediction`` record (see ``schemas/prediction.avsc``) per event, as a dict.

    The worker encodes with :class:`stream_scorer.pipeline.emit.PredictionEncoder`; this is the readable reference
    that its tests encode with fastavro and compare byte for byte.
    """
    batch = scored.batch
    names = list(scored.freshness)
    statuses = [[STATUS_NAMES[s] for s in scored.freshness[n].status.tolist()] for n in names]
    ages = [scored.freshness[n].age_ms.tolist() for n in names]
    scores = scored.scores.tolist()
    decisions = scored.decisions.tolist()
    imputed = scored.imputed.tolist()
    event_times = batch.event_time_ms.tolist()
    consumed = batch.consumed_at_ms.tolist()
    reason_index = scored.reason_index.tolist() if scored.reason_index.size else [[] for _ in range(len(batch))]
    reason_value = scored.reason_value.tolist() if scored.reason_value.size else [[] for _ in range(len(batch))]
    threshold = float(model.threshold)
    shadow_scores = scored.shadow_scores.tolist() if scored.shadow_scores.size else [[] for _ in range(len(batch))]
    shadow_decisions = scored.shadow_decisions.tolist() if scored.shadow_decisions.size else shadow_scores
    records = []
    for i in range(len(batch)):
        records.append(
            {
                "event_id": batch.event_id[i],
                "model_name": model.name,
                "model_version": model.version,
                "score": scores[i],
                "threshold": threshold,
                "decision": decisions[i],
                "imputed": imputed[i],
                "feature_freshness": [
                    {"group": n, "status": statuses[g][i], "age_ms": None if ages[g][i] < 0 else ages[g][i]}
                    for g, n in enumerate(names)
                ],
                "event_time": event_times[i],
                "consumed_at": consumed[i],
                "scored_at": scored.scored_at_ms,
                "reasons": [
                    {"feature": model.feature_names[f], "contribution": v}
                    for f, v in zip(reason_index[i], reason_value[i], strict=True)
                ],
                "shadow": [
                    {"model_name": c.name, "model_version": c.version, "score": p, "decision": d}
                    for c, p, d in zip(challengers, shadow_scores[i], shadow_decisions[i], strict=True)
                ],
                "key": batch.key[i],
                "passthrough": {path: _plain(batch.fields[path], i) for path in passthrough},
            }
        )
    return records


def _plain(column: Any, row: int) -> Any:
    """One value of a batch column as the passthrough map holds it."""
    if column.present is not None and not column.present[row]:
        return None
    value = column.values[row]
    value = value.item() if isinstance(value, np.generic) else value
    return column.symbols[value] if column.kind == "enum" else value
