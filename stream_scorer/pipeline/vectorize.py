"""Gather a batch's input columns and build the feature matrix in the model's feature order (pure).

A model's inputs are named ``<source>.<name>``:

- ``event.<path>``: a field of the event itself, by its dotted path in the event schema (a number, or a
  category); features computed from event fields are declared in the model's feature spec;
- ``<group>.<feature>``: column ``<feature>`` of the configured feature group ``<group>``.

:func:`plan_inputs` resolves these names once, when a model is loaded, so a model that reads an
unknown input is refused before any event is read. :func:`gather` collects the columns of one batch,
with NaN for every feature of a group that is not FRESH (missing, stale, or Redis unavailable); the
model's feature spec (:func:`~stream_scorer.model.fitted_spec.transform`) then imputes those NaN with
its training-time values and expands categories into one-hot or hashed columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_scorer.batch import BoolArray, EventBatch
from stream_scorer.config import FeatureGroup
from stream_scorer.errors import ModelArtifactError
from stream_scorer.events.columns import as_input
from stream_scorer.events.schema import FieldType
from stream_scorer.features.freshness import Freshness
from stream_scorer.features.layout import GroupValues
from stream_scorer.model.fitted_spec import FittedSpec


@dataclass(frozen=True, slots=True)
class GroupColumns:
    """The columns read from one feature group: ``names[i]`` is ``values[:, sources[i]]``."""

    group: FeatureGroup
    names: tuple[str, ...]
    sources: npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class InputPlan:
    """The input columns of the served models, resolved against the event schema and the configured groups."""

    event_fields: tuple[str, ...]  # dotted paths in the event schema
    groups: tuple[GroupColumns, ...]

    @property
    def feature_groups(self) -> tuple[FeatureGroup, ...]:
        """The feature groups the models read (a group no model reads is not fetched)."""
        return tuple(g.group for g in self.groups)


def plan_inputs(
    columns: Iterable[tuple[str, str]], groups: Sequence[FeatureGroup], event_fields: Mapping[str, FieldType]
) -> InputPlan:
    """Resolve (input column, kind) pairs, kind ``numeric`` or ``string`` (a category); raise
    :class:`ModelArtifactError` naming every unknown input and every input read as a kind it cannot be."""
    by_name = {g.name: g for g in groups}
    fields: list[str] = []
    per_group: dict[str, tuple[list[str], list[int]]] = {}
    unknown: list[str] = []
    wrong_kind: list[str] = []
    seen: set[str] = set()
    for full_name, kind in columns:
        source, _, name = full_name.partition(".")
        field = event_fields.get(name) if source == "event" else None
        if kind == "numeric" and field is not None and not field.numeric:
            wrong_kind.append(f"{full_name} ({field.avro}) as a number")
        if kind == "string" and field is None and source != "event":
            wrong_kind.append(f"{full_name} (a feature-group number) as a category")
        if full_name in seen:
            continue  # read by several models (maybe as different kinds): gathered once
        seen.add(full_name)
        if field is not None:
            fields.append(name)
        elif source in by_name and name in by_name[source].features:
            names, sources = per_group.setdefault(source, ([], []))
            names.append(full_name)
            sources.append(by_name[source].features.index(name))
        else:
            unknown.append(full_name)
    if unknown:
        raise ModelArtifactError(
            f"the model reads inputs that neither the event schema nor a feature group provides: {unknown}. "
            f"Event fields are event.<path>, one of {sorted(event_fields)}; groups are {sorted(by_name)}. "
            "(An artifact trained before event features were declared in its feature spec must be retrained.)"
        )
    if wrong_kind:
        raise ModelArtifactError(f"the model reads inputs as a kind they cannot be: {wrong_kind}")
    return InputPlan(
        event_fields=tuple(fields),
        groups=tuple(
            GroupColumns(by_name[name], tuple(names), np.array(sources, dtype=np.intp))
            for name, (names, sources) in per_group.items()
        ),
    )


def check_categories(spec: FittedSpec, event_fields: Mapping[str, FieldType]) -> None:
    """Refuse listed categories an event field can never hold: an enum's non-symbols, a boolean's other than
    1/0 (a typo would make the feature constant)."""
    listed = [(o.column, o.categories) for o in spec.onehot]
    listed += [(n.derive.inputs[0], n.derive.values) for n in spec.numeric if n.derive and n.derive.values]
    for column, values in listed:
        field = event_fields.get(column.removeprefix("event.")) if column.startswith("event.") else None
        allowed = (
            field.symbols
            if field and field.kind == "enum"
            else ("0", "1")
            if field and field.kind == "boolean"
            else None
        )
        if allowed is not None and (unknown := [v for v in values if v not in allowed]):
            raise ModelArtifactError(f"{column} can never be {unknown}: its values are {list(allowed)}")


def gather(
    plan: InputPlan,
    batch: EventBatch,
    group_values: Mapping[str, GroupValues],
    freshness: Mapping[str, Freshness],
) -> tuple[dict[str, Any], dict[str, BoolArray]]:
    """Every planned input column of ``batch`` and, per group, which rows were usable (FRESH).

    A group's features are NaN on rows where the group is not FRESH (the spec imputes them). Inputs are not mutated.
    """
    columns: dict[str, Any] = {f"event.{path}": as_input(batch.fields[path]) for path in plan.event_fields}
    usable_by_group: dict[str, BoolArray] = {}
    for group_columns in plan.groups:
        name = group_columns.group.name
        usable = usable_by_group[name] = freshness[name].usable
        block = np.where(usable[:, None], group_values[name].values[:, group_columns.sources], np.nan)
        columns.update({column: block[:, i] for i, column in enumerate(group_columns.names)})
    return columns, usable_by_group


def groups_read(spec: FittedSpec) -> tuple[str, ...]:
    """The feature groups a spec reads (its inputs named ``<group>.<feature>``)."""
    return tuple(dict.fromkeys(c.partition(".")[0] for c in spec.input_columns if not c.startswith("event.")))
