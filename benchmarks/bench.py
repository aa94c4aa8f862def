"""Side-by-side benchmark on the real local stack: stream-scorer vs a naive per-event worker vs Quix Streams.

Same seeded events, features (Redis) and model for all. Each contender runs in its own process:

1. throughput: it drains a backlog of N events; events/s from the first event consumed to the last
   prediction acknowledged, CPU seconds per 1M events over the same span, peak RSS (medians of R runs);
2. latency: events are published at 25%, 50% and 90% of that contender's own median throughput for a few
   seconds; event -> prediction is the prediction's log-append time (set by the broker on the output
   topic) minus the event's event_time (set when it was published): p50 / p95 / p99.

Run it with scripts/bench (which builds the bench's own virtualenv with quixstreams).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import confluent_kafka
import numpy as np
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from examples.fraud.world import FEATURE_GROUPS as DEFAULT_FEATURE_GROUPS
from examples.fraud.world import make_world, sample_events
from stream_scorer import wiring
from stream_scorer.codec import encode, load_schemas
from stream_scorer.features.store import RedisFeatureStore
from stream_scorer.model import artifact
from tools.synth import io as synth_io
from tools.synth.examples import example_history, example_settings, train_example

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", default="250,1000,4000")
    parser.add_argument("--commit-interval", type=float, default=0.0, help="ours: batch.commit_interval_seconds")
    parser.add_argument("--reason-codes", type=int, default=3, help="ours: reason codes per prediction")
    parser.add_argument("--contenders", default="ours,naive,quix")
    parser.add_argument("--latency-seconds", type=float, default=8.0)
    parser.add_argument(
        "--profile", type=Path, default=None, help="record each run of ours with py-spy (--native) into this folder"
    )
    parser.add_argument("--cards", type=int, default=20_000, help="distinct cards (try 1000000)")
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--redis", default="redis://127.0.0.1:16379/0")
    parser.add_argument("--scaling", default="1,2", help="worker process counts for the scale-out run ('' to skip)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the contenders (with quixstreams)")
    parser.add_argument(
        "--shadow",
        action="store_true",
        help="instead: the cost of reason codes and of 1, 2 and 4 challengers vs the champion alone (ours, b=4000)",
    )
    parser.add_argument(
        "--label-join",
        action="store_true",
        help="instead: ours (b=4000) with and without the pending-prediction writes of the label join",
    )
    args = parser.parse_args()

    import redis

    workdir = REPO / ".demo" / "bench"
    print(f"preparing: {args.cards} cards, {args.events} events, model on 30000 rows of history", flush=True)
    world = make_world(
        seed=41, n_cards=args.cards, n_merchants=max(2_000, args.cards // 10), n_devices=int(args.cards * 1.2)
    )
    example_history("fraud", world, workdir / "history.csv", 30_000)
    artifact.save(train_example("fraud", workdir / "history.csv", version="bench"), workdir / "model")
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    client = redis.Redis.from_url(args.redis)
    synth_io.seed_features(
        world,
        RedisFeatureStore(client, prefix),
        DEFAULT_FEATURE_GROUPS,
        now_ms=int(time.time() * 1000) + 3_600_000,
        stale_fraction=0.03,
        missing_fraction=0.02,
    )
    schema = wiring.schemas(example_settings("fraud")).events
    records, _ = sample_events(
        world, args.events, start_ms=int(time.time() * 1000), rng=np.random.default_rng(1), spacing_ms=0.001
    )
    bench = Bench(args, prefix, workdir / "model", schema, records)
    if args.label_join:
        label_join_study(bench, args)
        keys = client.keys(f"{prefix}:*")
        if keys:
            client.delete(*keys)
        return
    if args.shadow:
        challengers = []
        for j, C in enumerate((0.3, 0.1, 0.03, 0.01)):
            path = workdir / f"challenger-{j}"
            model = train_example("fraud", workdir / "history.csv", model=f"challenger-{j}", version="bench", C=C)
            artifact.save(model, path)
            challengers.append(str(path))
        shadow_study(bench, args, challengers)
        keys = client.keys(f"{prefix}:*")
        if keys:
            client.delete(*keys)
        return
    contenders = [("ours", int(b)) for b in args.batch_sizes.split(",")] if "ours" in args.contenders else []
    contenders += [(name, 1) for name in ("naive", "quix") if name in args.contenders.split(",")]

    results: dict[tuple[str, int], dict[str, Any]] = {}
    for name, batch in contenders:
        runs = [bench.drain(name, batch) for _ in range(args.repeats)]
        results[(name, batch)] = median_of(runs)
        print(f"  {label(name, batch):14s} {results[(name, batch)]['rate']:>9,.0f} events/s", flush=True)
    best_ours = max((k for k in results if k[0] == "ours"), key=lambda k: results[k]["rate"], default=None)
    latency_targets = [k for k in results if k[0] != "ours" or k == best_ours]
    for key in latency_targets:
        results[key]["latency"] = {f: bench.latency(key[0], key[1], results[key]["rate"] * f) for f in (0.25, 0.5, 0.9)}
    scaling = {int(w): [bench.scale_out(int(w)) for _ in range(args.repeats)] for w in args.scaling.split(",") if w}
    keys = client.keys(f"{prefix}:*")
    if keys:
        client.delete(*keys)
    print_report(results, best_ours, args)
    if scaling:
        base = statistics.median(scaling[min(scaling)])
        print("\nscale-out with `stream-scorer run --workers N` (4 partitions; first to last prediction appended):")
        for workers, rates in scaling.items():
            rate = statistics.median(rates)
            print(f"  {workers} worker(s): {rate:>9,.0f} events/s  ({rate / base:.2f}x)  on {os.cpu_count()} cores")


def shadow_study(bench: Bench, args: argparse.Namespace, challengers: list[str]) -> None:
    """Champion alone, + reason codes, + 1/2/4 challengers: runs interleaved round-robin, then medians."""
    configs = [("champion alone", 0, 0), ("+ 3 reason codes", 3, 0)]
    configs += [(f"+ reasons + {c} challenger{'s' if c > 1 else ''}", 3, c) for c in (1, 2, 4)]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in configs}
    for repeat in range(args.repeats):
        for name, reasons, count in configs:  # side by side: every config once per round
            runs[name].append(bench.drain("ours", 4000, reasons, tuple(challengers[:count])))
            print(f"  round {repeat + 1} {name:32s} {runs[name][-1]['events'] / runs[name][-1]['seconds']:>9,.0f} ev/s")
    results = {name: median_of(r) for name, r in runs.items()}
    base = results["champion alone"]
    print(f"\n{args.events} events, ours b=4000, medians of {args.repeats} interleaved rounds; {os.cpu_count()} cores")
    print(f"{'configuration':34s} {'events/s':>9s} {'CPU s/1M':>9s} {'CPU vs alone':>12s} {'score+enc us/ev':>16s}")
    for name, r in results.items():
        stage = r["stages"]["score"] + r["stages"]["vectorize"] + r["stages"]["encode"]
        print(
            f"{name:34s} {r['rate']:>9,.0f} {r['cpu_per_m']:>9.1f} {r['cpu_per_m'] / base['cpu_per_m']:>11.2f}x "
            f"{stage:>16.2f}"
        )


def label_join_study(bench: Bench, args: argparse.Namespace) -> None:
    """The worker's cost of writing pending predictions for the label join: with and without, interleaved."""
    runs: dict[str, list[dict[str, Any]]] = {"without pending writes": [], "with pending writes": []}
    for repeat in range(args.repeats):
        for name in runs:
            runs[name].append(bench.drain("ours", 4000, pending=name.startswith("with ")))
            rate = runs[name][-1]["events"] / runs[name][-1]["seconds"]
            print(f"  round {repeat + 1} {name:24s} {rate:>9,.0f} ev/s", flush=True)
    results = {name: median_of(r) for name, r in runs.items()}
    base = results["without pending writes"]
    print(f"\n{args.events} events, ours b=4000, medians of {args.repeats} interleaved rounds; {os.cpu_count()} cores")
    print(f"{'configuration':26s} {'events/s':>9s} {'CPU s/1M':>9s} {'CPU vs without':>15s} {'pending us/ev':>14s}")
    for name, r in results.items():
        pending = r["stages"].get("pending", 0.0)
        ratio = r["cpu_per_m"] / base["cpu_per_m"]
        print(f"{name:26s} {r['rate']:>9,.0f} {r['cpu_per_m']:>9.1f} {ratio:>14.2f}x {pending:>14.2f}")


