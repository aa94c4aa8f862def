"""Which offsets to commit after a batch (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from stream_scorer.batch import KafkaMessage


def next_offsets(messages: Sequence[KafkaMessage]) -> dict[tuple[str, int], int]:
    """Per (topic, partition), the offset to commit: the highest offset seen plus one.

    >>> class M:
    ...     def __init__(self, p, o): self.p, self.o = p, o
    ...     def topic(self): return "t"
    ...     def partition(self): return self.p
    ...     def offset(self): return self.o
    >>> next_offsets([M(0, 5), M(1, 9), M(0, 7)])
    {('t', 0): 8, ('t', 1): 10}
    """
    out: dict[tuple[str, int], int] = {}
    for message in messages:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if topic is None or partition is None or offset is None or offset < 0:
            continue
        key = (topic, partition)
        if offset + 1 > out.get(key, -1):
            out[key] = offset + 1
    return out
