"""The chaos scenarios: kill, zombie, Redis outage, broker restart, malformed input. Each returns a :class:`Row`."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import redis

from stream_scorer.codec import INVALID_REASONS, Schemas, confluent_frame, encode, load_schemas
from stream_scorer.config import DEFAULT_FEATURE_GROUPS
from stream_scorer.features.store import RedisFeatureStore
from stream_scorer.model import artifact
from stream_scorer.training import train
from stream_scorer.training.dataset import read_table
from tools.chaos.harness import (
    Generator,
    Run,
    Supervisor,
    Verdict,
    drained,
    read_topic,
    verify,
    wait_until,
)
from tools.chaos.mutants import mutants, transaction_fields
from tools.synth import io as synth_io
from tools.synth.world import World, make_world, sample_events

REPO_SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
MALFORMED_CLASSES = INVALID_REASONS  # one malformed message of every dead-letter class
SECRET = "SECRET-"  # sensitive values in malformed events carry this marker; it must never reach logs or headers


@dataclass
class Row:
    """One line of the chaos table."""

    scenario: str
    mode: str
    verdict: Verdict
    crashes: int
    recovery_seconds: list[float] = field(default_factory=list)
    notes: str = ""


@dataclass
class Context:
    """What every scenario shares: the stack, a trained model, the synthetic world and its features."""

    bootstrap: str
    redis_url: str
    workdir: Path
    world: World
    model_path: Path
    schemas: Schemas
    prefix: str = "chaos"

    @staticmethod
    def prepare(bootstrap: str, redis_url: str, workdir: Path) -> Context:
        workdir.mkdir(parents=True, exist_ok=True)
        world = make_world(seed=31, n_cards=5_000, n_merchants=500, n_devices=6_000)
        synth_io.write_history(world, workdir / "history.csv", 20_000)
        model = train.train(read_table(workdir / "history.csv"), name="fraud", version="chaos")
        artifact.save(model, workdir / "model")
        context = Context(bootstrap, redis_url, workdir, world, workdir / "model", load_schemas(REPO_SCHEMAS))
        context.seed(redis_url)
        return context

    def seed(self, redis_url: str) -> None:
        client = redis.Redis.from_url(redis_url)
        synth_io.seed_features(
            self.world,
            RedisFeatureStore(client, self.prefix),
            DEFAULT_FEATURE_GROUPS,
            now_ms=int(time.time() * 1000) + 600_000,
        )
        client.close()

    def env(self, **overrides: str) -> dict[str, str]:
        return {
            "STREAM_SCORER_MODEL_PATH": str(self.model_path),
            "STREAM_SCORER_REDIS__URL": self.redis_url,
            "STREAM_SCORER_REDIS__KEY_PREFIX": self.prefix,
            **overrides,
        }

    def events(self, n: int, seed: int, schema_id: int | None = None) -> list[tuple[bytes, bytes, str]]:
        records, _ = sample_events(
            self.world,
            n,
            start_ms=int(time.time() * 1000),
            rng=np.random.default_rng(seed),
            spacing_ms=0.01,
            id_prefix=f"chaos{seed}",
        )
        items = []
        for r in records:
            body = encode(self.schemas.transaction, r)
            items.append(
                (r["card_id"].encode(), body if schema_id is None else confluent_frame(schema_id, body), r["event_id"])
            )
        return items


def _finish(ctx: Context, run: Run, sup: Supervisor, gen: Generator, drain_seconds: float) -> Verdict:
    gen.join()
    wait_until(lambda: drained(run, sup.group), drain_seconds, every=1.0)
    sup.stop()
    return verify(run, ctx.schemas.prediction, gen.acked, gen.sequence)


def _recoveries(marks: list[float], verdict: Verdict, ok: Any = None) -> list[float]:
    times = np.sort(np.array([p["scored_at"] / 1000.0 for p in verdict.predictions if ok is None or ok(p)]))
    out = []
    for mark in marks:
        later = times[times > mark]
        if len(later):
            out.append(float(later[0] - mark))
    return out


def kill(ctx: Context, mode: str, events: int, rate: float, every: float = 4.0) -> Row:
    """SIGKILL the worker every few seconds while events stream; a supervisor restarts it."""
    run = Run.create(ctx.bootstrap, ctx.workdir, f"kill-{mode.replace('_', '')}")
    sup = Supervisor(run, ctx.env(STREAM_SCORER_KAFKA__DELIVERY=mode))
    gen = Generator(run, ctx.events(events, seed=1), rate)
    while gen.alive():
        time.sleep(every)
        sup.signal(0, signal.SIGKILL)
    verdict = _finish(ctx, run, sup, gen, 180)
    run.delete()
    return Row(
        f"kill -9 every {every:.0f} s",
        mode,
        verdict,
        sup.crashes,
        _recoveries(sup.kills, verdict),
        f"{len(sup.kills)} kills",
    )


def zombie(ctx: Context, events: int, rate: float, session: float = 6.0) -> Row:
    """SIGSTOP one of two workers past its session timeout, then SIGCONT it: it must not commit anything."""
    run = Run.create(ctx.bootstrap, ctx.workdir, "zombie")
    sup = Supervisor(run, ctx.env(STREAM_SCORER_KAFKA__DELIVERY="exactly_once"), slots=2)
    gen = Generator(run, ctx.events(events, seed=2), rate)
    time.sleep(5)
    sup.signal(0, signal.SIGSTOP)
    time.sleep(session + 4)
    sup.signal(0, signal.SIGCONT)
    verdict = _finish(ctx, run, sup, gen, 180)
    run.delete()
    return Row(
        "SIGSTOP past session, SIGCONT",
        "exactly_once",
        verdict,
        sup.crashes,
        [],
        f"zombie exits {sup.exit_codes[:-2] or 'none'}",
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_outage(ctx: Context, events: int, rate: float, down_seconds: float = 4.0) -> Row:
    """Kill the feature store's redis-server mid-stream and start it again."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    command = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _pings(url), 20, every=0.1)
        ctx.seed(url)
        run = Run.create(ctx.bootstrap, ctx.workdir, "redis")
        sup = Supervisor(
            run,
            ctx.env(
                STREAM_SCORER_REDIS__URL=url,
                STREAM_SCORER_REDIS__BREAKER_RESET_SECONDS="1",
                STREAM_SCORER_REDIS__SOCKET_TIMEOUT_SECONDS="0.2",
            ),
        )
        gen = Generator(run, ctx.events(events, seed=3), rate)
        time.sleep(5)
        server.kill()
        server.wait(10)
        killed = time.time()
        time.sleep(down_seconds)
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: _pings(url), 20, every=0.1)
        ctx.seed(url)
        back = time.time()
        verdict = _finish(ctx, run, sup, gen, 180)
        run.delete()
    finally:
        server.kill()
        server.wait(10)
    unavailable = [any(i["status"] == "UNAVAILABLE" for i in p["feature_freshness"]) for p in verdict.predictions]
    scored = [p["scored_at"] / 1000.0 for p in verdict.predictions]
    # Before the kill, none may be UNAVAILABLE; while it is down (after the first timeouts), all must be.
    wrong = sum(
        1
        for u, t in zip(unavailable, scored, strict=True)
        if (t < killed and u) or (killed + 1.0 < t < back - 0.5 and not u)
    )
    recovery = _recoveries(
        [back], verdict, ok=lambda p: all(i["status"] != "UNAVAILABLE" for i in p["feature_freshness"])
    )
    return Row(
        f"redis killed {down_seconds:.0f} s",
        "at_least_once",
        verdict,
        sup.crashes,
        recovery,
        f"{sum(unavailable)} UNAVAILABLE, {wrong} status mismatches",
    )


