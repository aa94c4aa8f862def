"""Gather a batch's input columns and build the feature matrix in the model's feature order (pure).

A model's inputs are named ``<source>.<name>``:

- ``event.amount_log``: a feature computed from the event (:mod:`stream_scorer.events.features`);
- ``event.channel``: a field of the event itself (a category, or a number such as ``event.amount``);
- ``card_velocity.txn_count_1h``: column ``txn_count_1h`` of the feature group ``card_velocity``.

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
from stream_scorer.events.features import EVENT_FEATURES, event_features
from stream_scorer.events.transaction import EVENT_FIELDS
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
    """The input columns of the served models, resolved against the event and the configured groups."""

    event_features: tuple[str, ...]
    event_fields: tuple[str, ...]
    groups: tuple[GroupColumns, ...]

    @property
    def feature_groups(self) -> tuple[FeatureGroup, ...]:
        """The feature groups the models read (a group no model reads is not fetched)."""
        return tuple(g.group for g in self.groups)


def plan_inputs(columns: Iterable[tuple[str, str]], groups: Sequence[FeatureGroup]) -> InputPlan:
    """Resolve (input column, kind) pairs, kind ``numeric`` or ``string`` (a category); raise
    :class:`ModelArtifactError` naming every unknown input and every input read as a kind it cannot be."""
    by_name = {g.name: g for g in groups}
    derived: list[str] = []
    fields: list[str] = []
    per_group: dict[str, tuple[list[str], list[int]]] = {}
    unknown: list[str] = []
    wrong_kind: list[str] = []
    seen: set[str] = set()
    for full_name, kind in columns:
        source, _, name = full_name.partition(".")
        allowed = EVENT_FIELDS[name] if source == "event" and name in EVENT_FIELDS else {"numeric"}
        if kind not in allowed:
            wrong_kind.append(f"{full_name} as {'a category' if kind == 'string' else 'a number'}")
        if full_name in seen:
            continue  # read by several models (maybe as different kinds): gathered once
        seen.add(full_name)
        if source == "event" and name in EVENT_FEATURES:
            derived.append(name)
        elif source == "event" and name in EVENT_FIELDS:
            fields.append(name)
        elif source in by_name and name in by_name[source].features:
            names, sources = per_group.setdefault(source, ([], []))
            names.append(full_name)
            sources.append(by_name[source].features.index(name))
        else:
            unknown.append(full_name)
    if unknown:
        raise ModelArtifactError(
            f"the model reads features that are not configured: {unknown}. Event features are "
            f"event.{{{','.join(EVENT_FEATURES)}}}, event fields event.{{{','.join(EVENT_FIELDS)}}}; "
            f"groups are {sorted(by_name)}"
        )
    if wrong_kind:
        raise ModelArtifactError(f"the model reads inputs as a kind they cannot be: {wrong_kind}")
    return InputPlan(
        event_features=tuple(derived),
        event_fields=tuple(fields),
        groups=tuple(
            GroupColumns(by_name[name], tuple(names), np.array(sources, dtype=np.intp))
            for name, (names, sources) in per_group.items()
        ),
    )


def gather(
    plan: InputPlan,
    batch: EventBatch,
    group_values: Mapping[str, GroupValues],
    freshness: Mapping[str, Freshness],
) -> tuple[dict[str, Any], dict[str, BoolArray]]:
    """Every planned input column of ``batch`` and, per group, which rows were usable (FRESH).

    A group's features are NaN on rows where the group is not FRESH (the spec imputes them). Inputs are not mutated.
    """
    columns: dict[str, Any] = {}
    if plan.event_features:
        computed = event_features(batch)
        columns.update({f"event.{name}": computed[name] for name in plan.event_features})
    for name in plan.event_fields:
        value = getattr(batch, name)
        columns[f"event.{name}"] = value.astype(np.float64) if name == "card_present" else value
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
