"""The output side: produce records, then flush and check that every one was acknowledged."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import confluent_kafka

from stream_scorer.errors import DeliveryError, KafkaError


def producer_config(bootstrap_servers: str, extra: Mapping[str, str]) -> dict[str, Any]:
    """librdkafka settings: idempotent, acks from all in-sync replicas, small linger, lz4."""
    return {
        "bootstrap.servers": bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        **extra,
    }


class CheckedProducer:
    """Produces to one topic and counts delivery failures; :meth:`flush` raises if any record was lost."""

    def __init__(self, config: Mapping[str, Any], topic: str) -> None:
        self._producer = confluent_kafka.Producer(dict(config))
        self._topic = topic
        self._failed = 0
        self._first_error: str | None = None
        self._acked = 0

    def produce(self, keys: Sequence[bytes | None], values: Sequence[bytes]) -> None:
        """Queue one record per (key, value); waits for room when librdkafka's queue is full."""
        produce, on_delivery = self._producer.produce, self._on_delivery
        for key, value in zip(keys, values, strict=True):
            while True:
                try:
                    produce(self._topic, value, key, on_delivery=on_delivery)
                    break
                except BufferError:
                    self._producer.poll(0.05)
                except confluent_kafka.KafkaException as exc:
                    raise KafkaError(f"produce to {self._topic} failed: {exc}") from exc
        self._producer.poll(0)

    def flush(self, timeout: float) -> int:
        """Wait for every queued record. Returns how many were acknowledged since the last flush.

        Raises :class:`DeliveryError` if any record failed or is still queued after ``timeout``.
        """
        remaining = self._producer.flush(timeout)
        failed, first_error, acked = self._failed, self._first_error, self._acked
        self._failed, self._first_error, self._acked = 0, None, 0
        if remaining:
            raise DeliveryError(f"{remaining} records to {self._topic} still unacknowledged after {timeout} s")
        if failed:
            raise DeliveryError(f"{failed} records to {self._topic} were not delivered; first error: {first_error}")
        return acked

    def _on_delivery(self, error: Any, message: Any) -> None:
        if error is None:
            self._acked += 1
            return
        self._failed += 1
        if self._first_error is None:
            self._first_error = str(error)
