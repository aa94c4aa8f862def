"""Read predictions from the output topic and show live progress and a summary (the demo's window)."""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import confluent_kafka
import numpy as np
from confluent_kafka import TopicPartition

from stream_scorer import wiring
from stream_scorer.codec import decode
from stream_scorer.codec.schemas import CONFLUENT_HEADER
from stream_scorer.config import Settings
from stream_scorer.errors import KafkaError


@dataclass
class PredictionStats:
    """What has been read so far."""

    event_ids: set[str] = field(default_factory=set)
    duplicates: int = 0
    scored_at: list[int] = field(default_factory=list)
    latency_ms: list[int] = field(default_factory=list)  # broker timestamp of the prediction - event_time
    scoring_ms: list[int] = field(default_factory=list)  # scored_at - event_time
    decisions: int = 0
    imputed: int = 0
    status: dict[str, dict[str, int]] = field(default_factory=dict)
    unreadable: int = 0  # records this prediction schema cannot read (written by an older one, or not ours)

    def add(self, record: dict[str, Any], broker_ms: int) -> None:
        if record["event_id"] in self.event_ids:
            self.duplicates += 1
            return
        self.event_ids.add(record["event_id"])
        self.scored_at.append(record["scored_at"])
        self.latency_ms.append(broker_ms - record["event_time"])
        self.scoring_ms.append(record["scored_at"] - record["event_time"])
        self.decisions += record["decision"]
        self.imputed += record["imputed"]
        for item in record["feature_freshness"]:
            counts = self.status.setdefault(item["group"], {"FRESH": 0, "STALE": 0, "MISSING": 0})
            counts[item["status"]] += 1

    @property
    def count(self) -> int:
        return len(self.event_ids)

    def rate(self) -> float:
        """Predictions per second of scoring time (first to last scored_at)."""
        if len(self.scored_at) < 2:
            return float("nan")
        span = (max(self.scored_at) - min(self.scored_at)) / 1000.0
        return self.count / span if span > 0 else float("nan")

    def percentiles(self, values: list[int]) -> tuple[float, float, float]:
        if not values:
            return (float("nan"),) * 3
        p50, p95, p99 = np.percentile(np.asarray(values), [50, 95, 99]).tolist()
        return p50, p95, p99

    def summary(self) -> str:
        lat = self.percentiles(self.latency_ms)
        sco = self.percentiles(self.scoring_ms)
        lines = [
            f"predictions        {self.count} distinct ({self.duplicates} duplicates)",
            f"throughput         {self.rate():,.0f} events/s (first to last scored_at)",
            f"event->prediction  p50 {lat[0]:.0f} ms  p95 {lat[1]:.0f} ms  p99 {lat[2]:.0f} ms (broker timestamp)",
            f"event->scored      p50 {sco[0]:.0f} ms  p95 {sco[1]:.0f} ms  p99 {sco[2]:.0f} ms",
            f"decisions          {self.decisions} positive ({_share(self.decisions, self.count)})",
            f"imputed            {self.imputed} predictions with a stale or missing group "
            f"({_share(self.imputed, self.count)})",
            "freshness          "
            + "  ".join(
                f"{g}: {c['FRESH']} fresh / {c['STALE']} stale / {c['MISSING']} missing"
                for g, c in sorted(self.status.items())
            ),
        ]
        return "\n".join(lines)


def _share(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "n/a"


def watch(
    bootstrap_servers: str,
    topic: str,
    schema: Any,
    *,
    since_ms: int,
    expect: int,
    timeout_seconds: float,
    extra: dict[str, str] | None = None,
    out: TextIO = sys.stdout,
    stop_when: Callable[[PredictionStats], bool] | None = None,
    framed: bool = False,
) -> PredictionStats:
    """Read predictions produced since ``since_ms`` until ``expect`` distinct ones arrived or the timeout;
    ``framed``: in the Confluent framing (``kafka.output_format = "confluent"``)."""
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"stream-scorer-watch-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            **(extra or {}),
        }
    )
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=10)
            partitions = [TopicPartition(topic, p, since_ms) for p in metadata.topics[topic].partitions]
            if not partitions:
                raise KafkaError(f"topic {topic} does not exist (stream-scorer topics creates it)")
            consumer.assign(consumer.offsets_for_times(partitions, timeout=10))
        except confluent_kafka.KafkaException as exc:
            raise KafkaError(f"cannot read {topic} from {bootstrap_servers}: {exc}") from exc
        stats = PredictionStats()
        deadline = time.monotonic() + timeout_seconds
        next_report = time.monotonic() + 1.0
        while stats.count < expect and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.2):
                if message.error() is None:
                    value = message.value() or b""
                    try:
                        record = decode(schema, value[CONFLUENT_HEADER.size :] if framed else value)
                    except Exception:  # fastavro raises many types on bytes of another schema
                        stats.unreadable += 1
                        continue
                    stats.add(record, message.timestamp()[1])
            if time.monotonic() >= next_report:
                next_report += 1.0
                p50, _, p99 = stats.percentiles(stats.latency_ms[-5000:])
                out.write(
                    f"  {stats.count:>8}/{expect} predictions  {stats.rate():>9,.0f} events/s  "
                    f"latency p50 {p50:.0f} ms p99 {p99:.0f} ms  imputed {_share(stats.imputed, stats.count)}\n"
                )
                out.flush()
            if stop_when is not None and stop_when(stats):
                break
        return stats
    finally:
        consumer.close()


def add_watch_command(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``watch`` on ``commands``."""
    watch = commands.add_parser("watch", parents=[common], help="read predictions: live progress and a summary")
    watch.add_argument("--expect", type=int, required=True, help="stop after this many distinct predictions")
    watch.add_argument("--since-ms", type=int, default=None, help="read predictions produced since (default: now)")
    watch.add_argument("--timeout", type=float, default=300.0)
    watch.set_defaults(handler=_watch)


def _watch(args: argparse.Namespace, settings: Settings) -> int:
    since = args.since_ms if args.since_ms is not None else int(time.time() * 1000)
    stats = watch(
        settings.kafka.bootstrap_servers,
        settings.kafka.output_topic,
        wiring.schemas(settings).prediction,
        since_ms=since,
        expect=args.expect,
        timeout_seconds=args.timeout,
        extra=settings.kafka.librdkafka(),
        framed=settings.kafka.output_format == "confluent",
    )
    print(stats.summary())
    if stats.unreadable:
        print(f"unreadable         {stats.unreadable} record(s) skipped: not a Prediction of schemas/prediction.avsc")
    if stats.count < args.expect:
        print(
            f"watch: only {stats.count} of {args.expect} predictions arrived within {args.timeout:.0f} s",
            file=sys.stderr,
        )
        return 1
    return 0
