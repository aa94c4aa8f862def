"""The event contract, from configuration: which fields are the id, the time and the entity keys, the rules
Avro cannot express, and what predictions pass through. Checked once, against the schema, at startup.

>>> schema = {"type": "record", "name": "Order", "fields": [
...     {"name": "order_id", "type": "string"}, {"name": "at", "type": "long"},
...     {"name": "shop", "type": {"type": "record", "name": "Shop", "fields": [{"name": "id", "type": "long"}]}},
...     {"name": "total", "type": "double"}]}
>>> contract = build_contract(schema, id_field="order_id", time_field="at",
...     entities=(Entity(name="shop", key="shop.id"),), rules=(FieldRule(field="total", minimum=0),))
>>> contract.read_fields
('order_id', 'at', 'shop.id', 'total')
>>> build_contract(schema, id_field="order_id", time_field="at",
...     entities=(Entity(name="shop", key="shop.name"),))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
stream_scorer.errors.ConfigError: events.entities: shop's key field 'shop.name' is not in the schema Order; ...
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stream_scorer.errors import ConfigError
from stream_scorer.events.schema import FieldType, leaf_fields


@dataclass(frozen=True, slots=True, kw_only=True)
class Entity:
    """A thing features are kept for (a customer, an account, a product): its name and the field holding its key."""

    name: str
    key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldRule:
    """What one field must satisfy; a message that breaks a rule goes to the dead-letter topic."""

    field: str
    required: bool = False  # not null
    finite: bool = False  # not NaN or infinite
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None  # characters of a string


@dataclass(frozen=True, slots=True)
class EventContract:
    """The checked event contract: every leaf field of the schema and what the configuration makes of them."""

    schema_name: str
    fields: Mapping[str, FieldType]
    id_field: str
    time_field: str | None  # None: the Kafka message timestamp is the event time
    entities: tuple[Entity, ...]
    rules: tuple[FieldRule, ...] = ()
    passthrough: tuple[str, ...] = ()
    sensitive: frozenset[str] = frozenset()

    @property
    def read_fields(self) -> tuple[str, ...]:
        """The fields the configuration reads (the decoder adds those the models read)."""
        paths = [self.id_field, *([self.time_field] if self.time_field else [])]
        paths += [e.key for e in self.entities] + [r.field for r in self.rules] + list(self.passthrough)
        return tuple(dict.fromkeys(paths))

    def entity(self, name: str) -> Entity:
        """The configured entity called ``name``."""
        for entity in self.entities:
            if entity.name == name:
                return entity
        raise ConfigError(f"no entity named {name!r}; configured: {[e.name for e in self.entities]}")


def build_contract(
    schema: Mapping[str, Any],
    *,
    id_field: str,
    time_field: str,
    entities: Sequence[Entity],
    rules: Sequence[FieldRule] = (),
    passthrough: Sequence[str] = (),
    sensitive: Sequence[str] = (),
) -> EventContract:
    """Check the configuration against ``schema`` (its JSON); raise :class:`ConfigError` saying how to fix it."""
    fields = leaf_fields(schema)
    name = str(schema.get("name", "?"))

    def leaf(path: str, where: str) -> FieldType:
        if path not in fields:
            raise ConfigError(
                f"{where} {path!r} is not in the schema {name}; its fields are: {', '.join(fields) or 'none'}"
            )
        return fields[path]

    if leaf(id_field, "events.id_field:").kind not in ("string", "int"):
        raise ConfigError(f"events.id_field: {id_field!r} must be a string, int or long field")
    if time_field and (t := leaf(time_field, "events.time_field:")).kind != "timestamp" and t.avro != "long":
        raise ConfigError(
            f"events.time_field: {time_field!r} is {t.avro}; it must be a long, timestamp-millis or "
            'timestamp-micros field (or "" to use the Kafka message timestamp)'
        )
    if time_field and fields[time_field].nullable:
        raise ConfigError(
            f'events.time_field: {time_field!r} may be null; name a required field, or "" for the '
            "Kafka message timestamp"
        )
    names = [e.name for e in entities]
    if len(set(names)) < len(names) or not all(n.isidentifier() for n in names):
        raise ConfigError(f"events.entities: names must be distinct identifiers, not {names}")
    for entity in entities:
        key = leaf(entity.key, f"events.entities: {entity.name}'s key field")
        if key.kind not in ("string", "int"):
            raise ConfigError(
                f"events.entities: {entity.name}'s key {entity.key!r} is {key.avro}; "
                "an entity key must be a string, int or long field"
            )
    for rule in rules:
        _check_rule(rule, leaf(rule.field, "events.rules: field"))
    for path in passthrough:
        leaf(path, "events.passthrough: field")
    for path in sensitive:
        leaf(path, "validation.sensitive_fields: field")
    return EventContract(
        schema_name=name,
        fields=fields,
        id_field=id_field,
        time_field=time_field or None,
        entities=tuple(entities),
        rules=tuple(rules),
        passthrough=tuple(passthrough),
        sensitive=frozenset(sensitive),
    )


def _check_rule(rule: FieldRule, field: FieldType) -> None:
    where = f"events.rules: {rule.field}"
    numeric = rule.finite or rule.minimum is not None or rule.maximum is not None
    if numeric and field.kind not in ("int", "float", "timestamp"):
        raise ConfigError(f"{where} is {field.avro}: finite, minimum and maximum apply to numbers only")
    for bound in (rule.minimum, rule.maximum):
        if bound is not None and not math.isfinite(bound):
            raise ConfigError(f"{where}: minimum and maximum must be finite numbers")
    if rule.minimum is not None and rule.maximum is not None and rule.minimum > rule.maximum:
        raise ConfigError(f"{where}: minimum {rule.minimum} is above maximum {rule.maximum}")
    if rule.max_length is not None and (field.kind != "string" or rule.max_length < 0):
        raise ConfigError(f"{where}: max_length (>= 0) applies to string fields only, and it is {field.avro}")
    if not (rule.required or numeric or rule.max_length is not None):
        raise ConfigError(f"{where}: the rule checks nothing; set required, finite, minimum, maximum or max_length")
