"""Faults on the real stack: SIGKILLed workers in both delivery modes, and a Redis outage mid-stream.

Reduced versions of the chaos scenarios (scripts/chaos runs the full ones).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import redis

from examples.fraud.world import FEATURE_GROUPS as DEFAULT_FEATURE_GROUPS
from examples.fraud.world import World, sample_events
from stream_scorer.codec import encode
from stream_scorer.features.store import RedisFeatureStore
from tests.integration.conftest import Stack, Topics, committed_and_end, produce, read_all, read_to_end
from tests.integration.test_process import start_worker, stop
from tools.synth import io as synth_io

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
def test_sigkilled_workers_lose_nothing(
    delivery: str,
    stack: Stack,
    topics: Topics,
    redis_prefix: str,
    store: RedisFeatureStore,
    world: World,
    model_path: Path,
    schemas,
    tmp_path: Path,
) -> None:
    synth_io.seed_features(world, store, DEFAULT_FEATURE_GROUPS, now_ms=int(time.time() * 1000))
    records, _ = sample_events(world, 6000, start_ms=int(time.time() * 1000), rng=np.random.default_rng(12))
    produce(stack.bootstrap, topics.input, [(r["card_id"].encode(), encode(schemas.events, r)) for r in records])
    group, log = f"it-kill-{delivery}", tmp_path / "worker.log"
    env = {"STREAM_SCORER_KAFKA__DELIVERY": delivery, "STREAM_SCORER_BATCH__MAX_EVENTS": "50"}

    seen = 0
    for round_ in range(3):  # kill -9 three times while the backlog drains
        worker = start_worker(stack, topics, redis_prefix, model_path, group, log, env)
        target = seen + 600
        deadline = time.monotonic() + 60
        while seen < target and time.monotonic() < deadline:
            seen = len(read_all(stack.bootstrap, topics.output, schemas.prediction, expect=target, timeout=2))
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        assert seen >= target, f"round {round_}: only {seen} predictions\n{log.read_text()[-3000:]}"

    final = start_worker(stack, topics, redis_prefix, model_path, group, log, env)
    try:
        ids: set[str] = set()
        deadline = time.monotonic() + 90
        while len(ids) < len(records) and time.monotonic() < deadline:
            # Every record to the end, not the first len(records): after kills, duplicates come among them, and
            # stopping at a count would leave the last events unread (a flaky "loss" that was the test's own).
            predictions = read_to_end(stack.bootstrap, topics.output, schemas.prediction)
            ids = {p["event_id"] for p in predictions}
            if len(ids) < len(records):
                time.sleep(1.0)
    finally:
        assert stop(final, log) == 0, log.read_text()[-3000:]
    assert ids == {r["event_id"] for r in records}, "events were lost"
    duplicates = len(predictions) - len(ids)
    if delivery == "exactly_once":
        # read_committed: the killed workers' open transactions were aborted, so nothing is seen twice.
        assert duplicates == 0
    committed, ends = committed_and_end(stack.bootstrap, group, topics.input)
    assert committed == ends


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    """A redis-server of this test's own on a free loopback port, so that it can be killed and restarted."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                client.ping()
                client.close()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def test_a_redis_outage_degrades_predictions_and_recovers(
    stack: Stack, topics: Topics, world: World, model_path: Path, schemas, tmp_path: Path
) -> None:
    own = OwnRedis(tmp_path)
    own.start()
    try:
        client = redis.Redis.from_url(own.url)
        store = RedisFeatureStore(client, "outage")
        groups = DEFAULT_FEATURE_GROUPS
        synth_io.seed_features(world, store, groups, now_ms=int(time.time() * 1000))
        log = tmp_path / "worker.log"
        env = {
            "STREAM_SCORER_REDIS__URL": own.url,
            "STREAM_SCORER_REDIS__KEY_PREFIX": "outage",
            "STREAM_SCORER_REDIS__BREAKER_RESET_SECONDS": "1",
            "STREAM_SCORER_REDIS__SOCKET_TIMEOUT_SECONDS": "0.2",
        }
        worker = start_worker(stack, topics, "outage", model_path, "it-outage", log, env)
        rng = np.random.default_rng(5)

        def publish(n: int) -> list[str]:
            records, _ = sample_events(world, n, start_ms=int(time.time() * 1000), rng=rng)
            produce(
                stack.bootstrap,
                topics.input,
                [(r["card_id"].encode(), encode(schemas.events, r)) for r in records],
            )
            return [r["event_id"] for r in records]

        before = publish(300)
        read_all(stack.bootstrap, topics.output, schemas.prediction, expect=300, timeout=60)
        own.kill()
        during = publish(300)
        read_all(stack.bootstrap, topics.output, schemas.prediction, expect=600, timeout=60)
        own.start()
        synth_io.seed_features(world, store, groups, now_ms=int(time.time() * 1000))  # its data went with it
        time.sleep(2.5)  # past the breaker's reset period
        after = publish(300)
        predictions = read_all(stack.bootstrap, topics.output, schemas.prediction, expect=900, timeout=60)
        assert stop(worker, log) == 0, log.read_text()[-3000:]
    finally:
        if own.process is not None and own.process.poll() is None:
            own.kill()

    by_id = {p["event_id"]: p for p in predictions}
    assert set(by_id) == set(before) | set(during) | set(after), "an event was lost during the outage"

    def statuses(ids: list[str]) -> set[str]:
        return {item["status"] for i in ids for item in by_id[i]["feature_freshness"]}

    assert "UNAVAILABLE" not in statuses(before)
    assert statuses(during) == {"UNAVAILABLE"} and all(by_id[i]["imputed"] for i in during)
    assert "UNAVAILABLE" not in statuses(after)
    latencies = [by_id[i]["scored_at"] - by_id[i]["consumed_at"] for i in during]
    assert max(latencies) < 10_000  # no hang while Redis is away: timeouts, then the open breaker
