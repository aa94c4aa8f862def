"""Multinomial (softmax) models: fit properties, artifact round trip and checks, batch scoring, worker refusal."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from stream_scorer.errors import ModelArtifactError, TrainingError
from stream_scorer.model import artifact
from stream_scorer.model.multinomial import load_multinomial, save_multinomial, score_classes, softmax
from stream_scorer.training.dataset import read_table
from stream_scorer.training.multinomial import fit_multinomial, train_multinomial


def write_three_classes(path: Path, n: int = 3000, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    logits = np.column_stack([np.zeros(n), 2 * x[:, 0], -2 * x[:, 0] + 1.5 * x[:, 1]])
    p = softmax(logits)
    labels = np.array([rng.choice(["low", "mid", "high"], p=row) for row in p])
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["event_id", "event.a", "event.b", "label"])
        writer.writerows([f"r{i}", x[i, 0], x[i, 1], labels[i]] for i in range(n))
    return path


def test_gradient_vanishes_at_the_optimum() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 3))
    codes = rng.integers(0, 4, 400)
    C = 0.7
    coef, intercept = fit_multinomial(x, codes, 4, C)
    p = softmax(x @ coef + intercept)
    onehot = np.eye(4)[codes]
    np.testing.assert_allclose(coef + C * x.T @ (p - onehot), 0.0, atol=1e-8)  # penalized weights
    np.testing.assert_allclose((p - onehot).sum(axis=0), 0.0, atol=1e-8)  # unpenalized intercepts
    assert abs(intercept.sum()) < 1e-12


def test_train_save_load_and_a_flipped_byte(tmp_path: Path) -> None:
    table = read_table(write_three_classes(tmp_path / "d.csv"))
    model = train_multinomial(table, name="tiers", version="1")
    assert model.classes == ("high", "low", "mid") and model.coef.shape == (2, 3)
    assert model.metrics["validation"]["accuracy"] > 0.5
    save_multinomial(model, tmp_path / "m")
    loaded = load_multinomial(tmp_path / "m")
    np.testing.assert_array_equal(loaded.coef, model.coef)
    rows = np.array([[0.5, -1.0], [3.0, 0.0]])
    np.testing.assert_allclose(score_classes(loaded, rows).sum(axis=1), 1.0)
    with pytest.raises(ModelArtifactError, match="multinomial model; the streaming worker serves binary"):
        artifact.load(tmp_path / "m")
    data = bytearray((tmp_path / "m" / "arrays.npz").read_bytes())
    data[len(data) // 2] ^= 1
    (tmp_path / "m" / "arrays.npz").write_bytes(bytes(data))
    with pytest.raises(ModelArtifactError, match="sha256"):
        load_multinomial(tmp_path / "m")


def test_one_class_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text("event.a,label\n" + "".join(f"{i},x\n" for i in range(20)))
    with pytest.raises(TrainingError, match="one class"):
        train_multinomial(read_table(path), name="m", version="1")


def test_train_and_score_from_the_command_line(tmp_path: Path, capsys) -> None:
    from stream_scorer.cli import main

    data = write_three_classes(tmp_path / "d.csv")
    out = tmp_path / "model"
    assert main(["train", "--data", str(data), "--multinomial", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["classes"] == ["high", "low", "mid"]
    assert main(["train", "--data", str(data), "--multinomial", "--penalty", "l1", "--out", str(out)]) == 1
    scores = tmp_path / "scores.csv"
    assert main(["score", "--data", str(data), "--model", str(out), "--out", str(scores)]) == 0
    with scores.open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 3000 and rows[0]["event_id"] == "r0"
    model = load_multinomial(out)
    table = read_table(data)
    expected = score_classes(model, np.column_stack([table.columns["event.a"], table.columns["event.b"]]))
    got = np.array([[float(r[f"p_{c}"]) for c in model.classes] for r in rows])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)
    assert [r["predicted_class"] for r in rows] == [model.classes[j] for j in expected.argmax(axis=1)]


def test_batch_scoring_a_multinomial_model_applies_the_signature_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from stream_scorer.cli import main

    data = write_three_classes(tmp_path / "d.csv", n=400)
    out = tmp_path / "model"
    assert main(["train", "--data", str(data), "--multinomial", "--out", str(out)]) == 0
    assert main(["model", "keygen", "--out", str(tmp_path / "keys")]) == 0
    monkeypatch.setenv("STREAM_SCORER_REQUIRE_SIGNATURE", "true")
    monkeypatch.setenv("STREAM_SCORER_MODEL_PUBLIC_KEY", f"file:{tmp_path / 'keys' / 'public.pem'}")
    scores = tmp_path / "scores.csv"
    capsys.readouterr()
    assert main(["score", "--data", str(data), "--model", str(out), "--out", str(scores)]) == 1
    assert "not signed" in capsys.readouterr().err and not scores.exists()
    assert main(["model", "sign", str(out), "--key", f"file:{tmp_path / 'keys' / 'private.pem'}"]) == 0
    assert main(["score", "--data", str(data), "--model", str(out), "--out", str(scores)]) == 0
