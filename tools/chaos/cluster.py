"""Failover scenarios on the cluster stack (``scripts/stack up cluster``: three brokers, a Redis Cluster of three
primaries and three replicas), each returning a :class:`~tools.chaos.context.Row`.

- a broker killed (kill -9): the one that leads most input partitions, started again 30 s later;
- a Redis primary killed (kill -9): its replica is promoted; the node is started again (it rejoins as a replica);
- three workers in one group, one killed and restarted;
- a rolling restart of the three brokers, one at a time (SIGTERM, start, wait until every replica is in sync).

Topics are replicated three times (min.insync.replicas 2), with six partitions.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import confluent_kafka
import numpy as np
from confluent_kafka.admin import AdminClient
from redis.cluster import RedisCluster
from redis.crc import key_slot

from stream_scorer import wiring
from stream_scorer.codec import decode
from stream_scorer.features.keys import KeySpace
from tools.chaos.context import Context, Row, finish
from tools.chaos.harness import Generator, Run, Supervisor, Verdict, wait_until
from tools.synth.examples import example_settings

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "scripts" / "stack"
PARTITIONS = 6


def context(workdir: Path) -> Context:
    """A chaos context on the cluster stack (it must be up)."""
    status = subprocess.run([str(STACK), "status", "cluster"], capture_output=True, text=True, timeout=30)
    if status.returncode != 0:
        raise SystemExit(f"chaos: the cluster stack is down; run scripts/stack up cluster\n{status.stdout}")
    values = dict(line.split("=", 1) for line in status.stdout.splitlines() if "=" in line and line[0] != " ")
    seed = values["CLUSTER_REDIS_NODES"].split(",")[0]
    return Context.prepare(values["CLUSTER_KAFKA_BOOTSTRAP"], f"redis://{seed}/0", workdir, redis_cluster=True)


def _pid(path: str) -> int:
    return int((Path(os.environ.get("STACK_DIR", REPO / ".stack")) / "cluster" / path / "pid").read_text())


def _restart_stack() -> None:
    subprocess.run([str(STACK), "up", "cluster"], check=True, capture_output=True, timeout=300)


def _leaders(run: Run) -> dict[int, int]:
    """Input partitions led, by broker id."""
    topic = AdminClient({"bootstrap.servers": run.bootstrap}).list_topics(run.input, timeout=10).topics[run.input]
    counts: dict[int, int] = {}
    for partition in topic.partitions.values():
        counts[partition.leader] = counts.get(partition.leader, 0) + 1
    return counts


def _in_sync(run: Run) -> bool:
    try:
        metadata = AdminClient({"bootstrap.servers": run.bootstrap}).list_topics(timeout=5)
    except confluent_kafka.KafkaException:
        return False
    topics = [metadata.topics.get(t) for t in (run.input, run.output, "__consumer_offsets")]
    return all(t is not None and all(len(p.isrs) == 3 for p in t.partitions.values()) for t in topics)


def longest_gap(verdict: Verdict, after: float, by_partition: bool = False) -> float:
    """The longest time without a prediction after ``after`` (s): overall, or in any one output partition."""
    groups: dict[int, list[float]] = {}
    for p in verdict.predictions:
        groups.setdefault(p["_partition"] if by_partition else 0, []).append(p["scored_at"] / 1000.0)
    gaps = [0.0]
    for times in groups.values():
        t = np.sort(np.array(times))
        t = t[t >= after - 1.0]
        if len(t) > 1:
            gaps.append(float(np.diff(t).max()))
    return max(gaps)


def broker_kill(ctx: Context, mode: str, events: int, rate: float, down_seconds: float = 30.0) -> Row:
    """kill -9 the broker that leads most input partitions while events flow; start it again ``down_seconds``
    later (30 s: longer than the controller takes to fence it, broker.session.timeout.ms 9 s, so the stall
    measured is the failover's, not the restart's)."""
    run = Run.create(ctx.bootstrap, ctx.workdir, f"cbroker-{mode.replace('_', '')}", PARTITIONS, 3)
    sup = Supervisor(run, ctx.env(STREAM_SCORER_KAFKA__DELIVERY=mode))
    gen = Generator(run, ctx.events(events, seed=5), rate)
    time.sleep(6)
    leaders = _leaders(run)
    victim = max(leaders, key=lambda b: leaders[b])
    os.kill(_pid(f"kafka-{victim}"), signal.SIGKILL)
    killed = time.time()
    time.sleep(down_seconds)
    _restart_stack()
    verdict = finish(ctx, run, sup, gen, 300)
    wait_until(lambda: _in_sync(run), 60)
    run.delete()
    stall = longest_gap(verdict, killed)
    return Row(
        f"cluster: kill -9 broker ({leaders[victim]}/{PARTITIONS} led)",
        mode,
        verdict,
        sup.crashes,
        [stall],
        f"longest gap in predictions {stall:.1f} s; restarted after {down_seconds:.0f} s; "
        f"{sup.stuck_exits} watchdog exits",
    )


def redis_primary_kill(ctx: Context, events: int, rate: float) -> Row:
    """kill -9 a Redis primary while events flow: its slots' rows UNAVAILABLE until its replica is promoted."""
    run = Run.create(ctx.bootstrap, ctx.workdir, "credis", PARTITIONS, 3)
    # The default 0.5 s socket timeout: a killed node refuses connections at once, and a shorter timeout made
    # busy healthy nodes time out on this 2-core machine (their rows UNAVAILABLE too).
    sup = Supervisor(run, ctx.env(STREAM_SCORER_REDIS__BREAKER_RESET_SECONDS="1"))
    items = ctx.events(events, seed=6)
    gen = Generator(run, items, rate)
    time.sleep(6)
    client = wiring.redis_client(ctx.redis_settings())
    assert isinstance(client, RedisCluster)
    victim = client.get_primaries()[0]  # type: ignore[no-untyped-call]
    slots = {s for s, holders in client.nodes_manager.slots_cache.items() if holders[0].name == victim.name}
    os.kill(_pid(f"redis-{victim.port}"), signal.SIGKILL)
    killed = time.time()
    promoted = wait_until(lambda: _served_elsewhere(client, victim.name), 60, every=0.2)
    promoted_after = time.time() - killed
    client.close()
    _restart_stack()
    verdict = finish(ctx, run, sup, gen, 300)
    run.delete()
    (early, wrong), unavailable, last = _unavailable_rows(ctx, items, verdict, slots, killed)
    degraded = max(0.0, last - killed)
    return Row(
        "cluster: kill -9 a redis primary",
        "at_least_once",
        verdict,
        sup.crashes,
        [degraded],
        f"{unavailable} UNAVAILABLE groups, {early} before the kill, {wrong} after it off the killed node's slots; "
        "replica promoted "
        f"{'after' if promoted else 'not within'} {promoted_after:.1f} s, last UNAVAILABLE {degraded:.1f} s after; "
        f"worker exits {sup.exit_codes[:-1] or 'none'}",
    )


