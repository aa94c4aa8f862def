"""Vectorize and score: the contracts of the math (imputation, order, no mutation, batch == row by row)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from examples.fraud import world as fraud_world
from stream_scorer.config import FeatureGroup
from stream_scorer.errors import ModelArtifactError
from stream_scorer.features.freshness import assess
from stream_scorer.features.layout import GroupValues
from stream_scorer.model.calibration import sigmoid
from stream_scorer.model.fitted_spec import transform
from stream_scorer.model.score import ScoringWeights, score, score_one, top_contributions
from stream_scorer.pipeline.vectorize import plan_inputs
from tests.support import FRAUD_CONTRACT, records_batch, small_model, transaction, vectorize

FIELDS = FRAUD_CONTRACT.fields
FRAUD_SPEC = Path(__file__).resolve().parents[2] / "examples" / "fraud" / "features.toml"

VELOCITY = FeatureGroup(name="velocity", entity="card", features=("a", "b", "c"), max_age_seconds=60)
MERCHANT = FeatureGroup(name="merchant", entity="merchant", features=("x", "y"), max_age_seconds=60)
# Deliberately not the configured order: the model's order wins.
NAMES = ("velocity.c", "event.amount", "merchant.y", "velocity.a", "event.card_present", "merchant.x")


def group_values(values: np.ndarray, updated: np.ndarray, present: np.ndarray) -> GroupValues:
    return GroupValues(values=values, updated_at_ms=updated, present=present, malformed=np.zeros(len(present), bool))


def fixture_inputs(n: int = 6):
    rng = np.random.default_rng(3)
    batch = records_batch(
        [transaction(i, amount=float(rng.uniform(1, 500)), card_present=bool(i % 2)) for i in range(n)]
    )
    now = 100_000
    velocity = group_values(rng.normal(size=(n, 3)), np.full(n, now - 1_000), np.ones(n, bool))
    velocity.updated_at_ms[1] = now - 120_000  # stale
    velocity.present[2] = False  # missing
    merchant = group_values(rng.normal(size=(n, 2)), np.full(n, now), np.ones(n, bool))
    merchant.present[4] = False
    groups = {"velocity": velocity, "merchant": merchant}
    freshness = {
        g.name: assess(groups[g.name].updated_at_ms, groups[g.name].present, now, 60_000) for g in (VELOCITY, MERCHANT)
    }
    return batch, groups, freshness


def test_plan_rejects_unknown_features_by_name() -> None:
    with pytest.raises(ModelArtifactError, match=r"velocity\.zzz.*event\.nope"):
        plan_inputs([(n, "numeric") for n in ("velocity.a", "velocity.zzz", "event.nope")], [VELOCITY], FIELDS)


def test_vectorize_follows_model_order_and_imputes_stale_and_missing_groups() -> None:
    batch, groups, freshness = fixture_inputs()
    model = small_model(NAMES)
    plan = plan_inputs([(n, "numeric") for n in NAMES], [VELOCITY, MERCHANT], FIELDS)
    matrix, imputed = vectorize(plan, model.serving_spec, batch, groups, freshness)
    v, m = groups["velocity"].values, groups["merchant"].values
    amount, present = batch.fields["amount"].values, batch.fields["card_present"].values
    assert matrix[0].tolist() == [v[0, 2], amount[0], m[0, 1], v[0, 0], float(present[0]), m[0, 0]]
    assert matrix[1, 4] == 1.0
    # Row 1 (stale velocity) and row 2 (missing velocity): velocity columns take the defaults.
    for row in (1, 2):
        assert matrix[row, [0, 3]].tolist() == model.defaults[[0, 3]].tolist()
        assert matrix[row, [2, 5]].tolist() == [m[row, 1], m[row, 0]]
    assert matrix[4, [2, 5]].tolist() == model.defaults[[2, 5]].tolist()
    assert imputed.tolist() == [False, True, True, False, True, False]


def test_vectorize_and_score_do_not_mutate_inputs() -> None:
    batch, groups, freshness = fixture_inputs()
    model = small_model(NAMES)
    plan = plan_inputs([(n, "numeric") for n in NAMES], [VELOCITY, MERCHANT], FIELDS)
    before = {k: g.values.copy() for k, g in groups.items()}
    defaults = model.defaults.copy()
    matrix, _ = vectorize(plan, model.serving_spec, batch, groups, freshness)
    matrix_before = matrix.copy()
    score(matrix, ScoringWeights.of(model))
    assert all(np.array_equal(before[k], groups[k].values) for k in groups)
    assert np.array_equal(defaults, model.defaults) and np.array_equal(matrix_before, matrix)


def test_batch_scores_equal_row_by_row_reference() -> None:
    rng = np.random.default_rng(5)
    model = small_model(tuple(f"event.f{i}" for i in range(9)), seed=9)
    matrix = rng.normal(0, 3, size=(500, 9))
    batch = score(matrix, ScoringWeights.of(model))
    rows = np.array([score_one(row, model) for row in matrix])
    np.testing.assert_allclose(batch, rows, rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_reason_codes_are_the_largest_contributions_in_order_ties_by_feature_order(k: int) -> None:
    model = small_model(tuple(f"event.f{i}" for i in range(4)), seed=k)
    rng = np.random.default_rng(k)
    n_features = len(model.feature_names)
    matrix = rng.integers(-2, 3, size=(300, n_features)).astype(float)  # small integers: many ties
    matrix = matrix * model.scale / np.where(model.coef == 0, 1.0, model.coef) + model.mean
    matrix[:20] = rng.choice([np.inf, -np.inf, np.nan, 1e308, 0.0], size=(20, n_features))  # non-finite ones too
    index, value = top_contributions(matrix, model, k)
    with np.errstate(over="ignore", invalid="ignore"):
        contributions = model.coef * (matrix - model.mean) / model.scale
    expected = np.argsort(-contributions, axis=1, kind="stable")[:, : min(k, n_features)]  # the reference
    assert np.array_equal(index, expected)
    np.testing.assert_array_equal(value, np.take_along_axis(contributions, expected, axis=1))


def test_probabilities_stay_in_unit_interval_for_extreme_inputs() -> None:
    model = small_model(("event.amount_log", "event.is_ecom"))
    matrix = np.array([[1e308, -1e308], [-1e300, 1e300], [0.0, 0.0], [1e6, 1e6]])
    with np.errstate(over="ignore", invalid="ignore"):
        p = score(np.nan_to_num(matrix, posinf=1e300, neginf=-1e300), ScoringWeights.of(model))
    assert np.all((p >= 0) & (p <= 1)) and np.isfinite(p).all()


def test_sigmoid_is_symmetric_and_monotone() -> None:
    z = np.linspace(-40, 40, 1001)
    p = sigmoid(z)
    np.testing.assert_allclose(p + sigmoid(-z), 1.0, atol=1e-15)
    assert np.all(np.diff(p) >= 0)


def test_the_fraud_spec_declares_exactly_the_fraud_worlds_event_features() -> None:
    """features.toml, fitted and transformed by the package, computes the same values as the fraud world's own
    ground-truth code, for every transform it declares (log1p with a clip, cyclic, member, compare)."""
    from stream_scorer.pipeline.vectorize import gather
    from stream_scorer.training.featurespec import fit_spec
    from stream_scorer.training.specfile import load_spec

    rows = [
        transaction(
            0,
            channel="ECOM",
            card_present=False,
            entry_mode="ONLINE",
            country="FR",
            card_country="US",
            merchant_category_code=6051,
            amount=0.0,
            event_time=1_700_000_000_000 + 6 * 3_600_000,
        ),
        transaction(1, channel="ATM", card_present=True, entry_mode="MANUAL", merchant_category_code=5411),
        transaction(2, channel="POS", amount=1e6, event_time=1_700_000_123_456),
    ]
    spec = load_spec(FRAUD_SPEC)
    event_inputs = [c for c in spec.columns if c.startswith("event.")]
    plan = plan_inputs([(c, "string") for c in event_inputs], [], FIELDS)
    columns, _ = gather(plan, records_batch(rows), {}, {})
    groups = {c: np.ones(len(rows)) for c in spec.columns if not c.startswith("event.")}
    fitted = fit_spec(spec, {**columns, **groups})
    matrix = transform(fitted, {**columns, **groups})
    truth = fraud_world.event_features(rows)
    for name in fraud_world.EVENT_FEATURES:
        j = fitted.feature_names.index(f"event.{name}")
        np.testing.assert_allclose(matrix[:, j], truth[name], rtol=0, atol=1e-12, err_msg=name)
    assert matrix[:, fitted.feature_names.index("event.is_ecom")].tolist() == [1.0, 0.0, 0.0]


def test_plan_refuses_inputs_read_as_a_kind_they_cannot_be() -> None:
    with pytest.raises(ModelArtifactError, match=r"event\.merchant_id \(string\) as a number.*velocity\.a"):
        plan_inputs([("event.merchant_id", "numeric"), ("velocity.a", "string")], [VELOCITY], FIELDS)
    inputs = [("event.merchant_category_code", "string"), ("event.merchant_category_code", "numeric")]
    plan = plan_inputs(inputs, [], FIELDS)
    assert plan.event_fields == ("merchant_category_code",)


def test_event_categories_read_the_same_at_training_and_serving() -> None:
    from stream_scorer.pipeline.vectorize import gather
    from stream_scorer.training.dataset import canonical_column
    from stream_scorer.training.featurespec import FeatureSpec, HashedFeature, OneHotFeature, fit_spec

    # A training file may hold the MCC as a zero-padded string and card_present as true/false.
    training = {
        "event.merchant_category_code": np.array(["0742", "5411", "0742"], dtype=object),
        "event.card_present": np.array(["true", "false", "true"], dtype=object),
    }
    canonical = {name: canonical_column(name, v, FIELDS[name.removeprefix("event.")]) for name, v in training.items()}
    spec = FeatureSpec(
        onehot=(OneHotFeature("event.merchant_category_code"),),
        hashed=(HashedFeature("event.card_present", 4),),
    )
    fitted = fit_spec(spec, canonical)
    batch = records_batch(
        [
            transaction(0, merchant_category_code=742, card_present=True),
            transaction(1, merchant_category_code=5411, card_present=False),
        ]
    )
    plan = plan_inputs(fitted.input_columns.items(), [], FIELDS)
    columns, _ = gather(plan, batch, {}, {})
    np.testing.assert_array_equal(transform(fitted, columns), transform(fitted, canonical)[:2])
    assert transform(fitted, columns)[:, : len(fitted.onehot[0].categories)].sum() == 2  # every MCC matched
