"""The three workers that benchmarks/bench.py runs side by side, each in its own process.

    python benchmarks/contenders.py ours  --events N --batch B  ...
    python benchmarks/contenders.py naive --events N ...
    python benchmarks/contenders.py quix  --events N ...   (needs quixstreams: the bench's own venv)

Each reads the input topic in its own consumer group, writes Prediction records (the same schema) to
its output topic, stops after N events, and prints one JSON line: events, seconds (first event consumed
to last prediction acknowledged), CPU seconds over the same span, peak RSS, and for ours the per-stage
time. All three read the same features from the same Redis and score the same model.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import struct
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("contender", choices=["ours", "naive", "quix"])
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--commit-interval", type=float, default=0.0)
    parser.add_argument("--reason-codes", type=int, default=3)
    parser.add_argument("--challenger", action="append", default=[], help="ours: a challenger artifact (repeatable)")
    parser.add_argument("--no-pending", action="store_true", help="ours: no pending-prediction writes (label join)")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--group", required=True)
    args = parser.parse_args()
    result = {"ours": run_ours, "naive": run_naive, "quix": run_quix}[args.contender](args)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result), flush=True)


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ru_maxrss: on Linux that keeps the parent's peak across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Span:
    """Wall and CPU time from the first event consumed."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def start(self) -> None:
        if not self.wall:
            self.wall, self.cpu = time.perf_counter(), time.process_time()

    def result(self, events: int) -> dict[str, Any]:
        return {
            "events": events,
            "seconds": time.perf_counter() - self.wall,
            "cpu_seconds": time.process_time() - self.cpu,
        }


def run_ours(args: argparse.Namespace) -> dict[str, Any]:
    import dataclasses

    from prometheus_client import CollectorRegistry

    from stream_scorer import wiring
    from stream_scorer.config import (
        BatchSettings,
        KafkaSettings,
        LabelSettings,
        MetricsSettings,
        RedisSettings,
    )
    from tools.synth.examples import example_settings

    fraud = example_settings("fraud")
    settings = dataclasses.replace(
        fraud,
        kafka=KafkaSettings(
            bootstrap_servers=args.bootstrap,
            input_topic=args.input,
            output_topic=args.output,
            labels_topic=args.output,
            dead_letter_topic=args.output,
            group_id=args.group,
            create_topics=False,
            schema_ids=fraud.kafka.schema_ids,
        ),
        batch=BatchSettings(max_events=args.batch, commit_interval_seconds=args.commit_interval),
        redis=RedisSettings(url=args.redis, key_prefix=args.prefix),
        metrics=MetricsSettings(enabled=False),
        model_path=args.model,
        reason_codes=args.reason_codes,
        challengers=tuple(args.challenger),
        labels=LabelSettings(enabled=not args.no_pending),
    )
    registry = CollectorRegistry()
    runtime = wiring.build_runtime(settings, registry)
    wiring.tune_garbage_collector()  # as `stream-scorer run` does
    span, done = Span(), 0
    try:
        while done < args.events:
            polled = runtime.worker.step()
            if polled:
                span.start()  # the first batch's time counts from here; its poll wait is not included
                done += polled
        runtime.worker.commit_window()
        result = span.result(done)
    finally:
        runtime.close()
    stages = ("poll", "decode", "enrich", "vectorize", "score", "encode", "produce", "pending", "commit")
    result["stage_us_per_event"] = {
        s: 1e6 * (registry.get_sample_value("stream_scorer_stage_duration_seconds_sum", {"stage": s}) or 0) / done
        for s in stages
    }
    return result


