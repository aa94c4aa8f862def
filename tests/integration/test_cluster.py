"""The feature store and the pending writes on the real Redis Cluster of ``scripts/stack up cluster``: one call
per hash tag and one round trip per node, a resharded slot followed, a killed primary's rows UNAVAILABLE alone;
and reduced failover scenarios of ``scripts/chaos --scenarios cluster`` under load.

End-to-end scoring, freshness and the label join run on the cluster too: the tests of test_end_to_end.py and
test_labels.py marked SINGLE_AND_CLUSTER.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from redis.cluster import RedisCluster

from examples.fraud.world import FEATURE_GROUPS as DEFAULT_FEATURE_GROUPS
from stream_scorer.errors import ConfigError
from stream_scorer.features import nodes as nodes_module
from stream_scorer.features.keys import KeySpace
from stream_scorer.features.layout import GroupValues
from stream_scorer.features.nodes import ClusterNodes
from stream_scorer.features.store import RedisFeatureStore
from stream_scorer.labels.pending import RedisPendingStore, models_header, pack_many
from stream_scorer.wiring import redis_nodes
from tests.integration.conftest import REPO, Stack
from tools.chaos import cluster as chaos_cluster
from tools.chaos import context

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("stack", ["cluster"], indirect=True)]

VELOCITY, PROFILE = DEFAULT_FEATURE_GROUPS[0], DEFAULT_FEATURE_GROUPS[1]
CARDS = [f"card-{i}" for i in range(2000)]


@pytest.fixture
def cluster(stack: Stack) -> Iterator[RedisCluster]:
    client = stack.redis(decode_responses=False)
    assert isinstance(client, RedisCluster)
    yield client
    client.close()


def calls_by_node(client: RedisCluster, command: str) -> dict[str, int]:
    """How often each primary has run ``command`` (INFO commandstats)."""
    out = {}
    for node in client.get_primaries():
        stats = client.get_redis_connection(node).info("commandstats")
        out[node.name] = int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))
    return out


def owners(client: RedisCluster, keys: KeySpace, ids: list[str]) -> dict[str, set[int]]:
    """The hash-tag buckets of ``ids`` that each primary serves."""
    out: dict[str, set[int]] = {}
    for bucket in set(keys.buckets(ids)):
        node = client.nodes_manager.get_node_from_slot(client.keyslot(f"{{{bucket}}}"))
        out.setdefault(node.name, set()).add(bucket)
    return out


def seed(store: RedisFeatureStore, n: int = len(CARDS)) -> np.ndarray:
    values = np.random.default_rng(1).normal(size=(n, len(VELOCITY.features)))
    store.put_many(VELOCITY, CARDS[:n], values, np.full(n, int(time.time() * 1000)))
    store.put_many(PROFILE, CARDS[:n], values[:, : len(PROFILE.features)], np.full(n, 1_000))
    return values


def test_a_batch_is_one_mget_per_hash_tag_pipelined_per_node_and_reads_what_was_written(
    cluster: RedisCluster, stack: Stack, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RedisFeatureStore(cluster, redis_prefix, stack.hash_tags)
    values = seed(store)
    keys = KeySpace(redis_prefix, stack.hash_tags)
    served = owners(cluster, keys, CARDS)
    assert len(served) == 3  # the batch's keys live on all three primaries

    before = calls_by_node(cluster, "mget")
    pipelines: list[int] = []
    send = nodes_module._send_pipeline
    monkeypatch.setattr(
        nodes_module, "_send_pipeline", lambda c, calls, native: pipelines.append(len(calls)) or send(c, calls, native)
    )
    out = store.fetch([VELOCITY, PROFILE], {"card": CARDS})
    monkeypatch.undo()
    after = calls_by_node(cluster, "mget")
    assert sorted(pipelines) == sorted(len(b) for b in served.values())  # one round trip per node, all its tags
    # Both groups of one card share its tag: one MGET per tag, each on the primary that serves it.
    assert {name: after[name] - before[name] for name in after} == {name: len(b) for name, b in served.items()}
    np.testing.assert_array_equal(out[VELOCITY.name].values, values.astype(np.float32))
    assert out[VELOCITY.name].present.all() and out[PROFILE.name].present.all()
    assert out[PROFILE.name].updated_at_ms.tolist() == [1_000] * len(CARDS)


def test_pending_writes_are_one_script_per_hash_tag(cluster: RedisCluster, stack: Stack, redis_prefix: str) -> None:
    pending = RedisPendingStore(cluster, redis_prefix, 60, 1, stack.hash_tags)
    ids = [f"event-{i}" for i in range(3000)]
    records = pack_many(
        models_header([("m", "1")]), np.zeros(3000, np.int64), 5, np.ones((3000, 1)), np.ones((3000, 1), bool)
    )
    tags = len(set(pending.keys.buckets(ids)))
    before = sum(calls_by_node(cluster, "evalsha").values())
    pending.write(ids, records, scored_at_ms=5_000)
    first = sum(calls_by_node(cluster, "evalsha").values())
    pending.write(ids, records, scored_at_ms=5_000)  # re-read: nothing created, nothing counted twice
    assert sum(calls_by_node(cluster, "evalsha").values()) - first == tags  # one script call per tag
    assert tags <= first - before <= 2 * tags  # a node without the script answers NOSCRIPT once per call
    assert cluster.get(pending.key("pending", "event-7")) == records[7]
    counters = [cluster.get(pending.counter_key("predicted", tag, 5)) for tag in range(stack.hash_tags)]
    assert sum(int(c or 0) for c in counters) == 3000  # each tag counts its own, in the same script call


def migrate_slot(client: RedisCluster, slot: int, source: str, target: str) -> None:
    """Move one hash slot and its keys from the primary ``source`` to ``target`` (names "host:port")."""
    src, dst = (client.get_node(node_name=name) for name in (source, target))
    src_r, dst_r = client.get_redis_connection(src), client.get_redis_connection(dst)
    src_id, dst_id = (bytes(r.execute_command("CLUSTER", "MYID")).decode() for r in (src_r, dst_r))
    dst_r.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
    src_r.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
    while keys := src_r.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000):
        src_r.execute_command("MIGRATE", dst.host, dst.port, "", 0, 5000, "KEYS", *keys)
    for r in (dst_r, src_r):
        r.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)


def moved_replies(client: RedisCluster, name: str) -> int:
    stats = client.get_redis_connection(client.get_node(node_name=name)).info("errorstats")
    return int(stats.get("errorstat_MOVED", {}).get("count", 0))


def test_a_resharded_slot_is_followed_after_one_moved_reply(
    cluster: RedisCluster, stack: Stack, redis_prefix: str
) -> None:
    store = RedisFeatureStore(cluster, redis_prefix, stack.hash_tags)
    values = seed(store, 500)
    bucket = KeySpace(redis_prefix, stack.hash_tags).bucket(CARDS[0])
    slot = cluster.keyslot(f"{{{bucket}}}")
    source = cluster.nodes_manager.get_node_from_slot(slot).name
    target = next(n.name for n in cluster.get_primaries() if n.name != source)
    store.fetch([VELOCITY], {"card": CARDS[:500]})  # the slot table is read, with the slot on `source`
    migrate_slot(cluster, slot, source, target)
    moved = moved_replies(cluster, source)
    try:
        out = store.fetch([VELOCITY], {"card": CARDS[:500]})[VELOCITY.name]
        assert moved_replies(cluster, source) == moved + 1  # the stale table sent one MGET to the old owner
        assert out.available is True and out.present.all()  # ...the table was re-read, the tag asked again
        np.testing.assert_array_equal(out.values, values.astype(np.float32))
    finally:
        cluster.nodes_manager.initialize()
        migrate_slot(cluster, slot, target, source)
        cluster.nodes_manager.initialize()


def unavailable_rows(out: GroupValues) -> np.ndarray:
    return np.zeros(len(out.present), bool) if out.available is True else ~np.asarray(out.available)


def test_a_killed_primary_serves_its_rows_unavailable_until_its_replica_is_promoted(
    stack: Stack, redis_prefix: str
) -> None:
    client = stack.redis(decode_responses=False, socket_timeout=0.3, socket_connect_timeout=0.3)
    assert isinstance(client, RedisCluster)
    opened: list[int] = []  # what the worker's stream_scorer_redis_nodes_circuit_open gauge is set to
    nodes = ClusterNodes(client, failures=2, reset_seconds=1.0, on_open=opened.append)
    store = RedisFeatureStore(nodes, redis_prefix, stack.hash_tags)
    seed(store)
    keys = KeySpace(redis_prefix, stack.hash_tags)
    victim = client.nodes_manager.get_node_from_slot(client.keyslot(f"{{{keys.bucket(CARDS[0])}}}"))
    on_victim = np.array([client.keyslot(f"{{{b}}}") in _slots(client, victim.name) for b in keys.buckets(CARDS)])
    pid = int((REPO / ".stack" / "cluster" / f"redis-{victim.port}" / "pid").read_text())
    os.kill(pid, signal.SIGKILL)
    try:
        down = store.fetch([VELOCITY], {"card": CARDS})[VELOCITY.name]
        assert unavailable_rows(down).tolist() == on_victim.tolist()  # that node's rows, and only those
        assert down.present.tolist() == (~on_victim).tolist()
        deadline, healed = time.monotonic() + 30, None
        while time.monotonic() < deadline:  # cluster-node-timeout 2 s, then the replica's election
            out = store.fetch([VELOCITY], {"card": CARDS})[VELOCITY.name]
            if not unavailable_rows(out).any():
                healed = out
                break
            time.sleep(0.2)
        # Redis keeps no data here (no persistence), but the replica had it all: every row is back.
        assert healed is not None and healed.present.all()
        assert opened[0] == 1 and opened[-1] == 0  # the node's circuit opened, and is closed again
    finally:
        client.close()
        subprocess.run([str(REPO / "scripts" / "stack"), "up", "cluster"], check=True, capture_output=True, timeout=120)


def _slots(client: RedisCluster, name: str) -> set[int]:
    table = client.nodes_manager.slots_cache
    return {slot for slot, holders in table.items() if holders and holders[0].name == name}


def test_the_worker_settings_select_the_cluster(stack: Stack) -> None:
    settings = dataclasses.replace(stack.redis_settings("it"), breaker_failures=7)
    nodes = redis_nodes(settings)
    try:
        assert isinstance(nodes, ClusterNodes) and nodes._failures == 7 and settings.key_tags == 256
        assert len(nodes.client.get_primaries()) == 3 and nodes.ping()
    finally:
        nodes.close()
    with pytest.raises(ConfigError, match="cannot work on a cluster"):
        dataclasses.replace(settings, hash_tags=1)


def test_a_killed_redis_primary_loses_nothing_under_load_and_degrades_only_its_slots(
    stack: Stack, tmp_path: Path
) -> None:
    """A reduced `scripts/chaos --scenarios cluster-redis`."""
    row = chaos_cluster.redis_primary_kill(chaos_cluster.context(tmp_path), events=12_000, rate=600)
    verdict = row.verdict
    assert (verdict.expected, verdict.unique, verdict.missing, row.crashes) == (12_000, 12_000, 0, 0), row.notes
    # After the kill, only the killed node's rows. (Right after the previous test restarted a node, a few rows
    # of a healthy node were UNAVAILABLE before the kill on a fresh cluster: counted in the notes, not asserted.)
    assert "replica promoted after" in row.notes and " 0 after it off the killed node's slots" in row.notes, row.notes
    assert not row.notes.startswith("0 UNAVAILABLE")  # the kill did fall mid-stream
    print(context.table([row]))


def test_a_killed_broker_loses_nothing_and_duplicates_nothing_under_exactly_once(stack: Stack, tmp_path: Path) -> None:
    """A reduced `scripts/chaos --scenarios cluster-broker` (exactly-once, read-committed)."""
    row = chaos_cluster.broker_kill(
        chaos_cluster.context(tmp_path), "exactly_once", events=20_000, rate=400, down_seconds=15
    )
    verdict = row.verdict
    assert (verdict.expected, verdict.unique, verdict.missing, verdict.duplicates) == (20_000, 20_000, 0, 0)
    assert row.crashes == 0 and verdict.order_violations == 0
    print(context.table([row]))
