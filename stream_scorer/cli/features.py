"""``features put``: write feature groups of entities into the Redis feature store."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from stream_scorer import wiring
from stream_scorer.config import FeatureGroup, Settings
from stream_scorer.errors import ConfigError


def add_features_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``features put`` on ``commands``."""
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
