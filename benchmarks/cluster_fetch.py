"""Reading a batch of features on a Redis Cluster against one Redis: the store's fetch on the single server
(one MGET), on the cluster with hash tags (one MGET per tag, one pipeline per primary), and the untagged
alternative on the cluster (redis-py's ``mget_nonatomic``: the keys split by slot). Batches of --batch events x
the 4 default feature groups, every key present; interleaved rounds, medians, us per event, wall and client CPU.

Needs both stacks (scripts/stack up; scripts/stack up cluster). Run: .venv/bin/python -m benchmarks.cluster_fetch
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable

import numpy as np
import redis
from redis.cluster import RedisCluster

from examples.fraud.world import FEATURE_GROUPS as GROUPS
from stream_scorer.features.store import RedisFeatureStore

Client = redis.Redis | RedisCluster


def seeded(client: Client, prefix: str, tags: int, ids: dict[str, list[str]]) -> RedisFeatureStore:
    """A store with every group of every id written."""
    store = RedisFeatureStore(client, prefix, tags)
    rng = np.random.default_rng(1)
    for group in GROUPS:
        values = rng.random((len(ids[group.entity]), len(group.features)))
        store.put_many(group, ids[group.entity], values, np.full(len(values), int(time.time() * 1000)))
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis", default="redis://127.0.0.1:16379/0")
    parser.add_argument("--cluster", default="redis://127.0.0.1:17001/0")
    parser.add_argument("--batch", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batches-per-round", type=int, default=10)
    args = parser.parse_args()
    n = args.batch
    ids = {entity: [f"{entity}-{i:06d}" for i in range(n)] for entity in ("card", "merchant", "device")}
    single = redis.Redis.from_url(args.redis)
    cluster = RedisCluster.from_url(args.cluster)
    prefix = f"bench-cfetch-{uuid.uuid4().hex[:8]}"
    on_single = seeded(single, prefix, 1, ids)
    tagged = seeded(cluster, prefix + "t", 256, ids)
    untagged = seeded(cluster, prefix + "u", 1, ids)  # written through the cluster; read key by slot below
    keys = [untagged.key(g, e) for g in GROUPS for e in ids[g.entity]]
    paths: dict[str, Callable[[], object]] = {
        "single Redis, one MGET": lambda: on_single.fetch(GROUPS, ids),
        "cluster, 256 hash tags": lambda: tagged.fetch(GROUPS, ids),
        "cluster, mget_nonatomic": lambda: cluster.mget_nonatomic(keys),
    }
    timings: dict[str, list[tuple[float, float]]] = {p: [] for p in paths}
    try:
        a, b = on_single.fetch(GROUPS, ids), tagged.fetch(GROUPS, ids)
        assert all(np.array_equal(a[g.name].values, b[g.name].values) for g in GROUPS)  # the same values read
        assert all(v is not None for v in cluster.mget_nonatomic(keys))
        events = n * args.batches_per_round
        for _ in range(args.rounds):
            for name, fetch in paths.items():
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(args.batches_per_round):
                    fetch()
                timings[name].append(
                    (1e6 * (time.perf_counter() - wall) / events, 1e6 * (time.process_time() - cpu) / events)
                )
    finally:
        for client, pattern in ((single, f"{prefix}:*"), (cluster, f"{prefix}*")):
            for key in list(client.scan_iter(match=pattern, count=10_000)):
                client.delete(key)
        single.close()
        cluster.close()
    print(
        f"batch {n} events x {len(GROUPS)} groups ({n * len(GROUPS)} keys), "
        f"medians of {args.rounds} interleaved rounds of {args.batches_per_round} batches"
    )
    for name in paths:
        wall = statistics.median(t[0] for t in timings[name])
        cpu = statistics.median(t[1] for t in timings[name])
        print(f"{name:26s} {wall:6.2f} us/event wall, {cpu:6.2f} us/event client CPU")


if __name__ == "__main__":
    main()
