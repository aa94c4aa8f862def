"""``python -m tools.synth``: an example's synthetic events with a known ground truth (history, features, publish).

Run from the repository root. ``--example`` picks ``examples/<name>`` (its world and, unless ``--config`` or
``STREAM_SCORER_CONFIG`` names another, its settings.toml); ``STREAM_SCORER_*`` variables are read as by
``stream-scorer``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import confluent_kafka

from stream_scorer import wiring
from stream_scorer.cli.main import dispatch
from stream_scorer.config import Settings, load_settings
from stream_scorer.features.freshness import FRESH, MISSING, STALE
from stream_scorer.kafka.producer import producer_config
from stream_scorer.wiring.labels import label_fields
from tools.synth import io as synth_io
from tools.synth.examples import EXAMPLES, example


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    return dispatch(build_parser(), argv, "synth")


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m tools.synth``."""
    parser = argparse.ArgumentParser(prog="python -m tools.synth", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=None, help="settings TOML file")
    common.add_argument("--example", default="fraud", help="the example under examples/ (default fraud)")
    commands = parser.add_subparsers(title="commands")
    synth_commands = commands
    world = argparse.ArgumentParser(add_help=False)
    world.add_argument("--world-seed", type=int, default=7)
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
    publish.add_argument("--seed", type=int, default=None, help="repeat a run's events and ids (default: fresh ones)")
    publish.add_argument("--shift-after", type=int, default=None, help="shift events from this one on (drift)")
    publish.add_argument(
        "--shift-factor",
        "--amount-factor",
        type=float,
        default=3.0,
        help="with --shift-after: how far (fraud: amount x)",
    )
    publish.add_argument(
        "--clock-offset-hours", type=float, default=0.0, help="stamp events this many hours before the clock"
    )
    publish.set_defaults(handler=_synth_publish)

    return parser


def _example(args: argparse.Namespace, settings: Settings) -> tuple[synth_io.Example, Settings]:
    """The example's world module, and the settings: its own settings.toml unless a file was given."""
    if settings.events.schema is None:
        settings = load_settings(EXAMPLES / args.example / "settings.toml")
    return example(args.example), settings


def _synth_history(args: argparse.Namespace, settings: Settings) -> int:
    module, settings = _example(args, settings)
    contract = wiring.event_contract(settings, wiring.schemas(settings))
    world = module.make_world(args.world_seed)
    rate = synth_io.write_history(module, world, contract, settings.feature_groups, args.out, args.rows, seed=args.seed)
    print(f"wrote {args.rows} labelled rows to {args.out} (positive rate {rate:.2%})")
    return 0


def _synth_features(args: argparse.Namespace, settings: Settings) -> int:
    module, settings = _example(args, settings)
    summary = synth_io.seed_features(
        module.make_world(args.world_seed),
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
    module, settings = _example(args, settings)
    kafka = settings.kafka
    producer = confluent_kafka.Producer(producer_config(kafka.bootstrap_servers, kafka.librdkafka()))
    parsed = wiring.schemas(settings)
    sent = synth_io.publish(
        module,
        module.make_world(args.world_seed),
        producer,
        parsed,
        wiring.event_contract(settings, parsed),
        events_topic=kafka.input_topic,
        labels_topic=kafka.labels_topic,
        count=args.events,
        rate=args.rate,
        label_delay_seconds=args.labels_delay,
        seed=args.seed,
        schema_id=args.schema_id,
        shift_after=args.shift_after,
        shift_factor=args.shift_factor,
        label_fields=label_fields(settings),
        clock_offset_seconds=args.clock_offset_hours * 3600.0,
    )
    print(
        f"published {sent['events']} events and {sent['labels']} labels ({sent['positives']} positive) "
        f"in {sent['seconds']:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