def _pings(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_timeout=0.5)
        ok = bool(client.ping())
        client.close()
        return ok
    except redis.RedisError:
        return False


def broker_restart(ctx: Context, events: int, rate: float, stop_cmd: str, start_cmd: str) -> Row:
    """Stop the broker mid-stream and start it again."""
    run = Run.create(ctx.bootstrap, ctx.workdir, "broker")
    sup = Supervisor(run, ctx.env())
    gen = Generator(run, ctx.events(events, seed=4), rate)
    time.sleep(5)
    subprocess.run(stop_cmd, shell=True, check=True, capture_output=True, timeout=120)
    time.sleep(3)
    subprocess.run(start_cmd, shell=True, check=True, capture_output=True, timeout=180)
    back = time.time()
    verdict = _finish(ctx, run, sup, gen, 300)
    run.delete()
    return Row(
        "broker stopped and started",
        "at_least_once",
        verdict,
        sup.crashes,
        _recoveries([back], verdict),
        f"worker exits {[c for c in sup.exit_codes[:-1]] or 'none'}",
    )


def malformed(ctx: Context, valid: int, per_class: int, rate: float = 0.0) -> Row:
    """Mix ``per_class`` malformed messages of every class into ``valid`` good ones (Confluent framing)."""
    schemas_dir = ctx.workdir / "schemas"
    shutil.copytree(REPO_SCHEMAS, schemas_dir, dirs_exist_ok=True)
    incompatible = json.loads((REPO_SCHEMAS / "transaction.avsc").read_text())
    for f in incompatible["fields"]:
        if f["name"] == "amount":
            f["type"] = "string"
    (schemas_dir / "incompatible.avsc").write_text(json.dumps(incompatible))
    config = ctx.workdir / "malformed.toml"
    config.write_text(
        f'schemas_dir = "{schemas_dir}"\n[kafka]\ninput_format = "confluent"\n'
        'schema_ids = { "1" = "transaction.avsc", "2" = "incompatible.avsc" }\n'
    )
    items = ctx.events(valid, seed=5, schema_id=1)
    bad = _malformed_items(ctx, per_class, fastavro.parse_schema(incompatible))
    rng = np.random.default_rng(6)
    mixed = [items[i] if i < len(items) else bad[i - len(items)] for i in rng.permutation(len(items) + len(bad))]
    run = Run.create(ctx.bootstrap, ctx.workdir, "malformed")
    sup = Supervisor(run, ctx.env(), config=config)
    gen = Generator(run, mixed, rate)
    verdict = _finish(ctx, run, sup, gen, 180)
    run.delete()
    valid_ids = {event_id for _, _, event_id in items}
    verdict.expected, verdict.unique = len(valid_ids), len(valid_ids & {p["event_id"] for p in verdict.predictions})
    verdict.missing = verdict.expected - verdict.unique
    leaks = sup.log.read_text(errors="replace").count(SECRET) + sum(
        value.count(SECRET.encode()) for header in verdict.dead_letter_headers for _, value in header
    )
    exact = all(verdict.dead_letters.get(c, 0) == per_class for c in MALFORMED_CLASSES)
    return Row(
        f"{per_class * len(MALFORMED_CLASSES)} malformed in {valid}",
        "at_least_once",
        verdict,
        sup.crashes,
        notes=f"DLQ counts exact: {exact}; sensitive values leaked: {leaks}",
    )


