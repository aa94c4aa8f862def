"""The input side: a consumer-group member that polls micro-batches and commits offsets it is told to."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import confluent_kafka
from confluent_kafka import TopicPartition

from stream_scorer.batch import KafkaMessage
from stream_scorer.errors import AccessDeniedError, KafkaError, StreamScorerError
from stream_scorer.kafka.access import denied
from stream_scorer.kafka.offsets import next_offsets

log = logging.getLogger(__name__)


def consumer_config(
    bootstrap_servers: str, group_id: str, extra: Mapping[str, str], session_timeout_seconds: float = 45.0
) -> dict[str, Any]:
    """librdkafka settings for at-least-once: no auto commit, no auto offset store."""
    return {
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "session.timeout.ms": int(session_timeout_seconds * 1000),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "partition.assignment.strategy": "cooperative-sticky",
        # Bound what one fetch and the prefetch queue may hold, compressed batches included.
        "fetch.max.bytes": 16 * 1024 * 1024,
        "max.partition.fetch.bytes": 1024 * 1024,
        "queued.max.messages.kbytes": 64 * 1024,
        **extra,
    }


class RebalanceListener(Protocol):
    """Who is told before partitions are given up (commit what was produced for them) or lost (never commit)."""

    def before_revoke(self) -> None: ...
    def before_lost(self) -> None: ...


class BatchConsumer:
    """Polls batches from subscribed topics; commits processed offsets, also when partitions are revoked."""

    def __init__(
        self, config: Mapping[str, Any], topics: Sequence[str], on_assignment: Callable[[int], None] | None = None
    ) -> None:
        self._consumer = confluent_kafka.Consumer({**config, "on_commit": self._on_commit})
        self._group = str(config.get("group.id", ""))
        self._topics = list(topics)
        self._on_assignment = on_assignment
        self._listener: RebalanceListener | None = None
        self._to_commit: dict[tuple[str, int], int] = {}  # offsets committed at the next commit (or revoke)
        self._commit_failure: AccessDeniedError | None = None  # an asynchronous commit's, raised by the next commit
        self.assigned: set[tuple[str, int]] = set()

    def subscribe(self, listener: RebalanceListener) -> None:
        """Join the group; ``listener`` is called before partitions are revoked or lost."""
        self._listener = listener
        self._consumer.subscribe(
            self._topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    def poll_batch(self, max_events: int, timeout: float) -> list[KafkaMessage]:
        """What has arrived, up to ``max_events`` messages, at once; with nothing there, the first message to
        come within ``timeout`` seconds and what came with it. Error events are logged, not returned.

        So a light load gets small batches at once and a backlog full ones: the batch never waits for
        more messages while some are in hand."""
        if self._listener is None:
            raise KafkaError("poll before subscribe: the loop that reads this consumer must subscribe it first")
        consume = self._consumer.consume
        try:
            messages = consume(num_messages=max_events, timeout=0)
            if not messages:
                messages = consume(num_messages=1, timeout=timeout)
                if messages and max_events > 1:
                    messages += consume(num_messages=max_events - 1, timeout=0)
        except confluent_kafka.KafkaException as exc:
            raise KafkaError(f"consume failed: {exc}") from exc
        batch: list[KafkaMessage] = []
        for message in messages:
            error = message.error()
            if error is None:
                batch.append(message)
            elif (problem := denied(error, topic=message.topic() or "", group=self._group, using="read")) is not None:
                raise problem  # a missing right or a refused login: retrying cannot help, nothing is committed
            elif error.fatal():
                raise KafkaError(f"fatal consumer error: {error}")
            else:
                log.warning("consumer error on %s[%s]: %s", message.topic(), message.partition(), error)
        return batch

    def commit(self, messages: Sequence[KafkaMessage], *, asynchronous: bool = False) -> None:
        """Commit ``offset + 1`` of each partition in ``messages``: synchronously, or sent without waiting
        (``asynchronous``: the broker's answer is read by a later poll).

        If the commit fails because the group is rebalancing, the offsets are kept: they are tried
        again at the next commit or when the partition is revoked (at-least-once either way). An
        asynchronous commit refused for want of a right is raised (:class:`AccessDeniedError`) by the next one.
        """
        if self._commit_failure is not None:
            failure, self._commit_failure = self._commit_failure, None
            raise failure
        self._to_commit.update(next_offsets(messages))
        if not asynchronous:
            self._commit_stored(None)
        elif self._to_commit:
            offsets = [TopicPartition(t, p, offset) for (t, p), offset in self._to_commit.items()]
            try:
                self._consumer.commit(offsets=offsets, asynchronous=True)
            except confluent_kafka.KafkaException as exc:  # not sent (no coordinator yet): kept for the next
                log.warning("commit deferred: %s", exc)

    @property
    def uncommitted(self) -> dict[tuple[str, int], int]:
        """The offsets told to commit that the broker has not confirmed yet (sent again at the next commit)."""
        return dict(self._to_commit)

    def _on_commit(self, error: Any, partitions: list[TopicPartition]) -> None:
        """librdkafka's report of an asynchronous commit (served by consume): offsets the broker confirmed are
        no longer kept; those it refused are kept, sent again with the next commit (or on the revoke), and a
        refusal for want of a right is raised by the next commit."""
        failures: list[tuple[TopicPartition | None, Any]] = [(None, error)] if error is not None else []
        failures += [(tp, tp.error) for tp in partitions if tp.error is not None]
        for tp in partitions:
            key = (tp.topic, tp.partition)
            if error is None and tp.error is None and self._to_commit.get(key) == tp.offset:
                del self._to_commit[key]
        for failed, failure in failures:
            where = f"{failed.topic}[{failed.partition}]" if failed is not None else f"{len(partitions)} partitions"
            problem = denied(failure, topic=failed.topic if failed is not None else "", group=self._group)
            if problem is not None:
                log.error("commit of %s refused: %s", where, problem)
                self._commit_failure = problem
            elif not _rebalancing(failure):
                log.warning("commit of %s failed, kept for the next commit: %s", where, failure)

    def _commit_stored(self, only: set[tuple[str, int]] | None) -> None:
        todo = {k: v for k, v in self._to_commit.items() if only is None or k in only}
        if not todo:
            return
        offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in todo.items()]
        try:
            results = self._consumer.commit(offsets=offsets, asynchronous=False) or []
        except confluent_kafka.KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if error is not None and hasattr(error, "retriable") and (error.retriable() or _rebalancing(error)):
                log.warning("commit deferred: %s", error)
                return
            raise KafkaError(f"commit of {len(offsets)} partition offsets failed: {exc}") from exc
        # A synchronous commit reports failures per partition: those are kept for the next commit (or stop us).
        failed = {(tp.topic, tp.partition): tp.error for tp in results if tp.error is not None}
        for key, offset in todo.items():
            if key not in failed and self._to_commit.get(key) == offset:
                del self._to_commit[key]
        for (topic, partition), error in failed.items():
            if not (error.retriable() or _rebalancing(error)):
                raise KafkaError(f"commit of {topic}[{partition}] failed: {error}")
            log.warning("commit of %s[%d] deferred: %s", topic, partition, error)

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.assigned |= {(p.topic, p.partition) for p in partitions}
        self._assignment_changed()
        log.info("assigned %s", sorted(self.assigned))

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        revoked = {(p.topic, p.partition) for p in partitions}
        try:
            if self._listener is not None and revoked:
                self._listener.before_revoke()
            try:
                self._commit_stored(revoked)
            except KafkaError as exc:
                log.warning("commit on revoke failed: %s", exc)
        finally:  # the bookkeeping happens whatever the hook raised (librdkafka unassigns anyway)
            dropped = [key for key in revoked if key in self._to_commit]
            if dropped:  # the new owner re-reads from the last commit: duplicates, never loss
                log.warning("offsets of %s could not be committed before the revoke", dropped)
            for key in revoked:
                self._to_commit.pop(key, None)
            self.assigned -= revoked
            self._assignment_changed()
            log.info("revoked %s", sorted(revoked))

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        lost = {(p.topic, p.partition) for p in partitions}
        if self._listener is not None and lost:
            try:
                self._listener.before_lost()  # the uncommitted window must not be committed now
            except StreamScorerError as exc:
                log.warning("abandoning the window when partitions were lost: %s", exc)
        for key in lost:  # another member owns them now: committing would be wrong
            self._to_commit.pop(key, None)
        self.assigned -= lost
        self._assignment_changed()
        log.warning("lost %s", sorted(lost))

    def group_metadata(self) -> Any:
        """The consumer group metadata that exactly-once sends with the transaction's offsets."""
        return self._consumer.consumer_group_metadata()

    def rewind_to(self, messages: Sequence[KafkaMessage]) -> None:
        """Seek each partition of ``messages`` back to its first offset among them: they are read again."""
        first: dict[tuple[str, int], int] = {}
        for m in messages:
            topic, partition, offset = m.topic(), m.partition(), m.offset()
            if topic is not None and partition is not None and offset is not None:
                key = (topic, partition)
                first[key] = min(offset, first.get(key, offset))
        try:
            for (topic, partition), offset in first.items():
                self._consumer.seek(TopicPartition(topic, partition, offset))
        except confluent_kafka.KafkaException as exc:
            raise KafkaError(f"cannot rewind to the batch's first offsets: {exc}") from exc

    def rewind_to_committed(self, timeout: float = 30.0) -> None:
        """Seek every assigned partition back to its committed offset (after an aborted transaction)."""
        assigned = self._consumer.assignment()
        if not assigned:
            return
        try:
            committed = self._consumer.committed(assigned, timeout=timeout)
            for tp in committed:
                if tp.error is not None:
                    raise KafkaError(f"cannot read the committed offset of {tp.topic}[{tp.partition}]: {tp.error}")
                offset = tp.offset if tp.offset >= 0 else confluent_kafka.OFFSET_BEGINNING
                self._consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
        except confluent_kafka.KafkaException as exc:
            raise KafkaError(f"cannot rewind to the committed offsets: {exc}") from exc
        log.info("rewound %d partitions to their committed offsets", len(committed))

    def _assignment_changed(self) -> None:
        if self._on_assignment is not None:
            self._on_assignment(len(self.assigned))

    def close(self) -> None:
        """Leave the group (revoking, hence committing, what is to be committed)."""
        self._consumer.close()


def _rebalancing(error: Any) -> bool:
    code = error.code()
    return code in (
        confluent_kafka.KafkaError.REBALANCE_IN_PROGRESS,
        confluent_kafka.KafkaError.ILLEGAL_GENERATION,
        confluent_kafka.KafkaError.UNKNOWN_MEMBER_ID,
        confluent_kafka.KafkaError._NO_OFFSET,
    )
