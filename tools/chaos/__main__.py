"""``python -m tools.chaos``: bounded fault scenarios on the local stack (127.0.0.1), with a verifier.

Run from the repository root (``scripts/chaos`` does); settings are read as by ``stream-scorer``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from stream_scorer.config import Settings, load_settings
from tools.chaos import context, inputs, scenarios


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
        "of every kind, 0 bytes to the broker's maximum message size, mixed into valid events).",
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
    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(wanted) - {"kill", "zombie", "redis", "broker", "malformed", "fuzz"}
    if unknown:
        print(f"chaos: unknown scenarios {sorted(unknown)}", file=sys.stderr)
        return 2
    ctx = context.Context.prepare(settings.kafka.bootstrap_servers, settings.redis.url, args.workdir)
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
            rows.append(inputs.fuzz(ctx, args.events, args.fuzz_mutants))
        else:
            rows.append(inputs.malformed(ctx, args.events, args.malformed_per_class))
        print(context.table(rows[-1:]), flush=True)
    print()
    print(context.table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
