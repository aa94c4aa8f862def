"""`stream-scorer run --workers 2`: two processes share the partitions; metrics are per process; SIGTERM stops all."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from examples.fraud.world import FEATURE_GROUPS as DEFAULT_FEATURE_GROUPS
from examples.fraud.world import World, sample_events
from stream_scorer.codec import encode
from stream_scorer.features.store import RedisFeatureStore
from tests.integration.conftest import Stack, Topics, committed_and_end, produce, read_all
from tests.integration.test_process import worker_env
from tools.synth import io as synth_io

pytestmark = pytest.mark.integration


def free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", 0))
                port = a.getsockname()[1]
                b.bind(("127.0.0.1", port + 1))
                return int(port)
            except OSError:
                continue
    raise RuntimeError("no two consecutive free ports")


def wait_ready(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def consumed(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    line = next(line for line in text.splitlines() if line.startswith("stream_scorer_events_consumed_total "))
    return float(line.split()[1])


def start_supervised(
    stack: Stack,
    topics: Topics,
    redis_prefix: str,
    store: RedisFeatureStore,
    world: World,
    model_path: Path,
    group: str,
    log: Path,
    workers: int,
) -> tuple[subprocess.Popen[bytes], int]:
    """Seed the features and start ``stream-scorer run --workers N``; returns it and its first metrics port."""
    synth_io.seed_features(world, store, DEFAULT_FEATURE_GROUPS, now_ms=int(time.time() * 1000))
    port = free_port_pair()
    env = worker_env(stack, topics, redis_prefix, model_path, group, {"STREAM_SCORER_METRICS__PORT": str(port)})
    if workers > 1:
        del env["STREAM_SCORER_BATCH__MAX_EVENTS"]
    with log.open("wb") as out:
        command = [sys.executable, "-m", "stream_scorer", "run", "--workers", str(workers)]
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT), port


def test_two_worker_processes_share_the_partitions(
    stack: Stack,
    topics: Topics,
    redis_prefix: str,
    store: RedisFeatureStore,
    world: World,
    model_path: Path,
    schemas,
    tmp_path: Path,
) -> None:
    group, log = "it-workers", tmp_path / "workers.log"
    supervisor, port = start_supervised(stack, topics, redis_prefix, store, world, model_path, group, log, workers=2)
    try:
        # Wait until both members are up (each serves /readyz once it has partitions).
        deadline = time.monotonic() + 60
        ready = set()
        while len(ready) < 2 and time.monotonic() < deadline:
            for p in (port, port + 1):
                try:
                    if urllib.request.urlopen(f"http://127.0.0.1:{p}/readyz", timeout=1).status == 200:
                        ready.add(p)
                except OSError:
                    pass
            time.sleep(0.3)
        assert len(ready) == 2, log.read_text()[-3000:]
        records, _ = sample_events(world, 3000, start_ms=int(time.time() * 1000), rng=np.random.default_rng(3))
        produce(stack.bootstrap, topics.input, [(r["card_id"].encode(), encode(schemas.events, r)) for r in records])
        predictions = read_all(stack.bootstrap, topics.output, schemas.prediction, expect=3000, timeout=60)
        time.sleep(1)
        per_process = [consumed(port), consumed(port + 1)]
        # A process that dies is restarted: kill one child and wait for its endpoint to come back.
        children = Path(f"/proc/{supervisor.pid}/task/{supervisor.pid}/children").read_text().split()
        assert len(children) == 2
        os.kill(int(children[1]), signal.SIGKILL)
        time.sleep(0.5)
        restarted = wait_ready(port + 1, 60)
        assert restarted, log.read_text()[-3000:]
    finally:
        supervisor.send_signal(signal.SIGTERM)
        code = supervisor.wait(60)
    assert code == 0, log.read_text()[-3000:]
    assert {p["event_id"] for p in predictions} == {r["event_id"] for r in records}
    assert all(n > 0 for n in per_process) and sum(per_process) == 3000  # both worked; metrics are per process
    committed, ends = committed_and_end(stack.bootstrap, group, topics.input)
    assert committed == ends


def test_one_supervised_worker_is_restarted_when_it_dies(
    stack: Stack,
    topics: Topics,
    redis_prefix: str,
    store: RedisFeatureStore,
    world: World,
    model_path: Path,
    schemas,
    tmp_path: Path,
) -> None:
    group, log = "it-one-worker", tmp_path / "worker.log"
    supervisor, port = start_supervised(stack, topics, redis_prefix, store, world, model_path, group, log, workers=1)
    try:
        assert wait_ready(port, 60), log.read_text()[-3000:]
        children = Path(f"/proc/{supervisor.pid}/task/{supervisor.pid}/children").read_text().split()
        assert len(children) == 1, "--workers 1 runs its worker in a supervised child process"
        os.kill(int(children[0]), signal.SIGKILL)
        time.sleep(0.5)
        assert supervisor.poll() is None
        records, _ = sample_events(world, 1000, start_ms=int(time.time() * 1000), rng=np.random.default_rng(8))
        produce(stack.bootstrap, topics.input, [(r["card_id"].encode(), encode(schemas.events, r)) for r in records])
        predictions = read_all(stack.bootstrap, topics.output, schemas.prediction, expect=1000, timeout=90)
        restarted = Path(f"/proc/{supervisor.pid}/task/{supervisor.pid}/children").read_text().split()
    finally:
        supervisor.send_signal(signal.SIGTERM)
        code = supervisor.wait(60)
    assert code == 0, log.read_text()[-3000:]
    assert len(restarted) == 1 and restarted != children  # a new process took the dead one's place
    assert {p["event_id"] for p in predictions} == {r["event_id"] for r in records}
    assert re.search(r"worker 0 exited with -9; restarting in \d+ s", log.read_text())
