"""The decode stage against a fixed reference, side by side in one process (no servers).

Decodes the same batches of the fraud example's synthetic transactions with our two decoders (strict Avro,
validation, columns of the fields the fraud model reads: the Python reader, and the native one where the
extension is built) and with fastavro's ``schemaless_reader`` (one call per message, records only: the floor
a generic Python decoder starts from), in interleaved rounds, clean and with ``--malformed`` of the messages
cut short, and prints the medians in µs per event and their ratios.

    .venv/bin/python -m benchmarks.decode [--batch 4000] [--rounds 15] [--malformed 0.01]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import fastavro
import numpy as np

from benchmarks import print_medians
from examples.fraud.world import make_world, sample_events
from stream_scorer import codec, wiring
from stream_scorer.codec.native import native_available
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
    parser.add_argument("--malformed", type=float, default=0.01, help="share of messages cut short, in a second run")
    args = parser.parse_args()
    settings = example_settings("fraud")
    schemas = wiring.schemas(settings)
    contract = wiring.event_contract(settings, schemas)
    inputs = [c.removeprefix("event.") for c in load_spec(EXAMPLES / "fraud" / "features.toml").columns]
    decoders: dict[str, object] = {"fastavro (reference)": Fastavro(schemas.events)}
    for name, native in (("python", False), ("native", True)):
        if native and not native_available():
            continue
        decoder = codec.EventDecoder(contract, schemas, "avro", native=native)
        decoder.read_also([c for c in inputs if c in contract.fields])
        decoders[name] = decoder
    world = make_world(seed=3, n_cards=2000, n_merchants=200, n_devices=2000)
    records, _ = sample_events(world, args.batch, start_ms=int(time.time() * 1000), rng=np.random.default_rng(1))
    messages = [
        FakeMessage(codec.encode(schemas.events, r), r["card_id"].encode(), offset_value=i)
        for i, r in enumerate(records)
    ]
    now = int(time.time() * 1000)
    rng = np.random.default_rng(2)
    cut = set(rng.choice(len(messages), int(len(messages) * args.malformed), replace=False).tolist())
    broken = [
        FakeMessage((m.value() or b"")[:3], m.key(), offset_value=i) if i in cut else m for i, m in enumerate(messages)
    ]
    for label, batch in (("clean", messages), (f"{args.malformed:.0%} malformed", broken)):
        times: dict[str, list[float]] = {name: [] for name in decoders}
        for _ in range(args.rounds):
            for name, decoder in decoders.items():
                if name.startswith("fastavro") and batch is broken:
                    continue
                started = time.perf_counter()
                result = decoder.decode(batch, now)  # type: ignore[attr-defined]
                times[name].append((time.perf_counter() - started) / args.batch * 1e6)
                assert len(result.batch) + len(result.invalid) == args.batch
        print(f"decode stage, {label}, {args.batch} events per batch, medians of {args.rounds} interleaved rounds")
        print_medians(times)
    return 0


if __name__ == "__main__":
    sys.exit(main())
