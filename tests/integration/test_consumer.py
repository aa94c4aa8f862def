"""The batch consumer on the real broker: asynchronous commits that a later poll confirms, and what they keep
committed on the revoke."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from stream_scorer.batch import KafkaMessage
from stream_scorer.kafka.consumer import BatchConsumer, consumer_config
from tests.integration.conftest import Stack, committed_and_end, produce, wait_for

pytestmark = pytest.mark.integration


class Listener:
    def before_revoke(self) -> None: ...
    def before_lost(self) -> None: ...


def test_asynchronous_commits_are_confirmed_by_later_polls_and_what_is_kept_is_committed_on_close(
    stack: Stack, topic_factory: Callable[[str, int], str]
) -> None:
    topic = topic_factory("commits", 2)
    group = f"it-commits-{uuid.uuid4().hex[:8]}"
    produce(stack.bootstrap, topic, [(f"k{i}".encode(), b"v") for i in range(200)])
    consumer = BatchConsumer(consumer_config(stack.bootstrap, group, {}), [topic])
    consumer.subscribe(Listener())
    got: list[KafkaMessage] = []
    deadline = time.monotonic() + 60
    while len(got) < 200 and time.monotonic() < deadline:
        got += consumer.poll_batch(500, 0.5)
    assert len(got) == 200

    started = time.monotonic()
    consumer.commit(got[:100], asynchronous=True)
    assert time.monotonic() - started < 0.5 and consumer.uncommitted  # sent, not waited for
    wait_for(lambda: not consumer.poll_batch(10, 0.2) and not consumer.uncommitted, 30, "the commit's report")
    committed, _ = committed_and_end(stack.bootstrap, group, topic)
    first_half: dict[int, int] = {}
    for m in got[:100]:
        first_half[m.partition() or 0] = max(first_half.get(m.partition() or 0, 0), (m.offset() or 0) + 1)
    assert {p: o for p, o in committed.items() if o >= 0} == first_half

    # Leaving the group right after an asynchronous commit: what it keeps is committed on the revoke.
    consumer.commit(got, asynchronous=True)
    consumer.close()
    committed, ends = committed_and_end(stack.bootstrap, group, topic)
    assert committed == ends and sum(ends.values()) == 200