def _served_elsewhere(client: RedisCluster, name: str) -> bool:
    try:
        client.nodes_manager.initialize()
    except Exception:  # a seed may be the dead node; try again
        return False
    return all(holders[0].name != name for holders in client.nodes_manager.slots_cache.values())


def _unavailable_rows(
    ctx: Context, items: list[tuple[bytes, bytes, str]], verdict: Verdict, slots: set[int], killed: float
) -> tuple[tuple[int, int], int, float]:
    """Predictions' UNAVAILABLE groups scored before the kill, and after it off the killed node's slots; how
    many UNAVAILABLE groups in all, and when the last one was scored."""
    settings = example_settings("fraud")
    fields = {e.name: e.key for e in settings.events.entities}
    keys = KeySpace(ctx.prefix, ctx.redis_settings().key_tags)
    events: dict[str, Any] = {}
    for _, body, event_id in items:
        events[event_id] = body
    early = wrong = unavailable = 0
    last = killed
    for p in verdict.predictions:
        for item in p["feature_freshness"]:
            if item["status"] != "UNAVAILABLE":
                continue
            unavailable += 1
            last = max(last, p["scored_at"] / 1000.0)
            record = decode(ctx.schemas.events, events[p["event_id"]])
            entity_id = str(record[fields[settings.group(item["group"]).entity]])
            slot = key_slot(f"{{{keys.bucket(entity_id)}}}".encode())
            if p["scored_at"] / 1000.0 < killed:
                early += 1
            elif slot not in slots:
                wrong += 1
    return (early, wrong), unavailable, last


def worker_kill(ctx: Context, events: int, rate: float) -> Row:
    """Three workers in one group; kill -9 one: its partitions go to the others and back when it restarts."""
    run = Run.create(ctx.bootstrap, ctx.workdir, "cworkers", PARTITIONS, 3)
    sup = Supervisor(run, ctx.env(), slots=3)
    gen = Generator(run, ctx.events(events, seed=7), rate)
    time.sleep(10)
    sup.signal(1, signal.SIGKILL)
    killed = time.time()
    verdict = finish(ctx, run, sup, gen, 300)
    run.delete()
    gap = longest_gap(verdict, killed, by_partition=True)
    return Row(
        "cluster: 3 workers, kill -9 one",
        "at_least_once",
        verdict,
        sup.crashes,
        [gap],
        f"longest gap in one partition {gap:.1f} s (session timeout 6 s)",
    )


def rolling_restart(ctx: Context, events: int, rate: float) -> Row:
    """Restart the three brokers one at a time while events flow, each back in sync before the next."""
    run = Run.create(ctx.bootstrap, ctx.workdir, "crolling", PARTITIONS, 3)
    sup = Supervisor(run, ctx.env())
    gen = Generator(run, ctx.events(events, seed=8), rate)
    time.sleep(5)
    started = time.time()
    for node in (1, 2, 3):
        pid = _pid(f"kafka-{node}")
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda pid=pid: not Path(f"/proc/{pid}").exists(), 120, every=0.2)  # type: ignore[misc]
        _restart_stack()
        wait_until(lambda: _in_sync(run), 120)
    took = time.time() - started
    verdict = finish(ctx, run, sup, gen, 300)
    run.delete()
    gap = longest_gap(verdict, started)
    return Row(
        "cluster: rolling restart, 3 brokers",
        "at_least_once",
        verdict,
        sup.crashes,
        [gap],
        f"restart took {took:.0f} s; longest gap in predictions {gap:.1f} s",
    )
