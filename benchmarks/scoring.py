"""In-process cost of the scoring stages per event: champion alone, + reason codes, + 1/2/4 challengers.

No Kafka and no Redis: a fixed feature lookup stands in for the store, so only vectorize, score, reason
codes and encode are timed (the stages challengers add work to). Configurations run interleaved, round
after round; the report gives medians. Run: .venv/bin/python -m benchmarks.scoring
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from examples.fraud.world import FEATURE_GROUPS as DEFAULT_FEATURE_GROUPS
from examples.fraud.world import make_world, sample_events
from stream_scorer.codec import load_schemas
from stream_scorer.config import FeatureGroup
from stream_scorer.events.columns import to_batch
from stream_scorer.features.layout import GroupValues
from stream_scorer.pipeline import Scorer
from stream_scorer.pipeline.emit import PredictionEncoder
from tests.support import FakeMessage
from tools.synth.examples import example_contract, example_history, train_example

REPO = Path(__file__).resolve().parents[1]


class FixedLookup:
    """Every entity present and fresh, with the world's values; no I/O."""

    def __init__(self, values: Mapping[str, np.ndarray], now_ms: int) -> None:
        self.values, self.now_ms = values, now_ms

    def fetch(
        self, groups: Sequence[FeatureGroup], ids_by_entity: Mapping[str, Sequence[str]]
    ) -> dict[str, GroupValues]:
        out = {}
        for g in groups:
            n = len(ids_by_entity[g.entity])
            out[g.name] = GroupValues(
                values=self.values[g.name][:n],
                updated_at_ms=np.full(n, self.now_ms - 1000, np.int64),
                present=np.ones(n, bool),
                malformed=np.zeros(n, bool),
            )
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--batches-per-round", type=int, default=20)
    args = parser.parse_args()
    world = make_world(seed=41, n_cards=20_000, n_merchants=2_000, n_devices=24_000)
    with tempfile.TemporaryDirectory() as tmp:
        history = Path(tmp) / "history.csv"
        example_history("fraud", world, history, 30_000)
        champion = train_example("fraud", history, model="champion")
        challengers = [
            train_example("fraud", history, model=f"challenger-{j}", C=C) for j, C in enumerate((0.3, 0.1, 0.03, 0.01))
        ]
    now = int(time.time() * 1000)
    records, _ = sample_events(world, args.batch, start_ms=now, rng=np.random.default_rng(1))
    contract = example_contract("fraud")
    batch = to_batch(records, [FakeMessage(None)] * len(records), contract, tuple(contract.fields), now)
    rng = np.random.default_rng(2)
    values = {g.name: rng.normal(size=(args.batch, len(g.features))) for g in DEFAULT_FEATURE_GROUPS}
    lookup = FixedLookup(values, now)
    schema = load_schemas(REPO / "schemas").prediction
    configs = {"champion alone": (0, 0), "+ 3 reason codes": (3, 0)}
    configs |= {f"+ reasons + {c} challenger(s)": (3, c) for c in (1, 2, 4)}
    setups = {}
    for name, (reasons, count) in configs.items():
        scorer = Scorer(
            champion, DEFAULT_FEATURE_GROUPS, lookup, reasons, challengers[:count], event_fields=contract.fields
        )
        setups[name] = (scorer, PredictionEncoder(schema, champion, challengers[:count]))
    timings: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(args.rounds):
        for name, (scorer, encoder) in setups.items():
            started = time.perf_counter()
            for _ in range(args.batches_per_round):
                encoder.encode(scorer.score(batch, now))
            timings[name].append(1e6 * (time.perf_counter() - started) / (args.batch * args.batches_per_round))
    base = statistics.median(timings["champion alone"])
    print(f"batch {args.batch}, medians of {args.rounds} interleaved rounds of {args.batches_per_round} batches")
    print(f"{'configuration':32s} {'us/event':>9s} {'vs alone':>9s}  (vectorize + score + reasons + encode)")
    for name, values_us in timings.items():
        median = statistics.median(values_us)
        print(f"{name:32s} {median:9.2f} {median / base:8.2f}x")


if __name__ == "__main__":
    main()