class Scoring:
    """What the naive and Quix workers share: the schemas, the model, feature lookups and Python scoring."""

    def __init__(self, args: argparse.Namespace) -> None:
        import redis

        from examples.fraud.world import FEATURE_GROUPS as DEFAULT_FEATURE_GROUPS
        from stream_scorer import wiring
        from stream_scorer.model import artifact
        from tools.synth.examples import example_settings

        self.schemas = wiring.schemas(example_settings("fraud"))
        self.model = artifact.load(args.model)
        self.groups = DEFAULT_FEATURE_GROUPS
        self.redis = redis.Redis.from_url(args.redis)
        self.prefix = args.prefix

    def features_one(
        self, event: dict[str, Any], now_ms: int, per_entity: bool
    ) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """The event's feature groups, parsed with struct; stale or missing -> default. ``per_entity``: one
        Redis round trip per entity (the naive way); otherwise one MGET for the event (the Quix way)."""
        keys = [f"{self.prefix}:{g.name}:{event[g.entity + '_id']}" for g in self.groups]
        if per_entity:
            by_key: dict[str, Any] = {}
            for entity in ("card", "merchant", "device"):
                mine = [k for k, g in zip(keys, self.groups, strict=True) if g.entity == entity]
                by_key.update(zip(mine, self.redis.mget(mine), strict=True))
            blobs = [by_key[k] for k in keys]
        else:
            blobs = self.redis.mget(keys)
        values: dict[str, float] = {}
        freshness = []
        for index, group in enumerate(self.groups):
            blob = blobs[index]
            status, age = "MISSING", None
            if blob is not None and len(blob) == 16 + 4 * len(group.features):
                updated = struct.unpack_from("<q", blob, 8)[0]
                age = max(now_ms - updated, 0)
                status = "FRESH" if age <= group.max_age_seconds * 1000 else "STALE"
                if status == "FRESH":
                    for name, value in zip(
                        group.features, struct.unpack_from(f"<{len(group.features)}f", blob, 16), strict=True
                    ):
                        values[f"{group.name}.{name}"] = value
            freshness.append({"group": group.name, "status": status, "age_ms": age})
        return values, freshness

    def score_one(self, event: dict[str, Any], consumed_ms: int, per_entity: bool = False) -> dict[str, Any]:
        from examples.fraud.world import HIGH_RISK_MCC
        from stream_scorer.model.score import score_one

        now_ms = int(time.time() * 1000)
        features, freshness = self.features_one(event, now_ms, per_entity)
        angle = (event["event_time"] % 86_400_000) * 2 * math.pi / 86_400_000
        features.update(
            {
                "event.amount_log": math.log1p(event["amount"]),
                "event.hour_sin": math.sin(angle),
                "event.hour_cos": math.cos(angle),
                "event.is_ecom": float(event["channel"] == "ECOM"),
                "event.is_atm": float(event["channel"] == "ATM"),
                "event.card_not_present": float(not event["card_present"]),
                "event.cross_border": float(event["country"] != event["card_country"]),
                "event.manual_entry": float(event["entry_mode"] == "MANUAL"),
                "event.high_risk_mcc": float(event["merchant_category_code"] in HIGH_RISK_MCC.tolist()),
            }
        )
        row = [
            features.get(name, float(d)) for name, d in zip(self.model.feature_names, self.model.defaults, strict=True)
        ]
        p = score_one(row, self.model)
        return {
            "event_id": event["event_id"],
            "model_name": self.model.name,
            "model_version": self.model.version,
            "score": p,
            "threshold": self.model.threshold,
            "decision": p >= self.model.threshold,
            "imputed": any(f["status"] != "FRESH" for f in freshness),
            "feature_freshness": freshness,
            "event_time": event["event_time"],
            "consumed_at": consumed_ms,
            "scored_at": now_ms,
        }


def run_naive(args: argparse.Namespace) -> dict[str, Any]:
    """The tutorial worker: one message at a time, a Redis round trip per group, one produce per event."""
    import confluent_kafka
    import fastavro

    scoring = Scoring(args)
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": args.bootstrap, "group.id": args.group, "auto.offset.reset": "earliest"}
    )  # auto commit, as tutorials do
    producer = confluent_kafka.Producer({"bootstrap.servers": args.bootstrap})
    consumer.subscribe([args.input])
    span, done = Span(), 0
    schema, out_schema = scoring.schemas.events, scoring.schemas.prediction
    while done < args.events:
        message = consumer.poll(1.0)
        if message is None or message.error():
            continue
        span.start()
        event = fastavro.schemaless_reader(io.BytesIO(message.value()), schema)
        prediction = scoring.score_one(event, int(time.time() * 1000), per_entity=True)
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, out_schema, prediction)
        producer.produce(args.output, buffer.getvalue(), message.key())
        producer.poll(0)
        done += 1
    producer.flush(60)
    result = span.result(done)
    consumer.close()
    return result


def run_quix(args: argparse.Namespace) -> dict[str, Any]:
    """The same job written the Quix Streams way: a StreamingDataFrame with apply steps and to_topic."""
    from quixstreams import Application
    from quixstreams.models.serializers.avro import AvroDeserializer, AvroSerializer

    scoring = Scoring(args)
    files = {"transaction": REPO / "examples" / "fraud", "prediction": REPO / "schemas"}
    raw_schemas = {n: json.loads((folder / f"{n}.avsc").read_text()) for n, folder in files.items()}
    for schema in raw_schemas.values():  # epoch-ms integers, as in the other two workers
        for f in schema["fields"]:
            if isinstance(f["type"], dict):
                f["type"].pop("logicalType", None)
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        processing_guarantee="at-least-once",
        auto_create_topics=False,
    )
    source = app.topic(
        args.input, key_deserializer="bytes", value_deserializer=AvroDeserializer(raw_schemas["transaction"])
    )
    sink = app.topic(args.output, key_serializer="bytes", value_serializer=AvroSerializer(raw_schemas["prediction"]))
    span, state = Span(), {"done": 0}

    def score(event: dict[str, Any]) -> dict[str, Any]:
        span.start()
        state["done"] += 1
        return scoring.score_one(event, int(time.time() * 1000))

    def stop_when_done(_: dict[str, Any]) -> None:
        if state["done"] >= args.events:
            app.stop()

    sdf = app.dataframe(source)
    sdf = sdf.apply(score)
    sdf.to_topic(sink)
    sdf.update(stop_when_done)
    app.run()
    return span.result(state["done"])


if __name__ == "__main__":
    main()
