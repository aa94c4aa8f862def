"""Build the feature matrix in the model's feature order, imputing missing and stale groups (pure).

A model feature is named ``<source>.<feature>``: ``event.amount_log`` comes from
:mod:`stream_scorer.model.event_features`; ``card_velocity.txn_count_1h`` is column
``txn_count_1h`` of the feature group ``card_velocity``. :func:`plan_columns` resolves these names
once at startup, so a model that asks for an unknown feature is refused before any event is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from stream_scorer.batch import BoolArray, Float64Array
from stream_scorer.config import FeatureGroup
from stream_scorer.errors import ModelArtifactError
from stream_scorer.features.freshness import Freshness
from stream_scorer.features.layout import GroupValues
from stream_scorer.model.event_features import EVENT_FEATURES


@dataclass(frozen=True, slots=True)
class GroupColumns:
    """Where one feature group's columns go: ``matrix[:, positions] = values[:, sources]``."""

    group: FeatureGroup
    positions: npt.NDArray[np.intp]
    sources: npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    """The model's feature order resolved against the event features and the configured groups."""

    n_features: int
    event_columns: tuple[tuple[int, str], ...]
    groups: tuple[GroupColumns, ...]

    @property
    def feature_groups(self) -> tuple[FeatureGroup, ...]:
        """The feature groups the model reads (a group it does not read is not fetched)."""
        return tuple(g.group for g in self.groups)


def plan_columns(feature_names: Sequence[str], groups: Sequence[FeatureGroup]) -> ColumnPlan:
    """Resolve the model's feature names; raise :class:`ModelArtifactError` naming any unknown one."""
    by_name = {g.name: g for g in groups}
    event_columns: list[tuple[int, str]] = []
    per_group: dict[str, tuple[list[int], list[int]]] = {}
    unknown: list[str] = []
    for position, full_name in enumerate(feature_names):
        source, _, feature = full_name.partition(".")
        if source == "event" and feature in EVENT_FEATURES:
            event_columns.append((position, feature))
        elif source in by_name and feature in by_name[source].features:
            positions, sources = per_group.setdefault(source, ([], []))
            positions.append(position)
            sources.append(by_name[source].features.index(feature))
        else:
            unknown.append(full_name)
    if unknown:
        raise ModelArtifactError(
            f"the model reads features that are not configured: {unknown}. Event features are "
            f"event.{{{','.join(EVENT_FEATURES)}}}; groups are {sorted(by_name)}"
        )
    return ColumnPlan(
        n_features=len(feature_names),
        event_columns=tuple(event_columns),
        groups=tuple(
            GroupColumns(by_name[name], np.array(pos, dtype=np.intp), np.array(src, dtype=np.intp))
            for name, (pos, src) in per_group.items()
        ),
    )


def vectorize(
    plan: ColumnPlan,
    events: Mapping[str, Float64Array],
    group_values: Mapping[str, GroupValues],
    freshness: Mapping[str, Freshness],
    defaults: Float64Array,
) -> tuple[Float64Array, BoolArray]:
    """The raw feature matrix (n, k) and, per row, whether any group was imputed.

    Rows whose group is not FRESH get ``defaults`` for that group's features. Inputs are not mutated.
    """
    n = len(next(iter(events.values()))) if events else len(next(iter(group_values.values())).present)
    matrix = np.empty((n, plan.n_features), dtype=np.float64)
    for position, name in plan.event_columns:
        matrix[:, position] = events[name]
    imputed = np.zeros(n, dtype=bool)
    for columns in plan.groups:
        name = columns.group.name
        usable = freshness[name].usable
        block = group_values[name].values[:, columns.sources]
        matrix[:, columns.positions] = np.where(usable[:, None], block, defaults[columns.positions])
        imputed |= ~usable
    return matrix, imputed
