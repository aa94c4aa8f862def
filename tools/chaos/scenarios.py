"""The fault scenarios: kill, zombie, Redis outage, broker restart. Each returns a :class:`~tools.chaos.context.Row`."""

from __future__ import annotations

import signal
import socket
import subprocess
import time

import redis

from tools.chaos.context import Context, Row, finish, recoveries
from tools.chaos.harness import (
    Generator,
    Run,
    Supervisor,
    wait_until,
)


def kill(ctx: Context, mode: str, events: int, rate: float, every: float = 4.0) -> Row:
    """SIGKILL the worker every few seconds while events stream; a supervisor restarts it."""
    run = Run.create(ctx.bootstrap, ctx.workdir, f"kill-{mode.replace('_', '')}")
    sup = Supervisor(run, ctx.env(STREAM_SCORER_KAFKA__DELIVERY=mode))
    gen = Generator(run, ctx.events(events, seed=1), rate)
    while gen.alive():
        time.sleep(every)
        sup.signal(0, signal.SIGKILL)
    verdict = finish(ctx, run, sup, gen, 180)
    run.delete()
    return Row(
        f"kill -9 every {every:.0f} s",
        mode,
        verdict,
        sup.crashes,
        recoveries(sup.kills, verdict),
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
    verdict = finish(ctx, run, sup, gen, 180)
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
        verdict = finish(ctx, run, sup, gen, 180)
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
    recovery = recoveries(
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
    verdict = finish(ctx, run, sup, gen, 300)
    run.delete()
    return Row(
        "broker stopped and started",
        "at_least_once",
        verdict,
        sup.crashes,
        recoveries([back], verdict),
        f"worker exits {[c for c in sup.exit_codes[:-1]] or 'none'}",
    )
