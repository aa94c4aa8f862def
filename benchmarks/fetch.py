"""Reading a batch of features from Redis: the old path (one MGET, then parsing) vs the store's fetch (one MGET,
plus one read-only script call when some keys are missing, to tell missing keys from keys of another type;
stream_scorer.features.store.RedisFeatureStore.fetch), the fetch both in Python (redis-py packs the command,
numpy parses the records) and with the native extension packing the MGET and parsing the records. Batches of
--batch events x the 4 default feature groups (16k keys at 4000 events), with 0% and 20% of the keys missing;
interleaved rounds, medians, us per event.

Needs the local Redis (scripts/stack up). Run: .venv/bin/python -m benchmarks.fetch
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import cast

import numpy as np
import redis

from examples.fraud.world import FEATURE_GROUPS as DEFAULT_FEATURE_GROUPS
from stream_scorer.codec.native import native_available
from stream_scorer.config import FeatureGroup
from stream_scorer.features.layout import GroupValues, unpack_many
from stream_scorer.features.nodes import SingleNode
from stream_scorer.features.store import RedisFeatureStore

GROUPS = DEFAULT_FEATURE_GROUPS


def mget_only(
    client: redis.Redis, prefix: str, groups: Sequence[FeatureGroup], ids: Mapping[str, Sequence[str]]
) -> dict[str, GroupValues]:
    """The fetch before the type check: one MGET, replies parsed per group."""
    keys = [f"{prefix}:{g.name}:{e}" for g in groups for e in ids[g.entity]]
    replies = cast("list[bytes | None]", client.mget(keys))  # bytes: decode_responses=False
    out, start = {}, 0
    for g in groups:
        n = len(ids[g.entity])
        out[g.name] = unpack_many(replies[start : start + n], len(g.features), g.version, native=False)
        start += n
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis", default="redis://127.0.0.1:16379/0")
    parser.add_argument("--batch", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batches-per-round", type=int, default=10)
    args = parser.parse_args()
    if not native_available():
        parser.error("the native extension is not installed (scripts/install builds it)")
    client = redis.Redis.from_url(args.redis)
    prefix = f"bench-fetch-{uuid.uuid4().hex[:8]}"
    store = RedisFeatureStore(client, prefix)
    python_store = RedisFeatureStore(SingleNode(client, native=False), prefix, native=False)
    n = args.batch
    rng = np.random.default_rng(1)
    # Per missing share, the batch's ids by entity; every group of every entity is written except that share.
    batches: dict[str, dict[str, list[str]]] = {}
    for label, missing in (("0% missing", 0.0), ("20% missing", 0.2)):
        ids = {entity: [f"{label[:2]}-{entity}-{i:06d}" for i in range(n)] for entity in ("card", "merchant", "device")}
        for group in GROUPS:
            written = [e for e in ids[group.entity] if rng.random() >= missing]
            values = rng.random((len(written), len(group.features)))
            store.put_many(group, written, values, np.full(len(written), int(time.time() * 1000)))
        batches[label] = ids

    paths: dict[str, Callable[[dict[str, list[str]]], dict[str, GroupValues]]] = {
        "MGET only": lambda ids: mget_only(client, prefix, GROUPS, ids),
        "fetch, Python": lambda ids: python_store.fetch(GROUPS, ids),
        "fetch, native": lambda ids: store.fetch(GROUPS, ids),
    }
    timings: dict[tuple[str, str], list[tuple[float, float]]] = {(b, p): [] for b in batches for p in paths}
    try:
        for ids in batches.values():  # warm up (loads the script) and check that both paths agree
            old, python, new = (paths[p](ids) for p in ("MGET only", "fetch, Python", "fetch, native"))
            for g in GROUPS:
                assert (old[g.name].present == new[g.name].present).all() and not new[g.name].malformed.any()
                assert (python[g.name].values == new[g.name].values).all()
        events = n * args.batches_per_round
        for _ in range(args.rounds):
            for label, ids in batches.items():
                for name, fetch in paths.items():
                    wall, cpu = time.perf_counter(), time.process_time()
                    for _ in range(args.batches_per_round):
                        fetch(ids)
                    timings[label, name].append(
                        (1e6 * (time.perf_counter() - wall) / events, 1e6 * (time.process_time() - cpu) / events)
                    )
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=10_000))
        for start in range(0, len(keys), 10_000):
            client.delete(*keys[start : start + 10_000])
        client.close()
    print(
        f"batch {n} events x {len(GROUPS)} groups ({n * len(GROUPS)} keys), "
        f"medians of {args.rounds} interleaved rounds of {args.batches_per_round} batches"
    )
    for label in batches:
        for name in paths:
            wall = statistics.median(t[0] for t in timings[label, name])
            cpu = statistics.median(t[1] for t in timings[label, name])
            print(f"{label:12s} {name:14s} {wall:6.2f} us/event wall, {cpu:6.2f} us/event client CPU")


if __name__ == "__main__":
    main()
