"""The decode stage against a fixed reference, side by side in one process (no servers).

Decodes the same batches of the fraud example's synthetic transactions with today's decoder (strict Avro,
validation, columns of the fields the fraud model reads) and with fastavro's ``schemaless_reader`` (one call
per message, records only: the floor a generic decoder starts from), in interleaved rounds, and prints the
medians in µs per event and their ratio. Before/after comparisons of a change run this at both commits.

    .venv/bin/python -m benchmarks.decode [--batch 4000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import fastavro
import numpy as np

from examples.fraud.world import make_world, sample_events
from stream_scorer import codec, wiring
from stream_scorer.training.specfile import load_spec
from tests.support import FakeMessage
from tools.synth.examples import EXAMPLES, example_settings

REPO = Path(__file__).resolve().parents[1]


class Fastavro:
    """fastavro's reader, one call per message: the reference."""

    def __init__(self, schema: object) -> None:
        self.schema = schema

    def decode(self, messages: list[FakeMessage], now: int) -> Decoded:
        records = [fastavro.schemaless_reader(io.BytesIO(m.value() or b""), self.schema, self.schema) for m in messages]
        return Decoded(records)


class Decoded:
    def __init__(self, records: list[object]) -> None:
        self.batch, self.invalid = records, []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    settings = example_settings("fraud")
    schemas = wiring.schemas(settings)
    contract = wiring.event_contract(settings, schemas)
    strict = codec.EventDecoder(contract, schemas, "avro")
    strict.read_also(
        [
            c.removeprefix("event.")
            for c in load_spec(EXAMPLES / "fraud" / "features.toml").columns
            if c.startswith("event.")
        ]
    )
    world = make_world(seed=3, n_cards=2000, n_merchants=200, n_devices=2000)
    records, _ = sample_events(world, args.batch, start_ms=int(time.time() * 1000), rng=np.random.default_rng(1))
    messages = [
        FakeMessage(codec.encode(schemas.events, r), r["card_id"].encode(), offset_value=i)
        for i, r in enumerate(records)
    ]
    decoders = {
        "fastavro (reference)": Fastavro(schemas.events),
        "ours": strict,
    }
    now = int(time.time() * 1000)
    times: dict[str, list[float]] = {name: [] for name in decoders}
    for _ in range(args.rounds):
        for name, decoder in decoders.items():
            started = time.perf_counter()
            result = decoder.decode(messages, now)
            times[name].append((time.perf_counter() - started) / args.batch * 1e6)
            assert len(result.batch) == args.batch and not result.invalid
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f"decode stage, {args.batch} events per batch, medians of {args.rounds} interleaved rounds")
    for name, median in medians.items():
        print(f"  {name:18s} {median:6.2f} µs per event")
    reference, ours = medians["fastavro (reference)"], medians["ours"]
    print(f"  ours / fastavro: {ours / reference:.2f}x ({ours - reference:+.2f} µs per event)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
