"""Helpers shared by unit and integration tests: fake messages, records and small models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from stream_scorer.model.artifact import LogisticModel


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
