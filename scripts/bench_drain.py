"""Measure one worker draining a backlog on the real local stack (scripts/stack up first).

Publishes N synthetic events to a fresh topic (nothing else runs while the worker drains it), then runs the
real worker loop in this process until all N are scored, produced, acknowledged and committed. Repeats R
times at each batch size and prints medians: events/s (first non-empty poll to last commit), CPU seconds
per 1M events (process CPU, librdkafka's threads included) and where the time went per stage.

    .venv/bin/python scripts/bench_drain.py --events 100000 --repeats 3 --batch-sizes 250,1000
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
import uuid
from pathlib import Path

import confluent_kafka
import numpy as np
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry

from stream_scorer import wiring
from stream_scorer.codec import encode
from stream_scorer.config import BatchSettings, KafkaSettings, MetricsSettings, RedisSettings, Settings
from stream_scorer.model import artifact, train
from stream_scorer.synth import io as synth_io
from stream_scorer.synth.world import make_world, sample_events

REPO = Path(__file__).resolve().parents[1]
STAGES = ("poll", "decode", "enrich", "vectorize", "score", "encode", "produce", "commit")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", default="250,1000")
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--redis", default="redis://127.0.0.1:16379/0")
    args = parser.parse_args()

    workdir = REPO / ".demo" / "bench"
    world = make_world()
    synth_io.write_history(world, workdir / "history.csv", 50_000)
    model = train.train(train.read_csv(workdir / "history.csv"), name="fraud", version="bench")
    artifact.save(model, workdir / "model")
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    base = Settings(redis=RedisSettings(url=args.redis, key_prefix=prefix), model_path=workdir / "model")
    synth_io.seed_features(
        world,
        wiring.feature_store(base),
        base.feature_groups,
        now_ms=int(time.time() * 1000) + 3_600_000,
        stale_fraction=0.03,
        missing_fraction=0.02,
    )
    schemas = wiring.schemas(base)
    records, _ = sample_events(
        world, args.events, start_ms=int(time.time() * 1000), rng=np.random.default_rng(1), spacing_ms=0.001
    )
    values = [(r["card_id"].encode(), encode(schemas.transaction, r)) for r in records]
    admin = AdminClient({"bootstrap.servers": args.bootstrap})

    print(f"{args.events} events per run, {args.repeats} runs per batch size; medians")
    print(f"{'batch':>6s} {'events/s':>10s} {'cpu s/1M':>9s} " + " ".join(f"{s:>9s}" for s in STAGES) + "  (us/event)")
    for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
        runs = [run_once(args, admin, base, values, batch_size) for _ in range(args.repeats)]
        rate = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        stages = {s: statistics.median(r[2][s] for r in runs) for s in STAGES}
        print(f"{batch_size:>6d} {rate:>10,.0f} {cpu:>9.1f} " + " ".join(f"{stages[s]:>9.2f}" for s in STAGES))
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def run_once(args, admin, base: Settings, values, batch_size: int) -> tuple[float, float, dict[str, float]]:
    tag = uuid.uuid4().hex[:8]
    topics = {name: f"bench-{tag}-{name}" for name in ("in", "out", "labels", "dlq")}
    for future in admin.create_topics([NewTopic(t, 4, 1) for t in topics.values()]).values():
        future.result(30)
    try:
        producer = confluent_kafka.Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 20})
        for key, value in values:
            while True:
                try:
                    producer.produce(topics["in"], value, key)
                    break
                except BufferError:
                    producer.poll(0.05)
        assert producer.flush(60) == 0
        settings = Settings(
            kafka=KafkaSettings(
                bootstrap_servers=args.bootstrap,
                input_topic=topics["in"],
                output_topic=topics["out"],
                labels_topic=topics["labels"],
                dead_letter_topic=topics["dlq"],
                group_id=f"bench-{tag}",
                create_topics=False,
            ),
            batch=BatchSettings(max_events=batch_size, max_wait_seconds=0.1),
            redis=base.redis,
            metrics=MetricsSettings(enabled=False),
            model_path=base.model_path,
        )
        registry = CollectorRegistry()
        runtime = wiring.build_runtime(settings, registry)
        try:
            done, started, cpu_started = 0, 0.0, 0.0
            deadline = time.monotonic() + 600
            while done < len(values) and time.monotonic() < deadline:
                if done == 0:
                    started, cpu_started = time.perf_counter(), time.process_time()
                done += runtime.worker.step()
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        finally:
            runtime.close()
        if done < len(values):
            raise SystemExit(f"only {done} of {len(values)} events were processed")
        stages = {
            s: 1e6 * (registry.get_sample_value("stream_scorer_stage_duration_seconds_sum", {"stage": s}) or 0.0) / done
            for s in STAGES
        }
        return done / elapsed, 1e6 * cpu / done, stages
    finally:
        for future in admin.delete_topics(list(topics.values()), operation_timeout=30).values():
            future.result(30)


if __name__ == "__main__":
    main()
