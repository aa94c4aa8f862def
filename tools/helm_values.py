"""A settings file as values of the Helm chart: ``python -m tools.helm_values examples/fraud/settings.toml >
fraud-values.json``, then ``scripts/helm install scorer deploy/helm/stream-scorer -f fraud-values.json``.

The settings the chart owns move to its own values (``kafka.input_topic`` to ``kafka.inputTopic`` ...); those it
sets itself (``model_path``, ``metrics.host``, ``kafka.worker_slot`` ...) are dropped; the schema files the
settings name (``events.schema``, ``labels.schema``, ``kafka.schema_ids``) go under ``files`` by their base
names, which the chart mounts beside its settings.toml. Secrets stay references: map each one to a Secret's key
under ``secrets`` (docs/operations.md, "Kubernetes").
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# (section, setting) -> (section, value) of the chart
MOVED = {
    ("kafka", "bootstrap_servers"): ("kafka", "bootstrapServers"),
    ("kafka", "input_topic"): ("kafka", "inputTopic"),
    ("kafka", "group_id"): ("kafka", "groupId"),
    ("kafka", "topic_partitions"): ("kafka", "partitions"),
    ("batch", "flush_timeout_seconds"): ("batch", "flushTimeoutSeconds"),
    ("metrics", "port"): ("metrics", "port"),
}
DROPPED = {("", "model_path"), ("metrics", "host"), ("metrics", "enabled"), ("kafka", "worker_slot")}


def helm_values(path: Path) -> dict[str, Any]:
    """The chart's values that deploy the settings file ``path`` (read with the files it names)."""
    settings: dict[str, Any] = tomllib.loads(path.read_text())
    values: dict[str, Any] = {}
    for (section, key), (to_section, to_key) in MOVED.items():
        table = settings.get(section, {})
        if key in table:
            values.setdefault(to_section, {})[to_key] = table.pop(key)
    for section, key in DROPPED:
        (settings.get(section, {}) if section else settings).pop(key, None)
    files: dict[str, str] = {}

    def embed(name: str) -> str:
        source = path.parent / name
        if files.get(source.name, source.read_text()) != source.read_text():
            raise ValueError(f"two different files are named {source.name}: rename one")
        files[source.name] = source.read_text()
        return source.name

    for section in ("events", "labels"):
        if settings.get(section, {}).get("schema"):
            settings[section]["schema"] = embed(settings[section]["schema"])
    ids = settings.get("kafka", {}).get("schema_ids", {})
    for schema_id, name in ids.items():
        ids[schema_id] = embed(name)
    return {**values, "settings": {k: v for k, v in settings.items() if v != {}}, "files": files}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.helm_values", description=__doc__.split("\n\n")[0])
    parser.add_argument("settings", type=Path, help="a settings TOML file (docs/configuration.md)")
    args = parser.parse_args(argv)
    try:
        values = helm_values(args.settings)
    except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError is a ValueError
        print(f"helm_values: {args.settings}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(values, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