def label(name: str, batch: int) -> str:
    return f"ours b={batch}" if name == "ours" else name


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out = {
        "rate": statistics.median(r["events"] / r["seconds"] for r in runs),
        "cpu_per_m": statistics.median(1e6 * r["cpu_seconds"] / r["events"] for r in runs),
        "rss": statistics.median(r["peak_rss_mb"] for r in runs),
    }
    if "stage_us_per_event" in runs[0]:
        out["stages"] = {
            s: statistics.median(r["stage_us_per_event"][s] for r in runs) for s in runs[0]["stage_us_per_event"]
        }
    return out


class Bench:
    def __init__(self, args: argparse.Namespace, prefix: str, model: Path, schema: Any, records: list[dict[str, Any]]):
        self.args = args
        self.prefix = prefix
        self.model = model
        self.schema = schema
        self.records = records
        self.admin = AdminClient({"bootstrap.servers": args.bootstrap})

    def topics(self) -> tuple[str, str]:
        tag = uuid.uuid4().hex[:8]
        names = (f"bench-{tag}-in", f"bench-{tag}-out")
        new = [NewTopic(names[0], 4, 1), NewTopic(names[1], 4, 1, config={"message.timestamp.type": "LogAppendTime"})]
        for future in self.admin.create_topics(new).values():
            future.result(30)
        return names

    def drop(self, names: tuple[str, str]) -> None:
        for future in self.admin.delete_topics(list(names)).values():
            future.result(30)

    def contender(
        self,
        name: str,
        batch: int,
        events: int,
        names: tuple[str, str],
        reason_codes: int | None = None,
        challengers: tuple[str, ...] = (),
        pending: bool = True,
    ) -> subprocess.Popen[str]:
        command = [
            self.args.python,
            str(REPO / "benchmarks" / "contenders.py"),
            name,
            "--events",
            str(events),
            "--batch",
            str(batch),
            "--bootstrap",
            self.args.bootstrap,
            "--redis",
            self.args.redis,
            "--prefix",
            self.prefix,
            "--model",
            str(self.model),
            "--input",
            names[0],
            "--output",
            names[1],
            "--group",
            f"g-{names[0]}",
            "--commit-interval",
            str(self.args.commit_interval),
            "--reason-codes",
            str(self.args.reason_codes if reason_codes is None else reason_codes),
        ]
        for path in challengers:
            command += ["--challenger", path]
        if not pending:
            command.append("--no-pending")
        if self.args.profile is not None and name == "ours":
            self.args.profile.mkdir(parents=True, exist_ok=True)
            out = self.args.profile / f"ours-b{batch}-{uuid.uuid4().hex[:6]}.txt"
            spy = str(Path(self.args.python).with_name("py-spy"))
            command = [spy, "record", "--native", "--rate", "250", "--format", "raw", "-o", str(out), "--", *command]
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)

    def publish(self, topic: str, rate: float = 0.0, seconds: float = 0.0) -> int:
        producer = confluent_kafka.Producer({"bootstrap.servers": self.args.bootstrap, "linger.ms": 5})
        count = len(self.records) if rate <= 0 else int(rate * seconds)
        started = time.monotonic()
        for i in range(count):
            record = self.records[i % len(self.records)]
            if rate > 0 and i % 50 == 0:
                time.sleep(max(0.0, started + i / rate - time.monotonic()))
                now_ms = int(time.time() * 1000)
            if rate > 0:
                record = {**record, "event_id": f"{record['event_id']}-{i}", "event_time": now_ms}
            while True:
                try:
                    producer.produce(topic, encode(self.schema, record), record["card_id"].encode())
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        producer.flush(60)
        return count

    def drain(
        self,
        name: str,
        batch: int,
        reason_codes: int | None = None,
        challengers: tuple[str, ...] = (),
        pending: bool = True,
    ) -> dict[str, Any]:
        names = self.topics()
        try:
            self.publish(names[0])
            process = self.contender(name, batch, len(self.records), names, reason_codes, challengers, pending)
            out, _ = process.communicate(timeout=900)
            return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])  # py-spy talks too
        finally:
            self.drop(names)

    def latency(self, name: str, batch: int, rate: float) -> dict[str, float]:
        names = self.topics()
        try:
            count = int(rate * self.args.latency_seconds)
            process = self.contender(name, batch, count, names)
            time.sleep(4)  # let it join the group before the clock starts
            threading.Thread(target=self.publish, args=(names[0], rate, self.args.latency_seconds)).start()
            process.communicate(timeout=900)
            latencies = self.read_latencies(names[1], count)
        finally:
            self.drop(names)
        p50, p95, p99 = np.percentile(latencies, [50, 95, 99]).tolist() if latencies else (float("nan"),) * 3
        return {"rate": rate, "p50": p50, "p95": p95, "p99": p99}

    def scale_out(self, workers: int) -> float:
        """Drain the backlog with `stream-scorer run --workers N`; events/s from the output's append times."""
        names = self.topics()
        try:
            self.publish(names[0])
            env = {
                **os.environ,
                "STREAM_SCORER_KAFKA__BOOTSTRAP_SERVERS": self.args.bootstrap,
                "STREAM_SCORER_KAFKA__INPUT_TOPIC": names[0],
                "STREAM_SCORER_KAFKA__OUTPUT_TOPIC": names[1],
                "STREAM_SCORER_KAFKA__DEAD_LETTER_TOPIC": names[1],
                "STREAM_SCORER_KAFKA__GROUP_ID": f"g-{names[0]}",
                "STREAM_SCORER_KAFKA__CREATE_TOPICS": "false",
                "STREAM_SCORER_REDIS__URL": self.args.redis,
                "STREAM_SCORER_REDIS__KEY_PREFIX": self.prefix,
                "STREAM_SCORER_CONFIG": str(REPO / "examples" / "fraud" / "settings.toml"),
                "STREAM_SCORER_MODEL_PATH": str(self.model),
                "STREAM_SCORER_METRICS__ENABLED": "false",
                "STREAM_SCORER_LOG_LEVEL": "WARNING",
                "PYTHONWARNINGS": "ignore",
            }
            command = [self.args.python, "-m", "stream_scorer", "run", "--workers", str(workers)]
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                times = self.append_times(names[1], len(self.records))
            finally:
                process.terminate()
                process.wait(120)
        finally:
            self.drop(names)
        return len(times) / ((max(times) - min(times)) / 1000.0)

    def append_times(self, topic: str, expect: int) -> list[int]:
        consumer = confluent_kafka.Consumer({"bootstrap.servers": self.args.bootstrap, "group.id": uuid.uuid4().hex})
        consumer.assign([TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in range(4)])
        out: list[int] = []
        deadline = time.monotonic() + 300
        while len(out) < expect and time.monotonic() < deadline:
            out.extend(m.timestamp()[1] for m in consumer.consume(1000, 0.3) if m.error() is None)
        consumer.close()
        return out

    def read_latencies(self, topic: str, expect: int) -> list[float]:
        from stream_scorer.codec import decode

        prediction = load_schemas(REPO / "schemas").prediction
        consumer = confluent_kafka.Consumer({"bootstrap.servers": self.args.bootstrap, "group.id": uuid.uuid4().hex})
        consumer.assign([TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in range(4)])
        out: list[float] = []
        deadline = time.monotonic() + 30
        while len(out) < expect and time.monotonic() < deadline:
            for m in consumer.consume(1000, 0.3):
                if m.error() is None:
                    out.append(m.timestamp()[1] - decode(prediction, m.value())["event_time"])
        consumer.close()
        return out


