"""Write an example's synthetic world out: a training history (CSV), features into Redis, events and labels into
Kafka. Nothing here knows an example's fields: the event contract and the feature groups say what to write."""

from __future__ import annotations

import collections
import csv
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import confluent_kafka
import numpy as np
import numpy.typing as npt

from stream_scorer.batch import Float64Array
from stream_scorer.codec import Schemas, confluent_frame, encode
from stream_scorer.config import FeatureGroup
from stream_scorer.errors import DeliveryError
from stream_scorer.events.columns import as_input, getter, to_batch
from stream_scorer.events.contract import EventContract
from stream_scorer.features.freshness import FRESH, MISSING, STALE
from stream_scorer.features.store import RedisFeatureStore
from stream_scorer.labels.decode import LABEL_FIELDS, LabelFields

REPO = Path(__file__).resolve().parents[2]


class World(Protocol):
    """What every example world holds: its entities' keys and their feature-group values."""

    @property
    def group_values(self) -> dict[str, Float64Array]:
        """Group name -> (entities of its type, features)."""

    def entity_keys(self, entity: str) -> Sequence[str]: ...


class Example(Protocol):
    """The module ``examples/<name>/world.py``."""

    def make_world(self, seed: int = ...) -> Any: ...

    def simulate(
        self,
        world: Any,
        n: int,
        *,
        start_ms: int,
        rng: np.random.Generator,
        spacing_ms: float = ...,
        id_prefix: str = ...,
    ) -> tuple[list[dict[str, Any]], Float64Array]: ...

    def shift(self, record: dict[str, Any], factor: float) -> None: ...


def flatten(records: Sequence[Mapping[str, Any]], contract: EventContract) -> dict[str, list[Any]]:
    """Every leaf field as a dataset column named ``event.<path>``, as the worker reads it (the package's own
    columns): numbers (booleans 1/0, timestamps epoch ms) with NaN for null, enums and strings as text."""
    if not records:
        return {f"event.{path}": [] for path in contract.fields}
    batch = to_batch(records, [_Unsent()] * len(records), contract, tuple(contract.fields), 0)
    return {f"event.{path}": as_input(column).tolist() for path, column in batch.fields.items()}


class _Unsent:
    """Stands in for the message of a record that was never sent (a history row)."""

    def value(self) -> bytes | None:
        return None

    def key(self) -> bytes | None:
        return None

    def topic(self) -> str | None:
        return None

    def partition(self) -> int | None:
        return None

    def offset(self) -> int | None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (0, 0)


def group_columns(
    world: World, records: Sequence[Mapping[str, Any]], contract: EventContract, groups: Sequence[FeatureGroup]
) -> dict[str, Float64Array]:
    """Each group feature of each record's entity, as ``<group>.<feature>`` columns (every group fresh)."""
    columns: dict[str, Float64Array] = {}
    for group in groups:
        rows = {key: i for i, key in enumerate(world.entity_keys(group.entity))}
        read = getter(contract.entity(group.entity).key)
        index = np.array([rows[str(read(r))] for r in records], dtype=np.intp)
        block = world.group_values[group.name][index]
        columns.update({f"{group.name}.{f}": block[:, j] for j, f in enumerate(group.features)})
    return columns


def write_history(
    module: Example,
    world: World,
    contract: EventContract,
    groups: Sequence[FeatureGroup],
    path: Path,
    rows: int,
    *,
    seed: int = 11,
    end_ms: int | None = None,
) -> float:
    """A labelled training CSV of ``rows`` past events over the last 30 days. Returns the positive rate."""
    rng = np.random.default_rng(seed)
    end_ms = end_ms if end_ms is not None else int(time.time() * 1000)
    spacing = 30 * 86_400_000 / max(rows, 1)
    records, probability = module.simulate(
        world, rows, start_ms=end_ms - 30 * 86_400_000, rng=rng, spacing_ms=spacing, id_prefix="hist"
    )
    labels = (rng.random(rows) < probability).astype(np.int64)
    columns: dict[str, Any] = {**flatten(records, contract)}
    columns.update(group_columns(world, records, contract, groups))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([*columns, "label"])
        for i in range(rows):
            writer.writerow([*(_cell(c[i]) for c in columns.values()), int(labels[i])])
    return float(labels.mean())


def _cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    number = float(value)
    return "" if math.isnan(number) else repr(number)


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
        ids = list(world.entity_keys(group.entity))
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


