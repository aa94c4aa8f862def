"""Training: the optimum satisfies its first-order conditions, truth is recovered, bad data is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stream_scorer.errors import TrainingError
from stream_scorer.model import calibration
from stream_scorer.model.artifact import LogisticModel
from stream_scorer.model.calibration import sigmoid
from stream_scorer.training import solvers
from stream_scorer.training.dataset import Table, labels_from
from stream_scorer.training.dataset import read_table as read_csv
from stream_scorer.training.featurespec import FeatureSpec
from stream_scorer.training.report import auc, quality_report
from stream_scorer.training.specfile import load_spec
from stream_scorer.training.train import fit, prepare, train
from tests.support import fraud_scorer, records_batch, transaction
from tests.unit.test_train_lifecycle import SPEC, write_dataset
from tests.unit.test_worker import FakeLookup


def logistic_data(n: int, coef: np.ndarray, intercept: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(coef)))
    y = (rng.random(n) < sigmoid(x @ coef + intercept)).astype(float)
    return x, y


def test_fit_satisfies_the_penalized_optimality_conditions() -> None:
    x, y = logistic_data(2000, np.array([1.5, -2.0, 0.0, 0.7]), -0.5)
    C = 0.05
    coef, intercept = fit(x, y, C=C)
    residual = sigmoid(x @ coef + intercept) - y
    # Gradient of 0.5*||w||^2 + C*sum(logloss) is zero at the optimum; the intercept is not penalized.
    np.testing.assert_allclose(coef + C * x.T @ residual, 0.0, atol=1e-8)
    assert abs(C * residual.sum()) < 1e-8


def test_fit_recovers_the_true_coefficients_with_weak_regularization() -> None:
    truth = np.array([1.5, -2.0, 0.0, 0.7])
    x, y = logistic_data(40_000, truth, -0.5, seed=2)
    coef, intercept = fit(x, y, C=100.0)
    np.testing.assert_allclose(coef, truth, atol=0.08)
    assert abs(intercept + 0.5) < 0.08


def test_stronger_penalty_shrinks_coefficients() -> None:
    x, y = logistic_data(1000, np.array([2.0, -1.0]), 0.0)
    weak, _ = fit(x, y, C=10.0)
    strong, _ = fit(x, y, C=0.001)
    assert np.linalg.norm(strong) < np.linalg.norm(weak)


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.write_text("\n".join(",".join(map(str, r)) for r in [header, *rows]) + "\n")
    return path


def test_train_end_to_end_from_csv(tmp_path: Path) -> None:
    x, y = logistic_data(3000, np.array([1.0, -1.0]), -1.0, seed=4)
    times = np.arange(3000) * 1000
    rows = [[x[i, 0] * 10 + 5, x[i, 1], int(y[i]), times[i]] for i in range(3000)]
    data = read_csv(write_csv(tmp_path / "d.csv", ["event.a", "event.b", "label", "event_time"], rows))
    model = train(data, name="m", version="v1", C=1.0)
    assert model.feature_names == ("event.a", "event.b")
    np.testing.assert_allclose(model.mean[0], 5.0, atol=0.5)
    assert model.metrics["validation"]["auc"] > 0.75
    assert model.training["split"] == "time" and 0 < model.threshold < 1
    np.testing.assert_array_equal(model.defaults, model.mean)
    assert len(model.golden_vectors["scores"]) == 8 and model.training["penalty"] == "l2"


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        (["event.a", "label"], [], "empty"),
        (["event.a", "target"], [[1, 0], [2, 1]], "no label column 'label'"),
        (["event.a", "label"], [[1, 0]] * 20, "one class"),
        (["event.a", "label"], [[1, "nan"]] * 20, "NaN"),
        (["event.a", "label"], [[1, 2]] * 20, "0 or 1"),
        (["event.a", "label"], [["inf", 1], [1, 0]] * 10, "infinite"),
        (["event.a", "label"], [[1, 0], [2, 1]], "at least 10"),
    ],
)
def test_bad_datasets_are_refused_with_a_clear_error(tmp_path: Path, header, rows, message) -> None:
    path = write_csv(tmp_path / "bad.csv", header, rows)
    with pytest.raises(TrainingError, match=message):
        train(read_csv(path), name="m", version="1")


def test_empty_file_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(TrainingError, match="empty"):
        read_csv(tmp_path / "empty.csv")
    with pytest.raises(TrainingError, match="does not exist"):
        read_csv(tmp_path / "nope.csv")


def test_auc_against_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(300), 2)  # with ties
    labels = (rng.random(300) < 0.3).astype(float)
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairwise = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (
        len(pos) * len(neg)
    )
    assert auc(scores, labels) == pytest.approx(pairwise, abs=1e-12)


def test_metrics_are_nan_not_zero_when_undefined() -> None:
    out = quality_report(np.array([0.1, 0.2]), np.array([0.0, 0.0]), threshold=0.5)
    assert np.isnan(out["auc"]) and np.isnan(out["precision"]) and np.isnan(out["recall"])
    assert np.isnan(quality_report(np.array([]), np.array([]), 0.5)["log_loss"])


def test_no_penalty_refuses_separable_classes() -> None:
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(-3.0, 1.0, (100, 2)), rng.normal(3.0, 1.0, (100, 2))]
    y = np.r_[np.zeros(100), np.ones(100)]
    with pytest.raises(TrainingError, match=r"perfectly separable.*use penalty l2, l1 or elasticnet"):
        fit(x, y, penalty="none")
    # Quasi-complete: a flag that is set on some positives only; the other rows overlap.
    x, y = logistic_data(500, np.array([1.0, -1.0]), 0.0, seed=3)
    flag = (rng.random(500) < 0.2).astype(float)
    y[flag == 1] = 1.0
    with pytest.raises(TrainingError, match="perfectly separable"):
        fit(np.c_[x, flag], y, penalty="none")
    coef, _ = fit(np.c_[x, flag], y, penalty="l2")  # a penalty keeps the weights finite
    assert np.all(np.isfinite(coef)) and abs(coef[2]) < 10


def test_no_penalty_satisfies_the_likelihood_equations_and_weights_count_like_copies() -> None:
    x, y = logistic_data(1000, np.array([1.5, -2.0, 0.0]), -0.5, seed=5)
    coef, intercept = fit(x, y, penalty="none", C=0.01)  # C is ignored
    residual = sigmoid(x @ coef + intercept) - y
    np.testing.assert_allclose(x.T @ residual, 0.0, atol=1e-8)
    assert abs(residual.sum()) < 1e-8
    weights = np.where(np.arange(1000) < 100, 2.0, 1.0)
    weighted = solvers.newton_unpenalized(x, y, weights)
    copied = solvers.newton_unpenalized(np.r_[x, x[:100]], np.r_[y, y[:100]])
    np.testing.assert_allclose(weighted[0], copied[0], atol=1e-9)


@pytest.mark.parametrize(
    ("class_weight", "message"),
    [
        ("balance", "class_weight must be"),
        (3.0, "class_weight must be"),
        ({0: 1.0, 2: 1.0}, "keys \\[2\\]"),
        ({0: -1.0, 1: 1.0}, ">= 0"),
        ({1: float("nan")}, ">= 0"),
        ({0: 0.0, 1: 0.0}, "all zero"),
    ],
)
def test_bad_class_weight_is_refused(class_weight, message) -> None:
    x, y = logistic_data(50, np.array([1.0]), 0.0)
    with pytest.raises(TrainingError, match=message):
        fit(x, y, class_weight=class_weight)


def test_bad_sample_weight_is_refused() -> None:
    x, y = logistic_data(50, np.array([1.0]), 0.0)
    for weights, message in [(np.ones(49), "one weight per row"), (-np.ones(50), ">= 0"), (np.zeros(50), "all zero")]:
        with pytest.raises(TrainingError, match=message):
            solvers.newton_l2(x, y, 1.0, weights)


@pytest.mark.parametrize("penalty", ["l2", "l1", "elasticnet"])
def test_sample_weight_two_on_every_row_equals_doubling_C(penalty) -> None:
    x, y = logistic_data(300, np.array([1.0, -0.5, 0.0]), 0.3, seed=6)
    twos = np.full(300, 2.0)
    if penalty == "l2":
        weighted, doubled = solvers.newton_l2(x, y, 0.1, twos), solvers.newton_l2(x, y, 0.2)
    else:
        ratio = 1.0 if penalty == "l1" else 0.4
        weighted, doubled = solvers.proximal(x, y, 0.1, ratio, twos), solvers.proximal(x, y, 0.2, ratio)
    np.testing.assert_allclose(weighted[0], doubled[0], atol=1e-8)
    assert abs(weighted[1] - doubled[1]) < 1e-8


def test_balanced_class_weights() -> None:
    y = np.array([0.0] * 6 + [1.0] * 2)
    weights = solvers.class_sample_weight(y, "balanced")
    np.testing.assert_allclose(weights, [8 / (2 * 6)] * 6 + [8 / (2 * 2)] * 2)
    assert weights[y == 0].sum() == pytest.approx(weights[y == 1].sum())  # each class carries half the total
    np.testing.assert_array_equal(solvers.class_sample_weight(np.ones(4), "balanced"), np.ones(4))
    x, y = logistic_data(400, np.array([1.0, -1.0]), -1.5, seed=7)
    share = y.mean()
    explicit = {0: 1.0 / (2.0 * (1.0 - share)), 1: 1.0 / (2.0 * share)}
    balanced, by_dict = fit(x, y, class_weight="balanced"), fit(x, y, class_weight=explicit)
    np.testing.assert_allclose(balanced[0], by_dict[0], atol=1e-10)
    assert fit(x, y, class_weight="balanced")[1] > fit(x, y)[1]  # the minority class is pushed up


@pytest.fixture(scope="module")
def parity_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Table, FeatureSpec]:
    directory = tmp_path_factory.mktemp("parity")
    (directory / "spec.toml").write_text(SPEC)
    return read_csv(write_dataset(directory / "train.csv")), load_spec(directory / "spec.toml")


def worker_scores(model: LogisticModel, table: Table) -> np.ndarray:
    """Every row served as the worker serves it: events, the fitted spec's transform, the folded weights."""
    rows = zip(*(table.columns[f"event.{c}"].tolist() for c in ("amount", "channel", "merchant_id")), strict=True)
    events = [transaction(i, amount=a, channel=c, merchant_id=m) for i, (a, c, m) in enumerate(rows)]
    return fraud_scorer(model, (), FakeLookup()).score(records_batch(events, 0), 0).scores