def print_report(results: dict[tuple[str, int], dict[str, Any]], best: tuple[str, int] | None, args: Any) -> None:
    print(
        f"\n{args.events} events, {args.cards} cards, medians of {args.repeats} runs; machine: {os.cpu_count()} cores"
    )
    print(
        f"{'contender':14s} {'events/s':>10s} {'CPU s/1M':>9s} {'RSS MiB':>8s}   "
        "latency p50/p95/p99 ms at 25% | 50% | 90% of max"
    )
    for (name, batch), r in results.items():
        lat = r.get("latency")
        text = " | ".join(f"{v['p50']:.0f}/{v['p95']:.0f}/{v['p99']:.0f}" for v in lat.values()) if lat else "-"
        print(f"{label(name, batch):14s} {r['rate']:>10,.0f} {r['cpu_per_m']:>9.1f} {r['rss']:>8.0f}   {text}")
    if best is not None:
        print(
            f"\nper-stage time of {label(*best)} (us per event): "
            + ", ".join(f"{s} {v:.2f}" for s, v in results[best]["stages"].items())
        )
        for other in ("naive", "quix"):
            if (other, 1) in results:
                print(
                    f"{label(*best)} / {other}: {results[best]['rate'] / results[(other, 1)]['rate']:.1f}x events/s, "
                    f"{results[(other, 1)]['cpu_per_m'] / results[best]['cpu_per_m']:.1f}x less CPU per event"
                )


if __name__ == "__main__":
    main()
