"""The chaos harness: supervised worker processes, an acknowledged-event generator, and a verifier.

Everything runs against the real local stack on 127.0.0.1; every loop here is bounded in count and time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import confluent_kafka
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from stream_scorer.codec import decode
from stream_scorer.worker.supervisor import TRANSACTION_STUCK_EXIT
from tools.chaos.mutants import BROKER_MAX_MESSAGE_BYTES


@dataclass(frozen=True)
class Run:
    """One scenario's topics, group and files."""

    bootstrap: str
    tag: str
    workdir: Path
    partitions: int = 4
    replication: int = 1

    @property
    def input(self) -> str:
        return f"chaos-{self.tag}-in"

    @property
    def output(self) -> str:
        return f"chaos-{self.tag}-out"

    @property
    def dead_letters(self) -> str:
        return f"chaos-{self.tag}-dlq"

    @property
    def labels(self) -> str:
        return f"chaos-{self.tag}-labels"

    @staticmethod
    def create(bootstrap: str, workdir: Path, name: str, partitions: int = 4, replication: int = 1) -> Run:
        run = Run(bootstrap, f"{name}-{uuid.uuid4().hex[:6]}", workdir, partitions, replication)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        names = (run.input, run.output, run.dead_letters, run.labels)
        topics = [NewTopic(t, run.partitions, replication) for t in names]
        for future in admin.create_topics(topics).values():
            future.result(30)
        workdir.mkdir(parents=True, exist_ok=True)
        return run

    def delete(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        for future in admin.delete_topics([self.input, self.output, self.dead_letters, self.labels]).values():
            with contextlib.suppress(confluent_kafka.KafkaException):
                future.result(30)


class Supervisor:
    """Keeps ``stream-scorer run`` processes alive, one per slot, and records every kill, exit and restart."""

    def __init__(self, run: Run, env: dict[str, str], slots: int = 1, config: Path | None = None) -> None:
        self.run = run
        self.config = config
        self.env = {
            **os.environ,
            "STREAM_SCORER_KAFKA__BOOTSTRAP_SERVERS": run.bootstrap,
            "STREAM_SCORER_KAFKA__INPUT_TOPIC": run.input,
            "STREAM_SCORER_KAFKA__OUTPUT_TOPIC": run.output,
            "STREAM_SCORER_KAFKA__DEAD_LETTER_TOPIC": run.dead_letters,
            "STREAM_SCORER_KAFKA__LABELS_TOPIC": run.labels,
            "STREAM_SCORER_KAFKA__GROUP_ID": f"chaos-{run.tag}",
            "STREAM_SCORER_KAFKA__CREATE_TOPICS": "false",
            "STREAM_SCORER_KAFKA__SESSION_TIMEOUT_SECONDS": "6",
            "STREAM_SCORER_METRICS__ENABLED": "false",
            "PYTHONFAULTHANDLER": "1",  # a crash in native code leaves its traceback in the log
            **env,
        }
        self.log = run.workdir / f"{run.tag}-workers.log"
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.exit_codes: list[int] = []
        self.kills: list[float] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        for slot in range(slots):
            self._start(slot)
        self._watcher.start()

    def _start(self, slot: int) -> None:
        env = {**self.env, "STREAM_SCORER_KAFKA__WORKER_SLOT": str(slot)}
        with self.log.open("ab") as out:
            self.processes[slot] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "stream_scorer",
                    "run",
                    *(["--config", str(self.config)] if self.config else []),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def _watch(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                for slot, process in list(self.processes.items()):
                    code = process.poll()
                    if code is not None:  # a supervisor restarts what died
                        self.exit_codes.append(code)
                        self._start(slot)
            time.sleep(0.05)

    def signal(self, slot: int, sig: signal.Signals) -> None:
        with self._lock:
            if sig == signal.SIGKILL:
                self.kills.append(time.time())
            self.processes[slot].send_signal(sig)

    @property
    def group(self) -> str:
        return self.env["STREAM_SCORER_KAFKA__GROUP_ID"]

    @property
    def crashes(self) -> int:
        """Exits that were not ours: neither after a SIGKILL we sent, nor a clean 0, nor the watchdog's."""
        return sum(1 for code in self.exit_codes if code not in (0, -signal.SIGKILL, TRANSACTION_STUCK_EXIT))

    @property
    def stuck_exits(self) -> int:
        """Exits of the exactly-once watchdog: a transactional call hung in librdkafka (kafka/delivery.py)."""
        return self.exit_codes.count(TRANSACTION_STUCK_EXIT)

    def stop(self) -> None:
        self._stopping.set()
        self._watcher.join(5)
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                self.exit_codes.append(process.wait(60))
            except subprocess.TimeoutExpired:
                process.kill()
                self.exit_codes.append(process.wait(10))


class Generator:
    """Publishes (key, value, id) items at a rate in a background thread; remembers which were acknowledged."""

    def __init__(self, run: Run, items: Sequence[tuple[bytes, bytes | None, str]], rate: float) -> None:
        self._producer = confluent_kafka.Producer(
            # log_level 2: the generator's reconnect noise during a broker restart is expected, not news
            {
                "bootstrap.servers": run.bootstrap,
                "linger.ms": 5,
                "enable.idempotence": True,  # publish order is partition order: the order check relies on it
                "message.timeout.ms": 180_000,
                "message.max.bytes": BROKER_MAX_MESSAGE_BYTES,  # what a Java producer's defaults allow
                "log_level": 2,
            }
        )
        self._topic = run.input
        self._items = items
        self._rate = rate
        self.acked: set[str] = set()
        self.failed = 0
        self.sequence = {event_id: i for i, (_, _, event_id) in enumerate(items)}
        self._thread = threading.Thread(target=self._publish, daemon=True)
        self.started = time.time()
        self._thread.start()

    def _publish(self) -> None:
        started = time.monotonic()
        for i, (key, value, event_id) in enumerate(self._items):
            if self._rate > 0 and i % 100 == 0:
                time.sleep(max(0.0, started + i / self._rate - time.monotonic()))

            def acked(error: Any, _message: Any, event_id: str = event_id) -> None:
                if error is None:
                    self.acked.add(event_id)
                else:
                    self.failed += 1

            while True:
                try:
                    self._producer.produce(self._topic, value, key, on_delivery=acked)
                    break
                except BufferError:
                    self._producer.poll(0.05)
            self._producer.poll(0)
        self._producer.flush(180)

    def join(self, timeout: float = 300.0) -> None:
        self._thread.join(timeout)

    def alive(self) -> bool:
        return self._thread.is_alive()


def drained(run: Run, group: str) -> bool:
    """True when the group has committed every input partition up to its end."""
    consumer = confluent_kafka.Consumer({"bootstrap.servers": run.bootstrap, "group.id": group})
    try:
        partitions = [TopicPartition(run.input, p) for p in range(run.partitions)]
        committed = consumer.committed(partitions, timeout=10)
        ends = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions]
        return all(c.offset == e for c, e in zip(committed, ends, strict=True))
    except confluent_kafka.KafkaException:
        return False
    finally:
        consumer.close()


@dataclass
class Verdict:
    """What the output topics say about one scenario."""

    expected: int
    unique: int
    missing: int
    duplicates: int
    order_violations: int
    dead_letters: dict[str, int] = field(default_factory=dict)
    predictions: list[dict[str, Any]] = field(default_factory=list)
    dead_letter_headers: list[list[tuple[str, bytes]]] = field(default_factory=list)


def read_topic(bootstrap: str, topic: str, limit_seconds: float = 120.0) -> list[Any]:
    """Every committed message of ``topic``: read until each partition's position reaches its end offset."""
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"chaos-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        partitions = [
            TopicPartition(topic, p) for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ]
        marks = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10) for tp in partitions}
        ends = {p: high for p, (low, high) in marks.items() if high > low}  # empty partitions are done
        consumer.assign([TopicPartition(topic, tp.partition, confluent_kafka.OFFSET_BEGINNING) for tp in partitions])
        out: list[Any] = []
        deadline = time.monotonic() + limit_seconds
        while time.monotonic() < deadline:
            out.extend(m for m in consumer.consume(1000, 0.2) if m.error() is None)
            positions = {tp.partition: tp.offset for tp in consumer.position(partitions)}
            if all(positions[p] >= end for p, end in ends.items()):
                break
        return out
    finally:
        consumer.close()


