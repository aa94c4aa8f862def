"""The worker's background writes of pending predictions: awaited, oldest first, before their batch commits."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from prometheus_client import CollectorRegistry

from stream_scorer.monitoring.metrics import ScorerMetrics
from stream_scorer.worker.join_records import JoinRecords
from tests.unit.test_emit import scored_batch


class GatedStore:
    """Each write waits for its own gate: a Redis that answers when the test says so."""

    def __init__(self, n_writes: int) -> None:
        self.gates = [threading.Event() for _ in range(n_writes)]
        self.written: list[int] = []
        self._next = 0

    def write(self, event_ids: Sequence[str], records: Sequence[bytes], scored_at_ms: int) -> None:
        at, self._next = self._next, self._next + 1
        assert self.gates[at].wait(30)
        self.written.append(at)


def test_waiting_for_the_committed_batches_leaves_the_newer_writes_running() -> None:
    store = GatedStore(3)
    join = JoinRecords(store, ScorerMetrics(CollectorRegistry()))
    for seed in range(3):
        join.submit(scored_batch(5, seed=seed), b"h")
    store.gates[0].set()
    store.gates[1].set()
    join.wait(keep=1)  # batches 0 and 1 commit; batch 2's write is still held by its gate
    assert store.written == [0, 1]
    store.gates[2].set()
    join.close()  # waits for the rest
    assert store.written == [0, 1, 2]
