"""The worker's side of the label join: each scored batch's pending predictions, written in the background.

The write of one batch runs on one background thread while the batch is encoded and produced, and is
awaited before the batch's offsets are committed, so that a committed prediction can always be joined.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from stream_scorer.errors import PendingWriteError
from stream_scorer.labels.pending import pack_many
from stream_scorer.monitoring.metrics import ScorerMetrics
from stream_scorer.pipeline import ScoredBatch

log = logging.getLogger(__name__)


class PendingPredictionStore(Protocol):
    """Where pending predictions go for the label join (Redis)."""

    def write(self, event_ids: Sequence[str], records: Sequence[bytes], scored_at_ms: int) -> None: ...


class JoinRecords:
    """Writes the pending predictions of scored batches, one background write per batch."""

    def __init__(self, store: PendingPredictionStore, metrics: ScorerMetrics) -> None:
        self._store = store
        self._metrics = metrics
        self._writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="join-records")
        self._writes: list[concurrent.futures.Future[None]] = []

    def submit(self, scored: ScoredBatch, header: bytes) -> None:
        """Start writing the batch's records (champion, then challengers), prefixed by ``header``
        (:func:`~stream_scorer.labels.pending.models_header` of the models that scored them)."""
        batch, scores, decisions = scored.batch, scored.all_scores(), scored.all_decisions()
        records = pack_many(header, batch.event_time_ms, scored.scored_at_ms, scores, decisions)
        self._writes.append(self._writer.submit(self._store.write, batch.event_id, records, scored.scored_at_ms))

    def wait(self, keep: int = 0) -> None:
        """Wait for every write started so far but the newest ``keep`` (those of batches not committed yet). A
        failed write is counted, not fatal: predictions keep flowing, and those labels will count as unknown."""
        started = time.perf_counter()
        done = len(self._writes) - keep
        writes, self._writes = self._writes[:done], self._writes[done:]
        for future in writes:
            try:
                future.result()
            except PendingWriteError as exc:
                self._metrics.pending_write_errors.inc()
                log.warning("%s", exc)
        if writes:
            self._metrics.stage_duration.labels("pending").observe(time.perf_counter() - started)

    def close(self) -> None:
        """Wait for the last writes and stop the background thread."""
        self.wait()
        self._writer.shutdown(wait=True)
