"""Write the synthetic world out: a training history (CSV), features into Redis, events and labels into Kafka."""

from __future__ import annotations

import collections
import csv
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import confluent_kafka
import numpy as np
import numpy.typing as npt

from stream_scorer.codec import Schemas, confluent_frame, encode
from stream_scorer.config import FeatureGroup
from stream_scorer.errors import DeliveryError
from stream_scorer.features.freshness import FRESH, MISSING, STALE
from stream_scorer.features.store import RedisFeatureStore
from tools.synth.world import FEATURE_NAMES, World, draw_labels, feature_matrix, sample_events


def write_history(world: World, path: Path, rows: int, *, seed: int = 11, end_ms: int | None = None) -> float:
    """A labelled training CSV of ``rows`` past transactions. Returns the positive rate."""
    rng = np.random.default_rng(seed)
    end_ms = end_ms if end_ms is not None else int(time.time() * 1000)
    spacing = 30 * 86_400_000 / max(rows, 1)  # spread over the last 30 days
    records, sampled = sample_events(
        world, rows, start_ms=end_ms - 30 * 86_400_000, rng=rng, spacing_ms=spacing, id_prefix="hist"
    )
    matrix = feature_matrix(world, records, sampled)
    labels = draw_labels(world, matrix, rng)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([*FEATURE_NAMES, "label", "event_time"])
        for i in range(rows):
            writer.writerow([*(repr(float(v)) for v in matrix[i]), int(labels[i]), records[i]["event_time"]])
    return float(labels.mean())


@dataclass(frozen=True, slots=True)
class SeedSummary:
    """Per group, each entity's seeded status (FRESH, STALE or MISSING, by entity index), and counts."""

    status: dict[str, npt.NDArray[np.int8]]

    def count(self, group: str, status: int) -> int:
        return int(np.count_nonzero(self.status[group] == status))


def seed_features(
    world: World,
    store: RedisFeatureStore,
    groups: Sequence[FeatureGroup],
    *,
    now_ms: int,
    stale_fraction: float = 0.0,
    missing_fraction: float = 0.0,
    seed: int = 5,
    ttl_seconds: float | None = None,
) -> SeedSummary:
    """Write every entity's groups. A ``stale_fraction`` get an updated-at time three max-ages old; a
    ``missing_fraction`` are deleted instead of written."""
    rng = np.random.default_rng(seed)
    summary = SeedSummary({})
    for group in groups:
        ids = getattr(world, f"{group.entity}_ids")
        n = len(ids)
        draw = rng.random(n)
        missing = draw < missing_fraction
        stale = (~missing) & (draw < missing_fraction + stale_fraction)
        max_age_ms = int(group.max_age_seconds * 1000)
        age = np.where(stale, 3 * max_age_ms, (rng.random(n) * 0.05 * max_age_ms).astype(np.int64))
        keep = np.flatnonzero(~missing)
        store.put_many(
            group, [ids[i] for i in keep], world.group_values[group.name][keep], now_ms - age[keep], ttl_seconds
        )
        store.delete(group, [ids[i] for i in np.flatnonzero(missing)])
        summary.status[group.name] = np.select([missing, stale], [MISSING, STALE], FRESH).astype(np.int8)
    return summary


def publish(
    world: World,
    producer: confluent_kafka.Producer,
    schemas: Schemas,
    *,
    events_topic: str,
    labels_topic: str,
    count: int,
    rate: float = 0.0,
    label_delay_seconds: float = 0.0,
    seed: int = 3,
    schema_id: int | None = None,
    progress: Callable[[int], None] | None = None,
    shift_after: int | None = None,
    amount_factor: float = 1.0,
) -> dict[str, Any]:
    """Publish ``count`` events keyed by card id, stamped with the time of sending, at ``rate`` per second
    (0: as fast as possible); publish each one's label ``label_delay_seconds`` later. With ``schema_id``
    the events are framed in the Confluent wire format. From event ``shift_after`` on, amounts are
    multiplied by ``amount_factor``: a distribution shift for drift monitoring (labels keep the truth of
    the unshifted event). Returns what was sent."""
    rng = np.random.default_rng(seed)
    records, sampled = sample_events(world, count, start_ms=0, rng=rng)
    labels = draw_labels(world, feature_matrix(world, records, sampled), rng)
    if shift_after is not None:
        for record in records[shift_after:]:
            record["amount"] = round(record["amount"] * amount_factor, 2)
    due: collections.deque[tuple[float, dict[str, Any]]] = collections.deque()
    send, failures = _sender(producer)
    started = time.monotonic()
    chunk = 200
    for start in range(0, count, chunk):
        if rate > 0:
            wait = started + start / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        now = time.time()
        for i in range(start, min(start + chunk, count)):
            record = records[i]
            record["event_time"] = int(now * 1000)
            body = encode(schemas.transaction, record)
            send(
                events_topic,
                body if schema_id is None else confluent_frame(schema_id, body),
                record["card_id"].encode(),
            )
            due.append((now + label_delay_seconds, {"event_id": record["event_id"], "label": int(labels[i])}))
        _send_due_labels(due, time.time(), schemas, labels_topic, send)
        producer.poll(0)
        if progress is not None:
            progress(min(start + chunk, count))
    while due:
        time.sleep(max(0.0, min(0.2, due[0][0] - time.time())))
        _send_due_labels(due, time.time(), schemas, labels_topic, send)
        producer.poll(0)
    remaining = producer.flush(60)
    if remaining or failures:
        raise DeliveryError(f"publish: {remaining} unacknowledged, {len(failures)} failed: {failures[:1]}")
    return {
        "events": count,
        "labels": count,
        "positives": int(labels.sum()),
        "seconds": time.monotonic() - started,
        "event_ids": [r["event_id"] for r in records],
    }


def _sender(producer: confluent_kafka.Producer) -> tuple[Callable[[str, bytes, bytes | None], None], list[str]]:
    """A produce call that waits for room in the queue, and the list its failed deliveries go to."""
    failures: list[str] = []

    def on_delivery(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    def send(topic: str, value: bytes, key: bytes | None) -> None:
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=on_delivery)
                return
            except BufferError:
                producer.poll(0.05)

    return send, failures


def _send_due_labels(
    due: collections.deque[tuple[float, dict[str, Any]]],
    now: float,
    schemas: Schemas,
    topic: str,
    send: Callable[[str, bytes, bytes | None], None],
) -> None:
    while due and due[0][0] <= now:
        _, label = due.popleft()
        label["label_time"] = int(now * 1000)
        send(topic, encode(schemas.label, label), label["event_id"].encode())