def fuzz(ctx: Context, valid: int, n_mutants: int, rate: float = 0.0, seed: int = 11) -> Row:
    """Valid events shuffled with seeded mutants of every kind, from 0 bytes to the broker's maximum message
    size. Every message is keyed by its own position, so the verdict can check that each yields exactly one
    prediction or one dead letter (predictions and dead letters keep the input key)."""
    rng = np.random.default_rng(seed)
    records, _ = sample_events(
        ctx.world, valid, start_ms=int(time.time() * 1000), rng=rng, spacing_ms=0.01, id_prefix=f"fuzz{seed}"
    )
    marked = [{**r, "card_id": f"{SECRET}{i}", "ip_address": None} for i, r in enumerate(records[:50])]
    bodies = [encode(ctx.schemas.transaction, r) for r in records]
    hostile = list(
        mutants(rng, [encode(ctx.schemas.transaction, r) for r in marked], transaction_fields(marked[0]), n_mutants)
    )
    values: list[bytes | None] = [*bodies, *hostile]
    order = rng.permutation(len(values))
    items = [(f"m{i}".encode(), values[j], f"m{i}") for i, j in enumerate(order)]
    run = Run.create(ctx.bootstrap, ctx.workdir, "fuzz")
    sup = Supervisor(run, ctx.env())
    gen = Generator(run, items, rate)
    verdict = _finish(ctx, run, sup, gen, 300)
    outcomes = _outcomes(run, {key for key, _, _ in items})
    run.delete()
    leaks = sup.log.read_text(errors="replace").count(SECRET) + sum(
        value.count(SECRET.encode()) for header in verdict.dead_letter_headers for _, value in header
    )
    verdict.expected, verdict.unique = len(items), outcomes["one"]
    verdict.missing, verdict.duplicates = outcomes["none"], outcomes["two or more"]
    return Row(
        f"fuzz: {n_mutants} mutants in {valid}",
        "at_least_once",
        verdict,
        sup.crashes,
        notes=f"{outcomes['predicted']} predicted, {outcomes['dead-lettered']} dead-lettered, "
        f"worker exits {[c for c in sup.exit_codes[:-1]] or 'none'}; sensitive values leaked: {leaks}",
    )


