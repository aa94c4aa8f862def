"""Implausible feature records (absurd values, updated_at far in the future) are served as missing and counted."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
from prometheus_client import CollectorRegistry

from examples.fraud.world import FEATURE_GROUPS as DEFAULT_FEATURE_GROUPS
from examples.fraud.world import FEATURE_NAMES
from stream_scorer.config import FeatureGroup
from stream_scorer.features.freshness import FRESH, MISSING
from stream_scorer.features.layout import GroupValues, pack, unpack_many
from stream_scorer.features.screen import screen
from stream_scorer.model.fitted_spec import FittedNumeric, fitted_from_dict
from stream_scorer.monitoring.metrics import ScorerMetrics
from stream_scorer.pipeline.emit import PredictionEncoder
from stream_scorer.worker import BatchBounds, ModelServing, Topics, Worker
from stream_scorer.worker.guard import InvalidInputGuard
from tests.support import fraud_decoder, fraud_scorer, small_model
from tests.unit.test_worker import SCHEMAS, FakeSink, FakeSource, messages, transaction

NOW = 1_700_000_100_000
GROUP = DEFAULT_FEATURE_GROUPS[0]


class OddRecords:
    """Card ``card-1`` has a 3e38 in its first group, ``card-2`` an updated_at ten years ahead; others are fine."""

    def fetch(
        self, groups: Sequence[FeatureGroup], ids_by_entity: Mapping[str, Sequence[str]]
    ) -> dict[str, GroupValues]:
        out = {}
        for g in groups:
            blobs = []
            for entity in ids_by_entity[g.entity]:
                values, updated = [1.0] * len(g.features), NOW - 1000
                if g is GROUP and entity == "card-1":
                    values[0] = 3e38
                if g is GROUP and entity == "card-2":
                    updated = NOW + 10 * 365 * 86_400_000
                blobs.append(pack(values, updated, g.version))
            out[g.name] = unpack_many(blobs, len(g.features), g.version)
        return out


def ranged_model():
    """A model whose spec stores a training range of [0, 5] for every numeric input."""
    model = small_model(FEATURE_NAMES)
    spec = model.serving_spec
    numeric = tuple(dataclasses.replace(n, low=0.0, high=5.0) for n in spec.numeric)
    return dataclasses.replace(model, spec=dataclasses.replace(spec, numeric=numeric))


def test_training_ranges_round_trip_and_old_specs_have_none() -> None:
    spec = ranged_model().serving_spec
    assert fitted_from_dict(spec.to_dict()) == spec
    old = small_model(FEATURE_NAMES).serving_spec.to_dict()
    assert "low" not in old["numeric"][0] and fitted_from_dict(old).numeric[0].low is None


def test_without_a_training_range_nothing_is_refused_but_the_future_still_is() -> None:
    group = unpack_many([pack([3e38], NOW), pack([1.0], NOW + 10**12)], 1)
    out = screen(group, NOW + 300_000, None)
    assert out.values.present.tolist() == [True, False] and out.future.tolist() == [False, True]


def test_absurd_and_future_records_are_imputed_flagged_and_counted_by_the_worker() -> None:
    registry = CollectorRegistry()
    scorer = fraud_scorer(
        ranged_model(), DEFAULT_FEATURE_GROUPS, OddRecords(), max_future_ms=300_000, range_margin=10.0
    )
    records = [transaction(i, card_id=f"card-{i}") for i in range(4)]
    worker = Worker(
        source=FakeSource([messages(records)]),
        delivery=FakeSink(),
        decoder=fraud_decoder(input_format="avro"),
        serving=ModelServing(scorer, PredictionEncoder(SCHEMAS.prediction, scorer.model)),
        metrics=ScorerMetrics(registry),
        bounds=BatchBounds(max_events=100, max_wait_seconds=0.01),
        topics=Topics(predictions="predictions", dead_letters="dead-letters"),
        guard=InvalidInputGuard(max_consecutive=1000, max_ratio=1.0, window=1000),
        clock_ms=lambda: NOW,
    )
    scored = scorer.score(worker._decoder.decode(messages(records), NOW).batch, NOW)
    status = scored.freshness[GROUP.name].status.tolist()
    assert status == [FRESH, MISSING, MISSING, FRESH]
    assert scored.imputed.tolist() == [False, True, True, False]
    assert scored.scores.min() >= 0.0 and scored.scores.max() <= 1.0 and scored.scores[1] < 1.0
    worker.step()
    value = registry.get_sample_value
    assert value("stream_scorer_feature_records_malformed_total", {"group": GROUP.name}) == 2
    assert value("stream_scorer_feature_records_implausible_total", {"group": GROUP.name, "reason": "future_time"}) == 1
    assert (
        value("stream_scorer_feature_records_implausible_total", {"group": GROUP.name, "reason": "out_of_range"}) == 1
    )


def test_the_fitted_range_is_the_training_minimum_and_maximum() -> None:
    from stream_scorer.training.featurespec import NumericFeature, _fit_numeric

    fitted = _fit_numeric(NumericFeature("g.x", "mean", True), np.array([3.0, np.nan, -1.0, 7.0]))
    assert isinstance(fitted, FittedNumeric) and (fitted.low, fitted.high) == (-1.0, 7.0)


def test_a_challenger_in_shadow_does_not_change_what_the_champion_is_served() -> None:
    champion = dataclasses.replace(small_model(FEATURE_NAMES), name="champion")  # trained before ranges were stored
    challenger = dataclasses.replace(ranged_model(), name="challenger")
    scorer = fraud_scorer(champion, DEFAULT_FEATURE_GROUPS, OddRecords(), challengers=[challenger])
    batch = fraud_decoder(input_format="avro").decode(messages([transaction(1, card_id="card-1")]), NOW).batch
    scored = scorer.score(batch, NOW)
    assert scored.freshness[GROUP.name].status.tolist() == [FRESH]  # the 3e38 is not refused for the champion
    assert scored.implausible[GROUP.name] == (0, 0)
