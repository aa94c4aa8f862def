"""The ``stream-scorer`` command: run, train, features put, synth (history, features, publish), watch, topics."""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import confluent_kafka

from stream_scorer import wiring
from stream_scorer.config import FeatureGroup, Settings, load_settings
from stream_scorer.errors import ConfigError, InvalidInputRateError, StreamScorerError
from stream_scorer.features.freshness import FRESH, MISSING, STALE
from stream_scorer.kafka.producer import producer_config
from stream_scorer.model_cli import add_model_commands
from stream_scorer.synth import io as synth_io
from stream_scorer.synth.world import World, make_world
from stream_scorer.train_cli import add_batch_commands

log = logging.getLogger("stream_scorer")
INVALID_INPUT_EXIT = 3


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        settings = load_settings(args.config)
        logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        code: int = args.handler(args, settings)
        return code
    except InvalidInputRateError as exc:  # its own exit code: a supervisor must not restart into the same input
        print(f"stream-scorer: {type(exc).__name__}: {exc}", file=sys.stderr)
        return INVALID_INPUT_EXIT
    except StreamScorerError as exc:
        print(f"stream-scorer: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stream-scorer", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        default=None,
        help="settings TOML file; STREAM_SCORER_* environment variables override it",
    )
    commands = parser.add_subparsers(title="commands")

    run = commands.add_parser(
        "run",
        parents=[common],
        help="score events from Kafka until SIGTERM/SIGINT",
        description="Join the consumer group and score micro-batches: poll, decode, fetch "
        "features from Redis, score, produce predictions, flush, commit. SIGTERM or SIGINT "
        "finishes the current batch, commits and exits 0.",
    )
    run.add_argument("--max-batches", type=int, default=None, help="stop after this many non-empty batches")
    run.add_argument(
        "--workers",
        type=int,
        default=None,
        help="supervise this many worker processes in the consumer group (one per core, up to the partition "
        "count), 1 included: process i serves metrics on metrics.port + i and is restarted if it dies (after "
        "1 s, doubling to 30 s while it keeps dying within 10 s of its start; 5 such exits in a row stop "
        "all). Without it, one worker runs in this process, unsupervised (as under Kubernetes)",
    )
    run.set_defaults(handler=_run)

    add_batch_commands(commands, common)

    labels = commands.add_parser(
        "labels",
        parents=[common],
        help="join late labels to their predictions and export rolling quality metrics, until SIGTERM",
        description="Consume the labels topic in its own consumer group, join each label to its pending "
        "prediction in Redis, and serve rolling precision/recall, calibration, AUC and label-lag metrics on "
        "the metrics endpoint (per model and window).",
    )
    labels.set_defaults(handler=_labels)
    add_model_commands(commands, common)

    status = commands.add_parser(
        "status",
        parents=[common],
        help="a live summary table of the metrics endpoints (for people without Grafana)",
    )
    status.add_argument(
        "--url", action="append", default=None, help="a metrics endpoint (repeatable; default: the configured one)"
    )
    status.add_argument("--interval", type=float, default=5.0, help="seconds between refreshes")
    status.add_argument("--once", action="store_true", help="print one table (two scrapes, for the rates) and exit")
    status.set_defaults(handler=_status)

    features = commands.add_parser("features", help="write features into the Redis feature store")
    features_commands = features.add_subparsers(title="features commands")
    put = features_commands.add_parser(
        "put",
        parents=[common],
        help="write feature groups of entities",
        description="Write one group of one entity (--group, --entity-id, --values) or many from a JSON-lines "
        'file (--file; each line {"group": ..., "entity_id": ..., "values": {name: value} or [..], '
        '"updated_at_ms": optional}). Values follow the group\'s configured feature order.',
    )
    put.add_argument("--group")
    put.add_argument("--entity-id")
    put.add_argument("--values", help="comma-separated numbers, or name=value pairs")
    put.add_argument("--updated-at-ms", type=int, default=None, help="when the values were computed (default: now)")
    put.add_argument("--file", type=Path, help="JSON-lines file of feature writes ('-' for standard input)")
    put.add_argument("--ttl", type=float, default=None, help="key time-to-live in seconds")
    put.set_defaults(handler=_features_put)

    synth = commands.add_parser("synth", help="synthetic transactions with a known ground truth")
    synth_commands = synth.add_subparsers(title="synth commands")
    world = argparse.ArgumentParser(add_help=False)
    world.add_argument("--world-seed", type=int, default=7)
    world.add_argument("--cards", type=int, default=20_000)
    world.add_argument("--merchants", type=int, default=2_000)
    world.add_argument("--devices", type=int, default=25_000)
    history = synth_commands.add_parser("history", parents=[common, world], help="write a labelled training CSV")
    history.add_argument("--out", type=Path, required=True)
    history.add_argument("--rows", type=int, default=100_000)
    history.add_argument("--seed", type=int, default=11)
    history.set_defaults(handler=_synth_history)
    seed = synth_commands.add_parser("features", parents=[common, world], help="write every entity's features to Redis")
    seed.add_argument("--stale-fraction", type=float, default=0.03)
    seed.add_argument("--missing-fraction", type=float, default=0.02)
    seed.add_argument("--seed", type=int, default=5)
    seed.add_argument("--ttl", type=float, default=None)
    seed.set_defaults(handler=_synth_features)
    publish = synth_commands.add_parser("publish", parents=[common, world], help="publish events and, later, labels")
    publish.add_argument("--events", type=int, default=100_000)
    publish.add_argument("--rate", type=float, default=0.0, help="events per second (0: as fast as possible)")
    publish.add_argument("--labels-delay", type=float, default=5.0, help="seconds between an event and its label")
    publish.add_argument("--schema-id", type=int, default=None, help="frame events in the Confluent wire format")
    publish.add_argument("--seed", type=int, default=3)
    publish.add_argument("--shift-after", type=int, default=None, help="shift amounts from this event on (drift)")
    publish.add_argument("--amount-factor", type=float, default=3.0, help="with --shift-after: multiply amounts")
    publish.set_defaults(handler=_synth_publish)

    watch = commands.add_parser("watch", parents=[common], help="read predictions: live progress and a summary")
    watch.add_argument("--expect", type=int, required=True, help="stop after this many distinct predictions")
    watch.add_argument("--since-ms", type=int, default=None, help="read predictions produced since (default: now)")
    watch.add_argument("--timeout", type=float, default=300.0)
    watch.set_defaults(handler=_watch)

    topics = commands.add_parser("topics", parents=[common], help="create the configured topics if missing")
    topics.set_defaults(handler=_topics)

    chaos = commands.add_parser(
        "chaos",
        parents=[common],
        help="fault scenarios on the local stack, with a verifier",
        description="Run bounded fault scenarios against the local Kafka and Redis (127.0.0.1) and print a "
        "table: expected / unique / missing / duplicates, order violations per partition, dead letters by "
        "class, crashes and recovery time. Scenarios: kill (SIGKILL every few seconds, both delivery modes), "
        "zombie (SIGSTOP past the session timeout), redis (kill and restart a redis-server), broker (stop "
        "and start the broker), malformed (every invalid class mixed into valid events), fuzz (seeded mutants "
        "of every kind, 0 bytes to the broker's maximum message size, mixed into valid events).",
    )
    chaos.add_argument("--scenarios", default="kill,zombie,redis,broker,malformed,fuzz")
    chaos.add_argument("--events", type=int, default=100_000, help="events per streaming scenario")
    chaos.add_argument("--rate", type=float, default=5_000, help="events per second while streaming")
    chaos.add_argument("--malformed-per-class", type=int, default=1_000)
    chaos.add_argument("--fuzz-mutants", type=int, default=20_000, help="mutants mixed into --events valid events")
    chaos.add_argument("--workdir", type=Path, default=Path(".demo/chaos"))
    chaos.add_argument("--broker-stop", default="scripts/stack down kafka", help="shell command that stops the broker")
    chaos.add_argument("--broker-start", default="scripts/stack up kafka", help="shell command that starts it")
    chaos.set_defaults(handler=_chaos)
    return parser


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.workers is not None and args.workers < 1:
        print("run: --workers must be >= 1", file=sys.stderr)
        return 2
    if args.workers is not None:
        from stream_scorer.supervisor import supervise

        return supervise(args.workers, settings.metrics.port, args.config)
    runtime = wiring.build_runtime(settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: finishing the current batch, then committing and exiting", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if args.max_batches is None:
            runtime.worker.run(stop)
        else:
            done = 0
            while done < args.max_batches and not stop.is_set():
                done += runtime.worker.step() > 0
    finally:
        runtime.close()
    log.info("stopped cleanly")
    return 0


def _labels(args: argparse.Namespace, settings: Settings) -> int:
    runtime = wiring.build_label_runtime(settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: finishing the current label batch, then exiting", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        runtime.flow.run(stop)
    finally:
        runtime.close()
    log.info("label flow stopped cleanly")
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from stream_scorer.monitoring.summary import scrape, summary

    urls = args.url or [f"http://{settings.metrics.host}:{settings.metrics.port}"]
    before = scrape(urls, time.time())
    if not before.samples:
        print(f"status: no metrics endpoint answers at {urls}", file=sys.stderr)
        return 1
    try:
        while True:
            time.sleep(args.interval)
            now = scrape(urls, time.time())
            if not args.once:
                print("\x1b[2J\x1b[H", end="")  # clear the terminal
            print(time.strftime("%H:%M:%S"), " ".join(urls))
            print(summary(now, before), flush=True)
            if args.once:
                return 0
            before = now
    except KeyboardInterrupt:
        return 0


def _features_put(args: argparse.Namespace, settings: Settings) -> int:
    if args.file is not None:
        try:
            text = sys.stdin.read() if str(args.file) == "-" else args.file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            print(f"features put: cannot read {args.file}: {exc}", file=sys.stderr)
            return 2
        lines = [line for line in text.splitlines() if line.strip()]
    elif args.group and args.entity_id and args.values:
        try:
            values = _parse_values(args.values)
        except ValueError as exc:
            print(f"features put: --values takes numbers or name=number pairs: {exc}", file=sys.stderr)
            return 2
        lines = [json.dumps({"group": args.group, "entity_id": args.entity_id, "values": values})]
    else:
        print("features put: give --group, --entity-id and --values, or --file", file=sys.stderr)
        return 2
    now_ms = int(time.time() * 1000)
    parsed = []
    for number, line in enumerate(lines, 1):
        try:
            parsed.append(_feature_write(json.loads(line), settings, now_ms, args.updated_at_ms))
        except (ValueError, KeyError, TypeError, ConfigError) as exc:
            print(f"features put: line {number}: {exc}; nothing was written", file=sys.stderr)
            return 2
    store = wiring.feature_store(settings)
    for group, entity_id, values, updated_at_ms in parsed:
        store.put(group, entity_id, values, updated_at_ms, args.ttl)
    print(f"wrote {len(parsed)} feature group record(s)")
    return 0


def _feature_write(
    write: Any, settings: Settings, now_ms: int, default_time_ms: int | None
) -> tuple[FeatureGroup, str, list[float], int]:
    """Validate one write: the group exists, values name (or list) exactly its features, all finite."""
    if not isinstance(write, dict) or not {"group", "entity_id", "values"} <= set(write):
        raise ValueError('each write needs "group", "entity_id" and "values"')
    group = settings.group(str(write["group"]))
    values = write["values"]
    if isinstance(values, dict):
        if set(values) != set(group.features):
            raise ValueError(f"group {group.name} has features {list(group.features)}, got {sorted(values)}")
        values = [values[f] for f in group.features]
    if not isinstance(values, list) or len(values) != len(group.features):
        raise ValueError(f"group {group.name} takes {len(group.features)} values {list(group.features)}")
    numbers = [float(v) for v in values]
    if not all(math.isfinite(v) for v in numbers):
        raise ValueError("feature values must be finite")
    if not str(write["entity_id"]):
        raise ValueError("entity_id is empty")
    updated_at_ms = int(write.get("updated_at_ms") or default_time_ms or now_ms)
    if not 0 <= updated_at_ms <= now_ms + 3_600_000:
        raise ValueError(f"updated_at_ms {updated_at_ms} is not epoch milliseconds within an hour of now")
    return group, str(write["entity_id"]), numbers, updated_at_ms


def _parse_values(text: str) -> list[float] | dict[str, float]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if all("=" in p for p in parts):
        return {k.strip(): float(v) for k, v in (p.split("=", 1) for p in parts)}
    return [float(p) for p in parts]


def _world(args: argparse.Namespace) -> World:
    return make_world(args.world_seed, args.cards, args.merchants, args.devices)


def _synth_history(args: argparse.Namespace, settings: Settings) -> int:
    rate = synth_io.write_history(_world(args), args.out, args.rows, seed=args.seed)
    print(f"wrote {args.rows} labelled rows to {args.out} (positive rate {rate:.2%})")
    return 0


def _synth_features(args: argparse.Namespace, settings: Settings) -> int:
    summary = synth_io.seed_features(
        _world(args),
        wiring.feature_store(settings),
        settings.feature_groups,
        now_ms=int(time.time() * 1000),
        stale_fraction=args.stale_fraction,
        missing_fraction=args.missing_fraction,
        seed=args.seed,
        ttl_seconds=args.ttl,
    )
    for name in summary.status:
        print(
            f"{name:16s} fresh {summary.count(name, FRESH):>7}  stale {summary.count(name, STALE):>6}  "
            f"missing {summary.count(name, MISSING):>6}"
        )
    return 0


def _synth_publish(args: argparse.Namespace, settings: Settings) -> int:
    kafka = settings.kafka
    producer = confluent_kafka.Producer(producer_config(kafka.bootstrap_servers, kafka.librdkafka()))
    sent = synth_io.publish(
        _world(args),
        producer,
        wiring.schemas(settings),
        events_topic=kafka.input_topic,
        labels_topic=kafka.labels_topic,
        count=args.events,
        rate=args.rate,
        label_delay_seconds=args.labels_delay,
        seed=args.seed,
        schema_id=args.schema_id,
        shift_after=args.shift_after,
        amount_factor=args.amount_factor,
    )
    print(
        f"published {sent['events']} events and {sent['labels']} labels ({sent['positives']} positive) "
        f"in {sent['seconds']:.1f} s"
    )
    return 0


def _watch(args: argparse.Namespace, settings: Settings) -> int:
    from stream_scorer.watch import watch

    since = args.since_ms if args.since_ms is not None else int(time.time() * 1000)
    stats = watch(
        settings.kafka.bootstrap_servers,
        settings.kafka.output_topic,
        wiring.schemas(settings).prediction,
        since_ms=since,
        expect=args.expect,
        timeout_seconds=args.timeout,
        extra=settings.kafka.librdkafka(),
    )
    print(stats.summary())
    if stats.count < args.expect:
        print(
            f"watch: only {stats.count} of {args.expect} predictions arrived within {args.timeout:.0f} s",
            file=sys.stderr,
        )
        return 1
    return 0


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    created = wiring.ensure_configured_topics(settings)
    print(f"created {created}" if created else "all topics exist")
    return 0


def _chaos(args: argparse.Namespace, settings: Settings) -> int:
    from stream_scorer.chaos import scenarios

    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(wanted) - {"kill", "zombie", "redis", "broker", "malformed", "fuzz"}
    if unknown:
        print(f"chaos: unknown scenarios {sorted(unknown)}", file=sys.stderr)
        return 2
    ctx = scenarios.Context.prepare(settings.kafka.bootstrap_servers, settings.redis.url, args.workdir)
    rows = []
    for name in wanted:
        print(f"chaos: running {name} ...", flush=True)
        if name == "kill":
            rows.append(scenarios.kill(ctx, "at_least_once", args.events, args.rate))
            rows.append(scenarios.kill(ctx, "exactly_once", args.events, args.rate))
        elif name == "zombie":  # these three stream for about 20 s, so that the fault falls mid-stream
            rows.append(scenarios.zombie(ctx, min(args.events, 40_000), min(args.events, 40_000) / 20))
        elif name == "redis":
            rows.append(scenarios.redis_outage(ctx, min(args.events, 40_000), min(args.events, 40_000) / 20))
        elif name == "broker":
            events = min(args.events, 40_000)
            rows.append(scenarios.broker_restart(ctx, events, events / 20, args.broker_stop, args.broker_start))
        elif name == "fuzz":
            rows.append(scenarios.fuzz(ctx, args.events, args.fuzz_mutants))
        else:
            rows.append(scenarios.malformed(ctx, args.events, args.malformed_per_class))
        print(scenarios.table(rows[-1:]), flush=True)
    print()
    print(scenarios.table(rows))
    return 0