def _outcomes(run: Run, keys: set[bytes]) -> dict[str, int]:
    """Per input key, how many outputs (predictions and dead letters) carry it."""
    count: dict[bytes, int] = dict.fromkeys(keys, 0)
    predicted = dead = 0
    for message in read_topic(run.bootstrap, run.output):
        count[message.key()] = count.get(message.key(), 0) + 1
        predicted += 1
    for message in read_topic(run.bootstrap, run.dead_letters):
        count[message.key()] = count.get(message.key(), 0) + 1
        dead += 1
    values = list(count.values())
    return {
        "one": values.count(1),
        "none": values.count(0),
        "two or more": sum(1 for v in values if v > 1),
        "predicted": predicted,
        "dead-lettered": dead,
    }


def _malformed_items(ctx: Context, per_class: int, incompatible: Any) -> list[tuple[bytes, bytes, str]]:
    schema = ctx.schemas.transaction
    records, _ = sample_events(
        ctx.world,
        per_class * len(MALFORMED_CLASSES),
        start_ms=int(time.time() * 1000),
        rng=np.random.default_rng(7),
        spacing_ms=0.0,
        id_prefix="bad",
    )
    out = []
    for i, record in enumerate(records):
        kind = MALFORMED_CLASSES[i % len(MALFORMED_CLASSES)]
        record = {**record, "card_id": f"{SECRET}{i}", "ip_address": f"{SECRET}ip{i}"}
        body = encode(schema, record)
        value = {
            "empty_value": b"",
            "oversized": confluent_frame(1, encode(schema, {**record, "ip_address": SECRET + "x" * 70_000})),
            "bad_magic_byte": b"\x05" + confluent_frame(1, body)[1:],
            "unknown_schema_id": confluent_frame(404, body),
            "incompatible_schema": confluent_frame(2, encode(incompatible, {**record, "amount": "12.5"})),
            "malformed_avro": confluent_frame(1, body[: len(body) // 3]),
            "trailing_bytes": confluent_frame(1, body + b"\x00\x01"),
            "missing_entity_id": confluent_frame(1, encode(schema, {**record, "merchant_id": ""})),
            "invalid_amount": confluent_frame(1, encode(schema, {**record, "amount": float("nan")})),
            "event_time_in_future": confluent_frame(
                1, encode(schema, {**record, "event_time": record["event_time"] + 86_400_000})
            ),
        }[kind]
        out.append((record["card_id"].encode(), value, f"bad-{kind}-{i}"))
    return out


def table(rows: list[Row]) -> str:
    """The chaos table, one row per scenario."""
    head = (
        f"{'scenario':34s} {'mode':14s} {'expected':>8s} {'unique':>8s} {'missing':>7s} {'dups':>6s} "
        f"{'order':>5s} {'crashes':>7s} {'recovery s (median/max)':>24s}  notes"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        v = row.verdict
        rec = (
            f"{np.median(row.recovery_seconds):.1f} / {max(row.recovery_seconds):.1f}" if row.recovery_seconds else "-"
        )
        lines.append(
            f"{row.scenario:34s} {row.mode:14s} {v.expected:>8d} {v.unique:>8d} {v.missing:>7d} "
            f"{v.duplicates:>6d} {v.order_violations:>5d} {row.crashes:>7d} {rec:>24s}  {row.notes}"
        )
        if v.dead_letters:
            lines.append(f"{'':34s} dead letters by class: {dict(sorted(v.dead_letters.items()))}")
    return "\n".join(lines)
