"""The encode stage side by side in one process (no servers): fastavro, our Python column encoder, the native one.

Encodes the same scored batches (random scores, three feature groups of every freshness status, three reason
codes, one challenger) with each, in interleaved rounds, and prints the medians in µs per event. Every
encoder's bytes are checked equal to fastavro's first.

    .venv/bin/python -m benchmarks.encode [--batch 4000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable

from benchmarks import print_medians
from stream_scorer.codec import encode
from stream_scorer.codec.native import native_available
from stream_scorer.pipeline import ScoredBatch
from stream_scorer.pipeline.emit import PredictionEncoder
from tests.support import FRAUD_SCHEMAS, prediction_records, small_model
from tests.unit.test_emit import scored_batch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    model = small_model(("event.amount_log", "event.is_ecom", "card_velocity.txn_count_1h"))
    challengers = [dataclasses.replace(small_model(("event.amount_log",)), name="challenger", version="1")]
    scored = scored_batch(args.batch, seed=1, groups=("card_velocity", "merchant_risk", "device_risk"), challengers=1)
    records = prediction_records(scored, model, challengers, ())

    def reference(_: ScoredBatch) -> list[bytes]:
        return [encode(FRAUD_SCHEMAS.prediction, r) for r in records]

    encoders: dict[str, Callable[[ScoredBatch], list[bytes]]] = {"fastavro (reference)": reference}
    for name, native in (("python", False), ("native", True)):
        if not native or native_available():
            encoders[name] = PredictionEncoder(FRAUD_SCHEMAS.prediction, model, challengers, (), b"", native).encode
    expected = reference(scored)
    times: dict[str, list[float]] = {name: [] for name in encoders}
    for name, run in encoders.items():
        assert run(scored) == expected, name
    for _ in range(args.rounds):
        for name, run in encoders.items():
            started = time.perf_counter()
            run(scored)
            times[name].append((time.perf_counter() - started) / args.batch * 1e6)
    print(f"encode stage, {args.batch} predictions per batch, medians of {args.rounds} interleaved rounds")
    print_medians(times)
    return 0


if __name__ == "__main__":
    sys.exit(main())