def wait_until(condition: Callable[[], bool], timeout: float, every: float = 0.5) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


def verify(run: Run, prediction_schema: Any, expected_ids: set[str], sequence: dict[str, int]) -> Verdict:
    """Compare the prediction and dead-letter topics with the events that were acknowledged."""
    predictions = []
    seen: set[str] = set()
    duplicates = 0
    violations = 0
    last_by_key: dict[tuple[int, bytes | None], int] = {}
    for message in read_topic(run.bootstrap, run.output):
        record = decode(prediction_schema, message.value())
        event_id = record["event_id"]
        if event_id in seen:
            duplicates += 1
            continue
        seen.add(event_id)
        record["_partition"] = message.partition()  # keyed like the input, same partition count: its partition
        predictions.append(record)
        key = (message.partition(), message.key())
        position = sequence.get(event_id, -1)
        if position < last_by_key.get(key, -1):
            violations += 1
        last_by_key[key] = max(position, last_by_key.get(key, -1))
    dead: dict[str, int] = {}
    headers = []
    for message in read_topic(run.bootstrap, run.dead_letters):
        header = list(message.headers() or [])
        headers.append(header)
        reason = dict(header).get("dlq.error.class", b"?").decode()
        dead[reason] = dead.get(reason, 0) + 1
    return Verdict(
        expected=len(expected_ids),
        unique=len(seen & expected_ids),
        missing=len(expected_ids - seen),
        duplicates=duplicates,
        order_violations=violations,
        dead_letters=dead,
        predictions=predictions,
        dead_letter_headers=headers,
    )
