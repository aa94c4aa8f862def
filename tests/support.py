"""Helpers shared by unit and integration tests: fake messages, records, small models, and readable references
(one model's matrix, prediction records as dicts) that tests hold the vectorized code to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stream_scorer.batch import BoolArray, EventBatch, Float64Array
from stream_scorer.features.freshness import STATUS_NAMES, Freshness
from stream_scorer.features.layout import GroupValues
from stream_scorer.model.artifact import LogisticModel
from stream_scorer.model.fitted_spec import FittedSpec, transform
from stream_scorer.pipeline import ScoredBatch
from stream_scorer.pipeline.vectorize import InputPlan, gather, groups_read


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


def small_model(feature_names: tuple[str, ...], seed: int = 0) -> LogisticModel:
    """A model with random but fixed parameters over ``feature_names``."""
    rng = np.random.default_rng(seed)
    k = len(feature_names)
    return LogisticModel(
        name="test",
        version="1",
        feature_names=feature_names,
        coef=rng.normal(0, 1, k),
        intercept=-1.5,
        mean=rng.normal(0, 2, k),
        scale=rng.uniform(0.5, 3, k),
        defaults=rng.normal(0, 1, k),
        threshold=0.3,
        checksum="0" * 64,
    )


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
    scored: ScoredBatch, model: LogisticModel, challengers: Sequence[LogisticModel] = ()
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
            }
        )
    return records
