"""``python -m tools.chaos``: bounded fault scenarios on the local stack (127.0.0.1), with a verifier.

Run from the repository root (``scripts/chaos`` does); settings are read as by ``stream-scorer``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from stream_scorer.config import Settings, load_settings
from tools.chaos import cluster, context, inputs, scenarios

CLUSTER_SCENARIOS = ("cluster-broker", "cluster-redis", "cluster-workers", "cluster-rolling")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    code: int = _chaos(args, load_settings(args.config))
    return code


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m tools.chaos``."""
    chaos = argparse.ArgumentParser(
        prog="python -m tools.chaos",
        description="Run bounded fault scenarios against the local Kafka and Redis (127.0.0.1) and print a "
        "table: expected / unique / missing / duplicates, order violations per partition, dead letters by "
        "class, crashes and recovery time. Scenarios: kill (SIGKILL every few seconds, both delivery modes), "
        "zombie (SIGSTOP past the session timeout), redis (kill and restart a redis-server), broker (stop "
        "and start the broker), malformed (every invalid class mixed into valid events), fuzz (seeded mutants "
        "of every kind, 0 bytes to the broker's maximum message size, mixed into valid events). On the cluster stack "
        "(scripts/stack up cluster): cluster-broker (kill -9 the broker leading most input partitions, both "
        "delivery modes), cluster-redis (kill -9 a Redis primary), cluster-workers (three workers, kill -9 "
        "one), cluster-rolling (restart the three brokers one at a time); or `--scenarios cluster` for all four.",
    )
    chaos.add_argument("--config", type=Path, default=None, help="settings TOML file")
    chaos.add_argument("--scenarios", default="kill,zombie,redis,broker,malformed,fuzz")
    chaos.add_argument("--events", type=int, default=100_000, help="events per streaming scenario")
    chaos.add_argument("--rate", type=float, default=5_000, help="events per second while streaming")
    chaos.add_argument("--malformed-per-class", type=int, default=1_000)
    chaos.add_argument("--fuzz-mutants", type=int, default=20_000, help="mutants mixed into --events valid events")
    chaos.add_argument("--workdir", type=Path, default=Path(".demo/chaos"))
    chaos.add_argument("--broker-stop", default="scripts/stack down kafka", help="shell command that stops the broker")
    chaos.add_argument("--broker-start", default="scripts/stack up kafka", help="shell command that starts it")
    return chaos


def _chaos(args: argparse.Namespace, settings: Settings) -> int:
    named = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    wanted = [one for name in named for one in (CLUSTER_SCENARIOS if name == "cluster" else (name,))]
    unknown = set(wanted) - {"kill", "zombie", "redis", "broker", "malformed", "fuzz", *CLUSTER_SCENARIOS}
    if unknown:
        print(f"chaos: unknown scenarios {sorted(unknown)}", file=sys.stderr)
        return 2
    on_single = on_cluster = None
    rows = []
    for name in wanted:
        print(f"chaos: running {name} ...", flush=True)
        if name in CLUSTER_SCENARIOS:
            on_cluster = on_cluster or cluster.context(args.workdir / "cluster")
            rows.extend(_cluster(on_cluster, name, args.events))
        else:
            on_single = on_single or context.Context.prepare(
                settings.kafka.bootstrap_servers, settings.redis.url, args.workdir
            )
            rows.extend(_single(on_single, name, args))
        print(context.table(rows[-1:]), flush=True)
    print()
    print(context.table(rows))
    return 0


def _single(ctx: context.Context, name: str, args: argparse.Namespace) -> list[context.Row]:
    """One scenario on the single-node stack."""
    short = min(args.events, 40_000)  # zombie, redis and broker stream for about 20 s: the fault falls mid-stream
    if name == "kill":
        return [scenarios.kill(ctx, mode, args.events, args.rate) for mode in ("at_least_once", "exactly_once")]
    if name == "zombie":
        return [scenarios.zombie(ctx, short, short / 20)]
    if name == "redis":
        return [scenarios.redis_outage(ctx, short, short / 20)]
    if name == "broker":
        return [scenarios.broker_restart(ctx, short, short / 20, args.broker_stop, args.broker_start)]
    if name == "fuzz":
        return [inputs.fuzz(ctx, args.events, args.fuzz_mutants)]
    return [inputs.malformed(ctx, args.events, args.malformed_per_class)]


def _cluster(ctx: context.Context, name: str, events: int) -> list[context.Row]:
    """One cluster scenario; each streams for 40 to 60 s so that its faults fall mid-stream."""
    events = min(events, 60_000)
    if name == "cluster-broker":  # down for 30 s
        return [cluster.broker_kill(ctx, mode, events, events / 60) for mode in ("at_least_once", "exactly_once")]
    if name == "cluster-redis":
        return [cluster.redis_primary_kill(ctx, events, events / 40)]
    if name == "cluster-workers":
        return [cluster.worker_kill(ctx, events, events / 40)]
    return [cluster.rolling_restart(ctx, events, events / 60)]  # three restarts take about a minute


if __name__ == "__main__":
    sys.exit(main())