def set_path(record: dict[str, Any], path: str, value: Any) -> None:
    """Set the value at a dotted path of a record."""
    *parents, name = path.split(".")
    for part in parents:
        record = record[part]
    record[name] = value


def publish(
    module: Example,
    world: World,
    producer: confluent_kafka.Producer,
    schemas: Schemas,
    contract: EventContract,
    *,
    events_topic: str,
    labels_topic: str,
    count: int,
    rate: float = 0.0,
    label_delay_seconds: float = 0.0,
    seed: int | None = None,
    schema_id: int | None = None,
    progress: Callable[[int], None] | None = None,
    shift_after: int | None = None,
    shift_factor: float = 1.0,
    label_fields: LabelFields = LABEL_FIELDS,
    clock_offset_seconds: float = 0.0,
) -> dict[str, Any]:
    """Publish ``count`` events keyed by their first entity's key, stamped with the time of sending (when the
    schema has a time field), at ``rate`` per second (0: as fast as possible); publish each one's label
    ``label_delay_seconds`` later. Each run draws fresh events and ids unless ``seed`` is given. With
    ``schema_id`` the events are framed in the Confluent wire format.
    From event ``shift_after`` on, the world's ``shift`` moves each event (drift; labels keep the truth of the
    unshifted event). ``clock_offset_seconds`` stamps events that much early (a producer in another time zone)."""
    records, labels = _events(module, world, count, seed, shift_after, shift_factor)
    key_of = getter(contract.entities[0].key) if contract.entities else None
    read_id = getter(contract.id_field)
    time_field = contract.time_field
    units = contract.fields[time_field].units_per_ms if time_field else 1
    due: collections.deque[tuple[float, dict[str, Any]]] = collections.deque()
    send, failures = _sender(producer)
    started = time.monotonic()
    chunk = max(1, min(200, int(rate / 200))) if rate > 0 else 200  # at a rate: a few events every 5 ms
    for start in range(0, count, chunk):
        time.sleep(max(0.0, started + start / rate - time.monotonic()) if rate > 0 else 0.0)
        now = time.time()
        for i in range(start, min(start + chunk, count)):
            record = records[i]
            if time_field:
                set_path(record, time_field, int((now - clock_offset_seconds) * 1000) * units)
            body = encode(schemas.events, record)
            key = None if key_of is None else str(key_of(record)).encode()
            send(events_topic, body if schema_id is None else confluent_frame(schema_id, body), key)
            label = {label_fields.event_id: read_id(record), label_fields.label: int(labels[i])}
            due.append((now + label_delay_seconds, label))
        _send_due_labels(due, time.time(), schemas, labels_topic, send, label_fields)
        producer.poll(0)
        if progress is not None:
            progress(min(start + chunk, count))
    while due:
        time.sleep(max(0.0, min(0.2, due[0][0] - time.time())))
        _send_due_labels(due, time.time(), schemas, labels_topic, send, label_fields)
        producer.poll(0)
    _flushed(producer, failures)
    return {
        "events": count,
        "labels": count,
        "positives": int(labels.sum()),
        "seconds": time.monotonic() - started,
        "event_ids": [str(read_id(r)) for r in records],
        "records": records,
        "label_values": labels,
    }


def _flushed(producer: confluent_kafka.Producer, failures: list[str]) -> None:
    remaining = producer.flush(60)
    if remaining or failures:
        raise DeliveryError(f"publish: {remaining} unacknowledged, {len(failures)} failed: {failures[:1]}")


def _events(
    module: Example, world: World, count: int, seed: int | None, shift_after: int | None, factor: float
) -> tuple[list[dict[str, Any]], npt.NDArray[np.int64]]:
    """The simulated records (shifted from ``shift_after`` on) and their labels, drawn from the truth."""
    rng = np.random.default_rng(seed)
    records, probability = module.simulate(world, count, start_ms=0, rng=rng)
    labels = (rng.random(count) < probability).astype(np.int64)
    for record in records[shift_after:] if shift_after is not None else []:
        module.shift(record, factor)
    return records, labels


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
    names: LabelFields,
) -> None:
    while due and due[0][0] <= now:
        _, label = due.popleft()
        label[names.label_time] = int(now * 1000)
        send(topic, encode(schemas.label, label), str(label[names.event_id]).encode())
