"""``events check``: the configured event contract against its schema, and a model's inputs against both."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from stream_scorer import wiring
from stream_scorer.config import Settings
from stream_scorer.events.contract import EventContract
from stream_scorer.pipeline.vectorize import check_categories, plan_inputs
from stream_scorer.wiring.labels import label_fields


def add_events_command(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``events check`` on ``commands``."""
    events = commands.add_parser("events", help="check the configured events")
    events_commands = events.add_subparsers(title="events commands")
    check = events_commands.add_parser(
        "check",
        parents=[common],
        help="check [events] against the schema, and a model's inputs",
        description="Check the settings' [events] (id, time, entities, rules, passthrough), [labels] and feature "
        "groups against the schemas, list every field a model may read, and with --model (or when the "
        "settings' model_path exists) check that the model's inputs are all provided. Exit 1 on a problem.",
    )
    check.add_argument("--model", type=Path, default=None, help="artifact or registry (default: model_path)")
    check.set_defaults(handler=_events_check)


def _events_check(args: argparse.Namespace, settings: Settings) -> int:
    contract = wiring.event_contract(settings, wiring.schemas(settings))
    print(f"schema {contract.schema_name}: {len(contract.fields)} fields a model may read as event.<path>")
    roles = _roles(contract)
    for path, field in contract.fields.items():
        kind = f"{field.avro}{' or null' if field.nullable else ''}"
        symbols = f" {{{', '.join(field.symbols)}}}" if field.symbols else ""
        print(f"  event.{path:32s} {kind}{symbols}{'  ' + roles[path] if path in roles else ''}")
    names = label_fields(settings)
    print(f"labels: {names.event_id} (the event id), {names.label} (0/1), {names.label_time} (the label time)")
    for group in settings.feature_groups:
        key = contract.entity(group.entity).key
        print(f"group {group.name} of entity {group.entity} (key {key}): {', '.join(group.features)}")
    model_path: Path = args.model or settings.model_path
    if args.model is None and not model_path.exists():
        print(f"no model at {model_path} to check (--model names one)")
        return 0
    configured = settings if args.model is None else _with_model(settings, model_path)
    served, _, _ = wiring.served_model_path(configured)
    model = wiring.model_loader(configured)(served)
    plan = plan_inputs(model.serving_spec.input_columns.items(), settings.feature_groups, contract.fields)
    groups = ", ".join(g.name for g in plan.feature_groups) or "none"
    check_categories(model.serving_spec, contract.fields)
    print(f"model {model.name} {model.version}: reads event fields {list(plan.event_fields)} and groups {groups}")
    return 0


def _roles(contract: EventContract) -> dict[str, str]:
    roles = {contract.id_field: "(event id)"}
    if contract.time_field:
        roles[contract.time_field] = "(event time)"
    roles.update({e.key: f"(key of entity {e.name})" for e in contract.entities})
    for rule in contract.rules:
        roles[rule.field] = (roles.get(rule.field, "") + " (rules)").strip()
    for path in contract.passthrough:
        roles[path] = (roles.get(path, "") + " (passthrough)").strip()
    return roles


def _with_model(settings: Settings, path: Path) -> Settings:
    import dataclasses

    return dataclasses.replace(settings, model_path=path, challengers=())
