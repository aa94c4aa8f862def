"""``run``, ``labels``, ``status`` and ``topics``: the two long-running loops and what operators look at."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from stream_scorer import wiring
from stream_scorer.config import Settings
from stream_scorer.errors import TransactionStuckError
from stream_scorer.worker.supervisor import TRANSACTION_STUCK_EXIT

if TYPE_CHECKING:
    from stream_scorer.monitoring.summary import Scrape

log = logging.getLogger("stream_scorer")


def add_run_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``run``, ``labels``, ``status`` and ``topics`` on ``commands`` (an argparse subparsers action)."""
    run = commands.add_parser(
        "run",
        parents=[common],
        help="score events from Kafka until SIGTERM/SIGINT",
        description="Join the consumer group and score micro-batches: poll, decode, fetch "
        "features from Redis, score, produce predictions, flush, commit. SIGTERM or SIGINT "
        "finishes the current batch, commits and exits 0.",
    )
    run.add_argument("--max-batches", type=int, default=None, help="stop after this many non-empty batches")
    run.add_argument(
        "--workers",
        type=int,
        default=None,
        help="supervise this many worker processes in the consumer group (one per core, up to the partition "
        "count), 1 included: process i serves metrics on metrics.port + i and is restarted if it dies (after "
        "1 s, doubling to 30 s while it keeps dying within 10 s of its start; 5 such exits in a row stop "
        "all). Without it, one worker runs in this process, unsupervised (as under Kubernetes)",
    )
    run.set_defaults(handler=_run)

    labels = commands.add_parser(
        "labels",
        parents=[common],
        help="join late labels to their predictions and export rolling quality metrics, until SIGTERM",
        description="Consume the labels topic in its own consumer group, join each label to its pending "
        "prediction in Redis, and serve rolling precision/recall, calibration, AUC and label-lag metrics on "
        "the metrics endpoint (per model and window).",
    )
    labels.set_defaults(handler=_labels)

    status = commands.add_parser(
        "status",
        parents=[common],
        help="a live summary table of the metrics endpoints (for people without Grafana)",
    )
    status.add_argument(
        "--url", action="append", default=None, help="a metrics endpoint (repeatable; default: the configured one)"
    )
    status.add_argument("--interval", type=float, default=5.0, help="seconds between refreshes")
    status.add_argument("--once", action="store_true", help="print one table (two scrapes, for the rates) and exit")
    status.add_argument(
        "--record", type=Path, default=None, help="append a scrape to this file every --interval seconds, until stopped"
    )
    status.add_argument(
        "--since", type=Path, default=None, help="with --once: rates over a recording (each counter while it moved)"
    )
    status.set_defaults(handler=_status)

    topics = commands.add_parser("topics", parents=[common], help="create the configured topics if missing")
    topics.set_defaults(handler=_topics)


def stop_on_signals(what: str) -> threading.Event:
    """An event that SIGTERM and SIGINT set (after logging ``what`` the loop does next)."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: %s", signal.Signals(signum).name, what)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.workers is not None and args.workers < 1:
        print("run: --workers must be >= 1", file=sys.stderr)
        return 2
    if args.workers is not None:
        from stream_scorer.worker.supervisor import supervise

        return supervise(args.workers, settings.metrics.port, args.config)
    # Before the (seconds-long) startup checks: a SIGTERM during them is a clean stop, not a crash.
    stop = stop_on_signals("finishing the current batch, then committing and exiting")
    runtime = wiring.build_runtime(settings)
    wiring.tune_garbage_collector()
    try:
        if args.max_batches is None:
            runtime.worker.run(stop)
        else:
            done = 0
            while done < args.max_batches and not stop.is_set():
                done += runtime.worker.step() > 0
    except TransactionStuckError as exc:  # closing the stuck producer would hang: leave without cleaning up
        log.critical("%s", exc)
        logging.shutdown()
        os._exit(TRANSACTION_STUCK_EXIT)
    finally:
        runtime.close()
    log.info("stopped cleanly")
    return 0


def _labels(args: argparse.Namespace, settings: Settings) -> int:
    stop = stop_on_signals("finishing the current label batch, then exiting")
    runtime = wiring.build_label_runtime(settings)
    try:
        runtime.flow.run(stop)
    finally:
        runtime.close()
    log.info("label flow stopped cleanly")
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from stream_scorer.monitoring.summary import read_recording, scrape, summary

    urls = args.url or [f"http://{settings.metrics.host}:{settings.metrics.port}"]
    before = scrape(urls, time.time())
    if not before.samples:
        print(f"status: no metrics endpoint answers at {urls}", file=sys.stderr)
        return 1
    if args.record is not None:
        return _record(args.record, urls, before, args.interval)
    if args.since is not None and not args.once:
        print("status: --since reads a finished recording: use it with --once", file=sys.stderr)
        return 2
    recording: list[Scrape] = []
    try:
        recording = read_recording(args.since.read_text()) if args.since is not None else []
    except (OSError, ValueError) as exc:
        print(f"status: cannot read the recording {args.since}: {exc}", file=sys.stderr)
        return 1
    try:
        while True:
            if not recording or not args.once:
                time.sleep(args.interval)
            now = scrape(urls, time.time())
            if not args.once:
                print("\x1b[2J\x1b[H", end="")  # clear the terminal
            print(time.strftime("%H:%M:%S"), " ".join(urls))
            print(summary(now, before, recording), flush=True)
            if args.once:
                return 0
            before = now
    except KeyboardInterrupt:
        return 0


def _record(path: Path, urls: list[str], first: Scrape, interval: float) -> int:
    """Append ``first`` and then a scrape every ``interval`` seconds to ``path`` until SIGTERM or Ctrl-C."""
    from stream_scorer.monitoring.summary import scrape

    stop = stop_on_signals("recording stopped")
    with path.open("a") as out:
        out.write(first.to_json() + "\n")
        out.flush()
        while not stop.wait(interval):
            out.write(scrape(urls, time.time()).to_json() + "\n")
            out.flush()
    return 0


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    created = wiring.ensure_configured_topics(settings)
    print(f"created {created}" if created else "all topics exist")
    return 0
