"""Training with a feature spec, calibration, a cost threshold, the stored report and baselines; serving parity;
batch scoring from the command line."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import fastavro
import numpy as np
import pytest

from stream_scorer.errors import ModelArtifactError
from stream_scorer.model import artifact
from stream_scorer.model.calibration import sigmoid
from stream_scorer.model.fitted_spec import transform
from stream_scorer.model.score import score_one, verify_golden_vectors
from stream_scorer.training.dataset import read_table
from stream_scorer.training.specfile import load_spec
from stream_scorer.training.train import train
from tests.support import fraud_scorer, records_batch, transaction
from tests.unit.test_worker import FakeLookup

SPEC = """
label = "label"
[[numeric]]
column = "event.amount"
impute = "median"
[[onehot]]
column = "event.channel"
[[hashed]]
column = "event.merchant_id"
buckets = 8
"""
CHANNELS = ("POS", "ECOM", "ATM")


def write_dataset(path: Path, n: int = 4000, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3, 1, n)
    channel = rng.choice(CHANNELS, n, p=[0.6, 0.3, 0.1])
    merchant = rng.integers(0, 40, n)
    z = -3 + 0.02 * amount + 1.5 * (channel == "ECOM") + 0.8 * (merchant % 8 == 3)
    label = (rng.random(n) < sigmoid(z)).astype(int)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["event_id", "event.amount", "event.channel", "event.merchant_id", "label", "event_time"])
        for i in range(n):
            value = "" if i % 97 == 0 else f"{amount[i]:.4f}"  # some missing amounts: imputed with the median
            writer.writerow([f"e{i}", value, channel[i], f"merchant-{merchant[i]}", label[i], 1_700_000_000_000 + i])
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("data")
    (directory / "spec.toml").write_text(SPEC)
    return write_dataset(directory / "train.csv"), directory / "spec.toml"


@pytest.mark.parametrize("method", ["none", "platt", "isotonic"])
def test_spec_calibration_report_and_baselines_are_stored_and_served(data, tmp_path: Path, method: str) -> None:
    path, spec_path = data
    model = train(read_table(path), name="m", version="1", spec=load_spec(spec_path), calibration=method)
    assert model.feature_names[:4] == ("event.amount", "event.channel=ATM", "event.channel=ECOM", "event.channel=POS")
    assert len(model.feature_names) == 4 + 8 and model.calibration.method == method
    report = model.metrics["validation"]
    assert report["auc"] > 0.6 and 0 <= report["ece"] < 0.1 and len(report["reliability"]) == 10
    assert {"log_loss", "brier", "precision", "recall", "positive_rate"} <= set(report)
    assert set(model.baselines) == {*model.feature_names, "score"}
    artifact.save(model, tmp_path / "m")
    loaded = artifact.load(tmp_path / "m")
    assert loaded.spec == model.spec and loaded.calibration == model.calibration
    verify_golden_vectors(loaded)  # inputs -> rows -> calibrated scores, as stored at training time

    # Train/serve parity: events carrying the same values are scored by the worker's Scorer exactly as
    # the stored golden rows, and as the plain-Python reference.
    golden = loaded.golden_vectors
    inputs = golden["inputs"]
    events = [
        transaction(i, amount=a, channel=c, merchant_id=m, card_id="card-1")
        for i, (a, c, m) in enumerate(
            zip(inputs["event.amount"], inputs["event.channel"], inputs["event.merchant_id"], strict=True)
        )
        if not np.isnan(a)
    ]
    scored = fraud_scorer(loaded, (), FakeLookup()).score(records_batch(events, 0), 0)
    kept = [i for i, a in enumerate(inputs["event.amount"]) if not np.isnan(a)]
    assert len(kept) >= 6  # the comparison below covers real rows
    np.testing.assert_allclose(scored.scores, np.array(golden["scores"])[kept], rtol=0, atol=1e-12)
    for i, row in zip(kept, np.array(golden["features"])[kept], strict=True):
        assert score_one(row, loaded) == pytest.approx(golden["scores"][i], abs=1e-12)


def test_a_tampered_golden_input_is_refused(data) -> None:
    path, spec_path = data
    model = train(read_table(path), name="m", version="1", spec=load_spec(spec_path))
    inputs = {**model.golden_vectors["inputs"], "event.channel": ["ATM"] * 8}
    tampered = dataclasses.replace(model, golden_vectors={**model.golden_vectors, "inputs": inputs})
    with pytest.raises(ModelArtifactError, match="builds other rows"):
        verify_golden_vectors(tampered)


def test_cost_ratio_moves_the_threshold(data) -> None:
    path, spec_path = data
    table, spec = read_table(path), load_spec(spec_path)
    cheap_misses = train(table, name="m", version="1", spec=spec, cost_fp=10.0, cost_fn=1.0)
    costly_misses = train(table, name="m", version="1", spec=spec, cost_fp=1.0, cost_fn=10.0)
    assert costly_misses.threshold < cheap_misses.threshold
    assert costly_misses.metrics["validation"]["recall"] > cheap_misses.metrics["validation"]["recall"]
    assert costly_misses.training["threshold_rule"] == "cost"
    given = train(table, name="m", version="1", spec=spec, threshold=0.3)
    assert given.threshold == 0.3


def test_avro_input_trains_the_same_model_as_csv(data, tmp_path: Path) -> None:
    path, spec_path = data
    table = read_table(path)
    schema = {
        "type": "record",
        "name": "Row",
        "fields": [
            {"name": "event.amount", "type": ["null", "double"]},
            {"name": "event.channel", "type": "string"},
            {"name": "event.merchant_id", "type": "string"},
            {"name": "label", "type": "int"},
            {"name": "event_time", "type": "long"},
        ],
    }
    # Avro names cannot hold dots: the event's fields sit in a nested record, read back as event.<field>.
    event = {"type": "record", "name": "Event", "fields": [{**f, "name": f["name"][6:]} for f in schema["fields"][:3]]}
    nested = {**schema, "fields": [{"name": "event", "type": event}, *schema["fields"][3:]]}
    rows = [
        {
            "event": {"amount": None if np.isnan(a) else float(a), "channel": str(c), "merchant_id": str(m)},
            "label": int(y),
            "event_time": int(t),
        }
        for a, c, m, y, t in zip(
            table.columns["event.amount"],
            table.columns["event.channel"],
            table.columns["event.merchant_id"],
            table.columns["label"],
            table.columns["event_time"],
            strict=True,
        )
    ]
    with (tmp_path / "train.avro").open("wb") as file:
        fastavro.writer(file, fastavro.parse_schema(nested), rows)
    from_avro = train(read_table(tmp_path / "train.avro"), name="m", version="1", spec=load_spec(spec_path))
    from_csv = train(table, name="m", version="1", spec=load_spec(spec_path))
    np.testing.assert_allclose(from_avro.coef, from_csv.coef, rtol=0, atol=1e-9)


def test_train_then_batch_score_from_the_command_line(data, tmp_path: Path, capsys) -> None:
    from stream_scorer.cli import main

    path, spec_path = data
    model_dir = tmp_path / "model"
    command = ["train", "--data", str(path), "--spec", str(spec_path), "--out", str(model_dir)]
    assert (
        main([*command, "--calibration", "platt", "--cost-fp", "1", "--cost-fn", "5", "--class-weight", "balanced"])
        == 0
    )
    out = capsys.readouterr()
    assert "ece" in out.out and "fit:" in out.err  # the report table, and progress on stderr
    model = artifact.load(model_dir)
    assert model.training["class_weight"] == "balanced" and model.calibration.method == "platt"
    for suffix in ("csv", "avro"):
        target = tmp_path / f"scores.{suffix}"
        assert main(["score", "--data", str(path), "--model", str(model_dir), "--out", str(target)]) == 0
        if suffix == "csv":
            with target.open() as file:
                rows = list(csv.DictReader(file))
            scores = [float(r["score"]) for r in rows]
            assert rows[0]["event_id"] == "e0" and len(rows[0]["reasons"].split(";")) == 3
        else:
            with target.open("rb") as file:
                records = list(fastavro.reader(file))
            assert [r["score"] for r in records] == scores and records[5]["model_version"] == model.version
    assert len(scores) == 4000
    # Each batch score is the plain-Python reference score of that row's features.
    table = read_table(path)
    for row in (0, 97, 1234, 3999):
        inputs = {c: table.columns[c][row : row + 1] for c in model.spec.input_columns}
        features = transform(model.spec, inputs)[0]
        assert scores[row] == pytest.approx(score_one(features, model), abs=1e-12)
    assert json.loads(out.out[out.out.index("{") :])["calibration"] == "platt"
