"""Writing a batch of pending predictions to Redis: a pipeline of one SET per event vs the one-script write
(stream_scorer.labels.pending.RedisPendingStore), side by side, interleaved, medians.

Needs the local Redis (scripts/stack up). Run: .venv/bin/python -m benchmarks.pending
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

import numpy as np
import redis

from stream_scorer.labels.pending import RedisPendingStore, models_header, pack_many


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis", default="redis://127.0.0.1:16379/0")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batches-per-round", type=int, default=10)
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis)
    prefix = f"bench-pending-{uuid.uuid4().hex[:8]}"
    store = RedisPendingStore(client, prefix, horizon_seconds=600, bucket_seconds=60)
    n = args.batch
    rng = np.random.default_rng(1)
    records = pack_many(
        models_header([("fraud", "20261128T002406Z")]), np.arange(n), 5, rng.random((n, 1)), rng.random((n, 1)) > 0.5
    )

    def pipeline(ids: list[str]) -> None:
        pipe = client.pipeline(transaction=False)
        for event_id, record in zip(ids, records, strict=True):
            pipe.set(store.key("pending", event_id), record, px=600_000)
        pipe.execute()

    def script(ids: list[str]) -> None:
        store.write(ids, records, 5)

    timings: dict[str, list[float]] = {"pipeline of SETs": [], "one script": []}
    try:
        for round_ in range(args.rounds):
            for name, write in (("pipeline of SETs", pipeline), ("one script", script)):
                batches = [[f"{name[0]}{round_}-{b}-{i:08d}" for i in range(n)] for b in range(args.batches_per_round)]
                wall, cpu = time.perf_counter(), time.process_time()
                for ids in batches:
                    write(ids)
                timings[name].append(1e6 * (time.perf_counter() - wall) / (n * args.batches_per_round))
                timings[name + " cpu"] = [
                    *timings.get(name + " cpu", []),
                    1e6 * (time.process_time() - cpu) / (n * args.batches_per_round),
                ]
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=10_000))
        for start in range(0, len(keys), 10_000):
            client.delete(*keys[start : start + 10_000])
    print(f"batch {n}, medians of {args.rounds} interleaved rounds of {args.batches_per_round} batches")
    for name in ("pipeline of SETs", "one script"):
        wall, cpu = statistics.median(timings[name]), statistics.median(timings[name + " cpu"])
        print(f"{name:18s} {wall:6.2f} us/event wall, {cpu:6.2f} us/event client CPU")


if __name__ == "__main__":
    main()
