"""The decode stage before and after strict Avro, side by side in one process (no servers).

Loads the lenient decoder from an earlier commit (``--before``, default: the commit before strict Avro)
beside today's strict one, decodes the same batches of synthetic Transaction messages with each, in
interleaved rounds, and prints the medians in µs per event and their ratio.

    .venv/bin/python -m benchmarks.decode [--batch 4000] [--rounds 15] [--before cee7e77~1]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np

from stream_scorer import codec
from tests.support import FakeMessage
from tools.synth.world import make_world, sample_events

REPO = Path(__file__).resolve().parents[1]


def module_at(commit: str, path: str, name: str) -> ModuleType:
    """``path`` as it was at ``commit``, imported under ``name``."""
    source = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=REPO, check=True, capture_output=True).stdout
    file = Path(tempfile.mkdtemp()) / f"{name}.py"
    file.write_bytes(source)
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--before", default="cee7e77~1", help="a commit with the lenient decoder")
    args = parser.parse_args()
    old = module_at(args.before, "stream_scorer/codec.py", "codec_before")
    schemas = codec.load_schemas(REPO / "schemas")
    world = make_world(seed=3, n_cards=2000, n_merchants=200, n_devices=2000)
    records, _ = sample_events(world, args.batch, start_ms=int(time.time() * 1000), rng=np.random.default_rng(1))
    messages = [
        FakeMessage(codec.encode(schemas.transaction, r), r["card_id"].encode(), offset_value=i)
        for i, r in enumerate(records)
    ]
    decoders = {
        "lenient (before)": old.EventDecoder(old.load_schemas(REPO / "schemas"), "avro"),
        "strict (now)": codec.EventDecoder(schemas, "avro"),
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
    before, now_ = medians["lenient (before)"], medians["strict (now)"]
    print(f"  strict / lenient: {now_ / before:.2f}x ({now_ - before:+.2f} µs per event)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
