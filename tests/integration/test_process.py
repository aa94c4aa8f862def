"""`stream-scorer run` as a real process: SIGTERM finishes, commits and exits 0; a restart loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from examples.fraud.world import FEATURE_GROUPS as DEFAULT_FEATURE_GROUPS
from examples.fraud.world import World, sample_events
from stream_scorer.codec import encode
from stream_scorer.features.store import RedisFeatureStore
from tests.integration.conftest import Stack, Topics, committed_and_end, produce, read_all, read_to_end, worker_env_base
from tools.synth import io as synth_io

pytestmark = pytest.mark.integration


def worker_env(
    stack: Stack, topics: Topics, prefix: str, model_path: Path, group: str, extra_env: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment of a `stream-scorer run` process for one test's topics, group and key prefix."""
    return {
        **os.environ,
        **worker_env_base(),
        "STREAM_SCORER_KAFKA__BOOTSTRAP_SERVERS": stack.bootstrap,
        "STREAM_SCORER_KAFKA__INPUT_TOPIC": topics.input,
        "STREAM_SCORER_KAFKA__OUTPUT_TOPIC": topics.output,
        "STREAM_SCORER_KAFKA__LABELS_TOPIC": topics.labels,
        "STREAM_SCORER_KAFKA__DEAD_LETTER_TOPIC": topics.dead_letters,
        "STREAM_SCORER_KAFKA__GROUP_ID": group,
        "STREAM_SCORER_KAFKA__CREATE_TOPICS": "false",
        "STREAM_SCORER_REDIS__URL": stack.redis_url,
        "STREAM_SCORER_REDIS__KEY_PREFIX": prefix,
        "STREAM_SCORER_METRICS__PORT": "0",
        "STREAM_SCORER_BATCH__MAX_EVENTS": "100",
        "STREAM_SCORER_MODEL_PATH": str(model_path),
        "STREAM_SCORER_KAFKA__SESSION_TIMEOUT_SECONDS": "6",
        **(extra_env or {}),
    }


def start_worker(
    stack: Stack,
    topics: Topics,
    prefix: str,
    model_path: Path,
    group: str,
    log: Path,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    env = worker_env(stack, topics, prefix, model_path, group, extra_env)
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "stream_scorer", "run"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def stop(process: subprocess.Popen[bytes], log: Path) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"worker did not exit within 30 s of SIGTERM:\n{log.read_text()[-3000:]}")


def test_sigterm_commits_and_a_restart_resumes_without_loss(
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
    records, _ = sample_events(world, 4000, start_ms=int(time.time() * 1000), rng=np.random.default_rng(2))
    produce(stack.bootstrap, topics.input, [(r["card_id"].encode(), encode(schemas.events, r)) for r in records])
    group, log = "it-restart", tmp_path / "worker.log"

    first = start_worker(stack, topics, redis_prefix, model_path, group, log)
    partial = read_all(stack.bootstrap, topics.output, schemas.prediction, expect=300, timeout=60)
    assert len(partial) >= 300, log.read_text()[-3000:]
    assert stop(first, log) == 0, log.read_text()[-3000:]
    assert "stopped cleanly" in log.read_text()

    committed, ends = committed_and_end(stack.bootstrap, group, topics.input)
    predicted_so_far = len(read_to_end(stack.bootstrap, topics.output, schemas.prediction))
    # Every prediction written before the stop is covered by the committed offsets, and vice versa.
    assert sum(max(o, 0) for o in committed.values()) == predicted_so_far

    second = start_worker(stack, topics, redis_prefix, model_path, group, log)
    try:
        predictions = read_all(stack.bootstrap, topics.output, schemas.prediction, expect=len(records), timeout=90)
    finally:
        assert stop(second, log) == 0, log.read_text()[-3000:]
    ids = [p["event_id"] for p in predictions]
    assert set(ids) == {r["event_id"] for r in records}
    assert len(ids) == len(records)  # a clean stop commits what it produced: no duplicates either
    committed, ends = committed_and_end(stack.bootstrap, group, topics.input)
    assert committed == ends


def test_a_missing_model_is_refused_at_startup_with_the_reason(
    stack: Stack, topics: Topics, redis_prefix: str, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    process = start_worker(stack, topics, redis_prefix, tmp_path / "no-model", "it-nomodel", log)
    assert process.wait(60) == 1
    assert "ModelArtifactError" in log.read_text() and "manifest.json is missing" in log.read_text()
