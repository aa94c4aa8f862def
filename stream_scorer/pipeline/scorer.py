"""Decoded batch -> enrich -> freshness -> vectorize -> score -> prediction records. Knows no Kafka."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from stream_scorer.batch import BoolArray, EventBatch, Float64Array
from stream_scorer.config import FeatureGroup
from stream_scorer.events.schema import FieldType
from stream_scorer.features.freshness import Freshness, assess
from stream_scorer.features.layout import GroupValues
from stream_scorer.features.screen import Bounds, plausible_range, screen
from stream_scorer.features.store import FeatureLookup
from stream_scorer.model.artifact import LogisticModel
from stream_scorer.model.fitted_spec import FittedSpec, transform
from stream_scorer.model.score import StackedWeights, score_stacked, top_contributions
from stream_scorer.pipeline.vectorize import InputPlan, check_categories, gather, groups_read, plan_inputs


@dataclass(frozen=True, slots=True)
class ScoredBatch:
    """A batch with its scores, decisions and the freshness of every feature group it used."""

    batch: EventBatch
    scores: Float64Array
    decisions: BoolArray
    imputed: BoolArray
    group_values: dict[str, GroupValues]
    freshness: dict[str, Freshness]
    scored_at_ms: int
    stage_seconds: dict[str, float] = field(default_factory=dict)
    # Reason codes: per row, the indices (into the model's feature names) and contributions of the top features.
    reason_index: npt.NDArray[np.intp] = field(default_factory=lambda: np.zeros((0, 0), np.intp))
    reason_value: Float64Array = field(default_factory=lambda: np.zeros((0, 0)))
    # Challengers (shadow scoring): one column per challenger, in the scorer's order; they never decide.
    shadow_scores: Float64Array = field(default_factory=lambda: np.zeros((0, 0)))
    shadow_decisions: BoolArray = field(default_factory=lambda: np.zeros((0, 0), bool))
    # The champion's raw feature rows (n, k): drift monitoring bins them against the training baselines.
    features: Float64Array = field(default_factory=lambda: np.zeros((0, 0)))

    def all_scores(self) -> Float64Array:
        """Scores by model, one column each: the champion, then the challengers."""
        return np.column_stack([self.scores, self.shadow_scores]) if self.shadow_scores.size else self.scores[:, None]

    def all_decisions(self) -> BoolArray:
        """Decisions by model, laid out as :meth:`all_scores`."""
        if self.shadow_decisions.size:
            return np.column_stack([self.decisions, self.shadow_decisions])
        return self.decisions[:, None]

    # Per group, how many records were refused as implausible: (updated in the future, value out of range).
    implausible: dict[str, tuple[int, int]] = field(default_factory=dict)


class Scorer:
    """Scores batches with a champion model and optional challengers; built at startup and on every reload.

    Each distinct feature spec builds its block of the batch matrix once (models with the same spec share
    it); all models are then scored by one matrix product over the blocks side by side, each with its own
    imputation values, standardization and calibration.
    """

    def __init__(
        self,
        model: LogisticModel,
        groups: Sequence[FeatureGroup],
        lookup: FeatureLookup,
        reason_codes: int = 3,
        challengers: Sequence[LogisticModel] = (),
        *,
        event_fields: Mapping[str, FieldType] | None = None,
        max_future_ms: int = 300_000,
        range_margin: float = 10.0,
    ) -> None:
        self.model = model
        self.challengers = tuple(challengers)
        self.reason_codes = reason_codes
        models = (model, *self.challengers)
        blocks: dict[str, int] = {}
        self._specs: list[FittedSpec] = []
        offsets = []
        width = 0
        for m in models:
            spec = m.serving_spec
            key = json.dumps(spec.to_dict(), sort_keys=True)
            if key not in blocks:
                blocks[key] = width
                self._specs.append(spec)
                width += spec.n_features
            offsets.append(blocks[key])
        inputs = (item for s in self._specs for item in s.input_columns.items())
        self.plan: InputPlan = plan_inputs(inputs, groups, event_fields or {})
        for spec in self._specs:
            check_categories(spec, event_fields or {})
        self._champion_groups = groups_read(self._specs[0])  # the prediction's flags describe the champion's inputs
        self._stacked = StackedWeights.of(models, offsets, width)
        self._thresholds = np.array([c.threshold for c in self.challengers], dtype=np.float64)
        self._lookup = lookup
        self._max_future_ms = max_future_ms
        # The champion's training ranges only: a model in shadow must not change what the champion is served.
        self._bounds = feature_bounds(self.plan, self._specs[:1], range_margin)

    @property
    def models(self) -> tuple[LogisticModel, ...]:
        """The champion, then the challengers: the columns of :meth:`ScoredBatch.all_scores`."""
        return (self.model, *self.challengers)

    @property
    def feature_groups(self) -> tuple[FeatureGroup, ...]:
        """The groups the models read, in fetch order."""
        return self.plan.feature_groups

    def score(self, batch: EventBatch, now_ms: int) -> ScoredBatch:
        """Score every event of ``batch``; feature ages are measured at ``now_ms``."""
        started = time.perf_counter()
        groups = self.plan.feature_groups
        ids_by_entity: dict[str, Sequence[str]] = {g.entity: batch.entity_keys.get(g.entity, []) for g in groups}
        fetched_values = self._lookup.fetch(groups, ids_by_entity)  # enrich
        latest = now_ms + self._max_future_ms
        screened = {g.name: screen(fetched_values[g.name], latest, self._bounds.get(g.name)) for g in groups}
        group_values = {name: s.values for name, s in screened.items()}  # implausible records taken out
        fetched = time.perf_counter()
        freshness = {
            g.name: assess(
                group_values[g.name].updated_at_ms,
                group_values[g.name].present,
                now_ms,
                int(g.max_age_seconds * 1000),
                group_values[g.name].available,
            )
            for g in groups
        }  # freshness
        columns, usable = gather(self.plan, batch, group_values, freshness)  # vectorize
        imputed = np.zeros(len(batch), dtype=bool)
        for group in self._champion_groups:
            imputed |= ~usable[group]
        blocks = [transform(spec, columns) for spec in self._specs]
        matrix = blocks[0] if len(blocks) == 1 else np.hstack(blocks)
        vectorized = time.perf_counter()
        scores = score_stacked(matrix, self._stacked)  # score: champion in column 0, then the challengers
        reason_index, reason_value = top_contributions(blocks[0], self.model, self.reason_codes)
        done = time.perf_counter()
        shadow = scores[:, 1:]
        return ScoredBatch(
            batch=batch,
            scores=scores[:, 0],
            decisions=scores[:, 0] >= self.model.threshold,
            shadow_scores=shadow,
            shadow_decisions=shadow >= self._thresholds,
            imputed=imputed,
            group_values=group_values,
            freshness={g: freshness[g] for g in self._champion_groups},
            scored_at_ms=now_ms,
            reason_index=reason_index,
            reason_value=reason_value,
            features=blocks[0],
            implausible={
                name: (int(np.count_nonzero(s.future)), int(np.count_nonzero(s.out_of_range)))
                for name, s in screened.items()
            },
            stage_seconds={"enrich": fetched - started, "vectorize": vectorized - fetched, "score": done - vectorized},
        )


def feature_bounds(plan: InputPlan, specs: Sequence[FittedSpec], margin: float) -> dict[str, Bounds]:
    """Per feature group, the plausible range of each feature from the training ranges in ``specs``
    (the widest where several models read a feature; unbounded where none stored a range)."""
    ranges: dict[str, tuple[float, float]] = {}
    for spec in specs:
        for n in spec.numeric:
            if n.low is not None and n.high is not None and n.derive is None:
                low, high = plausible_range(n.low, n.high, margin)
                seen = ranges.get(n.column, (low, high))
                ranges[n.column] = (min(low, seen[0]), max(high, seen[1]))
    out: dict[str, Bounds] = {}
    for columns in plan.groups:
        k = len(columns.group.features)
        lows, highs = np.full(k, -np.inf), np.full(k, np.inf)
        for name, source in zip(columns.names, columns.sources.tolist(), strict=True):
            if name in ranges:
                lows[source], highs[source] = ranges[name]
        if np.isfinite(lows).any():
            out[columns.group.name] = (lows, highs)
    return out


def status_counts(scored: ScoredBatch) -> dict[str, np.ndarray[Any, np.dtype[np.intp]]]:
    """Per group, how many rows were FRESH, STALE, MISSING and UNAVAILABLE (in that order)."""
    return {name: np.bincount(f.status, minlength=4) for name, f in scored.freshness.items()}
