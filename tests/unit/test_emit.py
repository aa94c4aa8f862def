"""The prediction encoder writes exactly what fastavro writes, for every freshness status and edge value."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import fastavro
import numpy as np
import pytest

from stream_scorer.codec import encode
from stream_scorer.errors import SchemaError
from stream_scorer.features.freshness import Freshness
from stream_scorer.pipeline import ScoredBatch
from stream_scorer.pipeline.emit import PredictionEncoder
from tests.support import FRAUD_SCHEMAS, FakeMessage, prediction_records, records_batch, small_model, transaction
from tests.unit.conftest import native_or_skip

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
SCHEMAS = FRAUD_SCHEMAS
# One event field of each kind: double, enum, nullable string, boolean, timestamp, int, string.
PASSTHROUGH = ("amount", "channel", "ip_address", "card_present", "event_time", "merchant_category_code", "country")


def scored_batch(
    n: int, seed: int, groups: tuple[str, ...] = ("card_velocity", "merchant_risk"), challengers: int = 0
) -> ScoredBatch:
    rng = np.random.default_rng(seed)
    ids = ["", "é-ünïcode-✓", "x" * 200] + [f"evt-{i}" for i in range(n - 3)]
    records = [transaction(i, event_id=ids[i], event_time=int(rng.integers(0, 2**41))) for i in range(n)]
    keys = [None if i % 3 == 0 else f"card-{i}".encode() * (i % 40) for i in range(n)]
    origin = [FakeMessage(None, key_bytes=k, offset_value=i) for i, k in enumerate(keys)]
    ips = [None if i % 2 else f"203.0.113.{i % 250}" for i in range(n)]
    records = [{**r, "ip_address": ip} for r, ip in zip(records, ips, strict=True)]
    batch = records_batch(records, int(rng.integers(0, 2**42)), origin)
    freshness = {}
    for g in groups:
        status = rng.integers(0, 4, n).astype(np.int8)
        ages = np.where(status <= 1, rng.integers(0, 2**40, n), -1)
        freshness[g] = Freshness(status=status, age_ms=ages)
    scores = np.concatenate([[0.0, 1.0, 5e-324], rng.random(n - 3)])
    k = len(groups) % 4  # the three cases give 2, 1 and 1 reasons
    return ScoredBatch(
        batch=batch,
        scores=scores,
        decisions=scores >= 0.5,
        imputed=rng.random(n) < 0.5,
        group_values={},
        freshness=freshness,
        scored_at_ms=int(rng.integers(0, 2**42)),
        reason_index=rng.integers(0, 3, (n, k)),
        reason_value=rng.normal(size=(n, k)),
        shadow_scores=rng.random((n, challengers)),
        shadow_decisions=rng.random((n, challengers)) < 0.5,
    )


@pytest.mark.parametrize("native", [False, True], ids=["python", "native"])
@pytest.mark.parametrize(
    ("groups", "n_challengers"),
    [((), 0), (("card_velocity", "merchant_risk"), 0), (("a",), 1), (("g1", "g2", "g3", "g4", "g5"), 3)],
)
def test_bytes_equal_fastavro(groups: tuple[str, ...], n_challengers: int, native: bool) -> None:
    if native:
        native_or_skip()
    model = small_model(("event.amount_log", "event.is_ecom", "card_velocity.txn_count_1h"))
    challengers = [
        dataclasses.replace(small_model(("event.amount_log",)), name=f"challenger-ü{j}", version=str(j))
        for j in range(n_challengers)
    ]
    scored = scored_batch(300, seed=len(groups), groups=groups, challengers=n_challengers)
    passthrough = PASSTHROUGH[: len(groups) * 2]
    encoder = PredictionEncoder(SCHEMAS.prediction, model, challengers, passthrough, b"\x00\x00\x00\x00\x07", native)
    assert encoder.native == native
    ours = encoder.encode(scored)
    records = prediction_records(scored, model, challengers, passthrough)
    reference = [b"\x00\x00\x00\x00\x07" + encode(SCHEMAS.prediction, r) for r in records]
    assert ours == reference
    assert all(len(r["shadow"]) == n_challengers for r in records)
    assert {r["key"] is None for r in records} == {True, False}
    assert all(list(r["passthrough"]) == list(passthrough) for r in records)


def test_empty_batch() -> None:
    model = small_model(("event.amount_log", "event.is_ecom", "card_velocity.txn_count_1h"))
    assert PredictionEncoder(SCHEMAS.prediction, model).encode(scored_batch(3, 1)) != []
    empty = scored_batch(3, 1)
    empty = ScoredBatch(
        batch=empty.batch.take(np.array([], dtype=np.intp)),
        scores=np.zeros(0),
        decisions=np.zeros(0, bool),
        imputed=np.zeros(0, bool),
        group_values={},
        freshness={},
        scored_at_ms=0,
    )
    assert PredictionEncoder(SCHEMAS.prediction, model).encode(empty) == []


def test_a_changed_schema_is_refused_at_construction() -> None:
    raw = json.loads((SCHEMAS_DIR / "prediction.avsc").read_text())
    for change in ("add_field", "reorder", "enum", "shadow", "passthrough"):
        edited = copy.deepcopy(raw)
        if change == "add_field":
            edited["fields"].append({"name": "extra", "type": "int", "default": 0})
        elif change == "reorder":
            edited["fields"][3], edited["fields"][4] = edited["fields"][4], edited["fields"][3]
        elif change == "enum":
            edited["fields"][7]["type"]["items"]["fields"][1]["type"]["symbols"].append("OTHER")
        elif change == "passthrough":
            edited["fields"][14]["type"]["values"] = ["null", "string"]
        else:
            edited["fields"][12]["type"]["items"]["fields"][2]["type"] = "float"
        with pytest.raises(SchemaError, match="shape"):
            PredictionEncoder(fastavro.parse_schema(edited), small_model(("event.amount_log",)))