def flag_cost(flagged: np.ndarray, labels: np.ndarray, cost_fp: float, cost_fn: float) -> float:
    return float(cost_fp * np.sum(flagged & (labels == 0)) + cost_fn * np.sum(~flagged & (labels == 1)))


def flag_f1(flagged: np.ndarray, labels: np.ndarray) -> float:
    tp = np.sum(flagged & (labels == 1))
    return float(2 * tp / (np.sum(flagged) + np.sum(labels == 1)))


@pytest.mark.parametrize("method", ["none", "platt"])
@pytest.mark.parametrize("costs", [(1.0, 1.0), (1.0, 3.0), (3.0, 1.0), None])  # None: the best-F1 rule
def test_served_decisions_reproduce_the_threshold_choice_and_the_report(parity_data, method, costs) -> None:
    table, spec = parity_data
    rule = {} if costs is None else {"cost_fp": costs[0], "cost_fn": costs[1]}
    model = train(table, name="m", version="1", spec=spec, calibration=method, **rule)
    assert model.training["threshold_rule"] == ("best_f1" if costs is None else "cost")
    # The trainer's rows and training-time scores: standardize, then the coefficients (train() does this).
    data = prepare(
        table, spec, label="label", time_column="event_time", holdout=0.2, seed=0, progress=lambda stage: None
    )
    calibration_rows, test_rows = np.array_split(data.held_out, [len(data.held_out) // 2])
    logits = ((data.matrix - model.mean) / model.scale) @ model.coef + model.intercept
    trained = calibration.apply(model.calibration, logits)
    served = worker_scores(model, table)
    assert not np.array_equal(served, trained)  # folding the standardization rounds differently...
    np.testing.assert_array_equal(served >= model.threshold, trained >= model.threshold)  # ...not the decisions

    # On the calibration rows, the served decisions are the optimum the threshold was chosen for.
    s, y = trained[calibration_rows], labels_from(table, "label")[calibration_rows]
    cuts = [*np.unique(s), np.inf]
    flagged = served[calibration_rows] >= model.threshold
    if costs is None:
        assert flag_f1(flagged, y) == max(flag_f1(s >= t, y) for t in cuts)
    else:
        assert flag_cost(flagged, y, *costs) == min(flag_cost(s >= t, y, *costs) for t in cuts)
    # On the test rows, the served decisions give the stored report's counts.
    served_report = quality_report(served[test_rows], labels_from(table, "label")[test_rows], model.threshold)
    for key in ("precision", "recall", "f1", "false_positive_rate"):
        assert served_report[key] == model.metrics["validation"][key], key
