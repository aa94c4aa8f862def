"""``stream-scorer run --workers N``: N worker processes in one consumer group, kept alive.

Scale-out is Kafka's own: each process is a group member, so partitions are shared among them (one
process per core, up to the partition count). Process ``i`` gets ``kafka.worker_slot = i`` (its stable
transactional id under exactly-once) and serves its metrics on ``metrics.port + i``: metrics are per
process, labelled by the port they are scraped from. Any N, 1 included, is supervised. A process that
dies is restarted after 1 s; one that dies within 10 s of its start waits twice as long as the last time
(up to 30 s), and five such quick exits in a row stop everything with exit code 1;
SIGTERM or SIGINT is passed to every process, which finishes its batch, commits and exits.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)

INVALID_INPUT_EXIT = 3  # the exit code of a worker stopped by the invalid-input guard (cli.main.dispatch)
ACCESS_DENIED_EXIT = 4  # and of one whose principal lacks a right: restarting cannot help either
TRANSACTION_STUCK_EXIT = 5  # and of one whose transactional call hung in librdkafka: restarted, like a crash
QUICK_EXIT_SECONDS = 10.0  # a process that dies this soon after starting counts as failing to start
MAX_QUICK_EXITS = 5


def supervise(workers: int, metrics_port: int, config: Path | None, stop_timeout: float = 150.0) -> int:
    """Run ``workers`` worker processes until SIGTERM/SIGINT; returns the exit code for the supervisor.

    A worker that stops because too much input was invalid (exit code 3) is not restarted: the supervisor
    stops them all and exits 3, for an operator to look at the input.
    """
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    processes: dict[int, subprocess.Popen[bytes]] = {}
    try:
        for slot in range(workers):
            processes[slot] = _start(slot, metrics_port, config)
        started = dict.fromkeys(processes, time.monotonic())
        quick_exits = dict.fromkeys(processes, 0)
        backoff = dict.fromkeys(processes, 1.0)
        restart_at: dict[int, float] = {}
        while not stopping.wait(0.2):
            for slot, process in list(processes.items()):
                if slot in restart_at:
                    if time.monotonic() >= restart_at[slot]:
                        del restart_at[slot]
                        processes[slot] = _start(slot, metrics_port, config)
                        started[slot] = time.monotonic()
                    continue
                code = process.poll()
                if code is None:
                    continue
                if code == INVALID_INPUT_EXIT:
                    log.error("worker %d stopped on invalid input; stopping all", slot)
                    return _exit(processes, stop_timeout, INVALID_INPUT_EXIT)
                if code == ACCESS_DENIED_EXIT:
                    log.error("worker %d lacks a right (its error says which); stopping all", slot)
                    return _exit(processes, stop_timeout, ACCESS_DENIED_EXIT)
                quick = time.monotonic() - started[slot] < QUICK_EXIT_SECONDS
                quick_exits[slot] = quick_exits[slot] + 1 if quick else 0
                if quick_exits[slot] >= MAX_QUICK_EXITS:
                    log.error("worker %d failed to start %d times in a row; stopping all", slot, MAX_QUICK_EXITS)
                    return _exit(processes, stop_timeout, 1)
                backoff[slot] = min(30.0, backoff[slot] * 2) if quick else 1.0
                log.warning("worker %d exited with %s; restarting in %.0f s", slot, code, backoff[slot])
                restart_at[slot] = time.monotonic() + backoff[slot]  # waiting, not sleeping: signals still count
        codes = _stop_all(processes, stop_timeout)
        log.info("all workers stopped: exit codes %s", codes)
        return 0 if all(code == 0 for code in codes) else 1
    finally:
        _stop_all(processes, stop_timeout)  # no orphans, whatever happened above


def _exit(processes: dict[int, subprocess.Popen[bytes]], timeout: float, code: int) -> int:
    _stop_all(processes, timeout)
    return code


def _start(slot: int, metrics_port: int, config: Path | None) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "STREAM_SCORER_KAFKA__WORKER_SLOT": str(slot),
        "STREAM_SCORER_METRICS__PORT": str(metrics_port + slot if metrics_port else 0),
    }
    args: Sequence[str] = [sys.executable, "-m", "stream_scorer", "run"]  # one worker in the child, unsupervised
    if config is not None:
        args = [*args, "--config", str(config)]
    process = subprocess.Popen(args, env=env)
    log.info("worker %d started (pid %d, metrics port %s)", slot, process.pid, env["STREAM_SCORER_METRICS__PORT"])
    return process


def _stop_all(processes: dict[int, subprocess.Popen[bytes]], timeout: float) -> list[int]:
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    codes = []
    deadline = time.monotonic() + timeout
    for process in processes.values():
        try:
            codes.append(process.wait(max(0.1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            process.kill()
            try:
                codes.append(process.wait(10))
            except subprocess.TimeoutExpired:
                codes.append(-9)
    return codes
