"""Dead-letter records, the invalid-input guard and the feature-store circuit breaker (no servers)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from examples.fraud.world import FEATURE_GROUPS as DEFAULT_FEATURE_GROUPS
from stream_scorer.codec import InvalidMessage
from stream_scorer.config import FeatureGroup
from stream_scorer.errors import FeatureStoreError, InvalidEventError, InvalidInputRateError
from stream_scorer.features.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreakerLookup
from stream_scorer.features.layout import GroupValues, pack, unpack_many
from stream_scorer.worker.deadletter import dead_letters
from stream_scorer.worker.guard import InvalidInputGuard
from tests.support import FakeMessage


def test_dead_letters_keep_the_original_bytes_and_say_why() -> None:
    items = [
        InvalidMessage(
            FakeMessage(b"\x00\x00\x00\x00\x09zz", b"k2", "tx", 1, 7, 111),
            InvalidEventError("malformed_avro", "EOFError", topic="tx", partition=1, offset=7, schema_id=9),
        ),
        InvalidMessage(
            FakeMessage(None, None, "tx", 0, 3, 222),
            InvalidEventError("empty_value", "message has no value", topic="tx", partition=0, offset=3),
        ),
    ]
    letters = dead_letters(items)
    assert letters.keys == [None, b"k2"] and letters.values == [None, b"\x00\x00\x00\x00\x09zz"]  # by partition/offset
    first, second = (dict(h) for h in letters.headers)
    assert first == {
        "dlq.error.class": b"empty_value",
        "dlq.error.reason": b"message has no value",
        "dlq.original.topic": b"tx",
        "dlq.original.partition": b"0",
        "dlq.original.offset": b"3",
        "dlq.original.timestamp": b"222",
    }
    assert second["dlq.schema.id"] == b"9" and second["dlq.error.class"] == b"malformed_avro"


def test_a_tombstone_stays_null_and_an_empty_value_stays_empty() -> None:
    items = [
        InvalidMessage(FakeMessage(value, b"k", "tx", 0, offset, 1), InvalidEventError("empty_value", "no value"))
        for offset, value in enumerate([None, b""])
    ]
    assert dead_letters(items).values == [None, b""]


@pytest.mark.parametrize(
    ("key_size", "value_size"), [(0, 999_800), (1, 1_048_000), (10, 5_000_000), (900_000, 900_000), (2_000_000, 0)]
)
def test_a_dead_letter_always_fits_the_record_limit_and_says_what_was_cut(key_size: int, value_size: int) -> None:
    limit = 1_000_000
    key = b"k" * key_size if key_size else None
    value = bytes(range(256)) * (value_size // 256) + b"v" * (value_size % 256)
    error = InvalidEventError("oversized", "too big", topic="tx", partition=2, offset=41)
    letters = dead_letters([InvalidMessage(FakeMessage(value, key, "tx", 2, 41, 5), error)], max_record_bytes=limit)
    out_key, out_value, headers = letters.keys[0], letters.values[0], dict(letters.headers[0])
    size = len(out_key or b"") + len(out_value or b"") + sum(len(k) + len(v) for k, v in letters.headers[0])
    assert size <= limit - 128
    assert value.startswith(out_value or b"") and (key or b"").startswith(out_key or b"")
    assert headers["dlq.original.partition"] == b"2" and headers["dlq.original.offset"] == b"41"
    if len(out_value or b"") < value_size:
        assert headers["dlq.value_truncated"] == b"true" and headers["dlq.original_size"] == str(value_size).encode()
    else:
        assert "dlq.value_truncated" not in headers and out_value == value
    if len(out_key or b"") < key_size:
        assert headers["dlq.key_truncated"] == b"true" and headers["dlq.original_key_size"] == str(key_size).encode()
    else:
        assert "dlq.key_truncated" not in headers


def test_a_dead_letter_that_fits_is_kept_byte_for_byte() -> None:
    value = b"\x00" * 70_000
    error = InvalidEventError("oversized", "70000 bytes", topic="tx", partition=0, offset=1)
    letters = dead_letters([InvalidMessage(FakeMessage(value, b"k", "tx", 0, 1, 5), error)])
    assert letters.values == [value] and "dlq.value_truncated" not in dict(letters.headers[0])


def test_guard_trips_on_consecutive_invalid_messages_across_batches() -> None:
    guard = InvalidInputGuard(max_consecutive=5, max_ratio=1.0, window=1000)
    guard.observe([False] * 4)
    guard.observe([True] + [False] * 4)  # a valid one resets the run
    with pytest.raises(InvalidInputRateError, match="5 invalid messages in a row"):
        guard.observe([False])


def test_guard_trips_on_the_window_ratio_only_once_the_window_is_full() -> None:
    guard = InvalidInputGuard(max_consecutive=1000, max_ratio=0.5, window=10)
    guard.observe([False, True] * 3 + [False])  # 4 of 7 invalid, window not full yet
    guard.observe([True, True, True])  # 4 of 10: fine
    with pytest.raises(InvalidInputRateError, match="of the last 10 messages were invalid"):
        guard.observe([False] * 4)  # the oldest slide out: 6 of the last 10 invalid


def test_guard_passes_a_steady_trickle_of_bad_input() -> None:
    guard = InvalidInputGuard(max_consecutive=3, max_ratio=0.2, window=100)
    for _ in range(50):
        guard.observe([True] * 9 + [False])  # 10% invalid, never 3 in a row


class FlakyLookup:
    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    def fetch(self, groups: Sequence[FeatureGroup], ids: Mapping[str, Sequence[str]]) -> dict[str, GroupValues]:
        self.calls += 1
        if self.down:
            raise FeatureStoreError("redis: ConnectionError")
        return {
            g.name: unpack_many([pack([1.0] * len(g.features), 5)] * len(ids[g.entity]), len(g.features))
            for g in groups
        }


def test_breaker_degrades_then_stops_calling_then_recovers() -> None:
    now = [0.0]
    states: list[int] = []
    errors: list[int] = []
    inner = FlakyLookup()
    breaker = CircuitBreakerLookup(
        inner,
        failures=2,
        reset_seconds=10,
        clock=lambda: now[0],
        on_state=states.append,
        on_error=lambda: errors.append(1),
    )
    groups = DEFAULT_FEATURE_GROUPS[:1]
    ids = {"card": ["a", "b"]}
    assert breaker.fetch(groups, ids)["card_velocity"].present.all()

    inner.down = True
    out = breaker.fetch(groups, ids)["card_velocity"]  # fails twice (one retry), still closed
    assert not out.available and not out.present.any() and breaker.state == CLOSED
    breaker.fetch(groups, ids)
    assert breaker.state == OPEN and inner.calls == 5 and len(errors) == 4

    now[0] = 5.0
    assert not breaker.fetch(groups, ids)["card_velocity"].available
    assert inner.calls == 5  # open: Redis is not called at all

    now[0] = 11.0
    breaker.fetch(groups, ids)  # half-open trial fails: open again, one call only
    assert breaker.state == OPEN and inner.calls == 6

    inner.down = False
    now[0] = 22.0
    assert breaker.fetch(groups, ids)["card_velocity"].available
    assert breaker.state == CLOSED and states == [OPEN, HALF_OPEN, OPEN, HALF_OPEN, CLOSED]


def test_a_key_too_big_keeps_what_the_value_leaves_and_a_tiny_limit_cuts_to_nothing() -> None:
    error = InvalidEventError("oversized", "big", topic="tx", partition=0, offset=1)
    letters = dead_letters([InvalidMessage(FakeMessage(b"", b"k" * 2_000_000, "tx", 0, 1, 5), error)], 1_000_000)
    assert 990_000 < len(letters.keys[0] or b"") < 1_000_000 and letters.values == [b""]
    letters = dead_letters([InvalidMessage(FakeMessage(b"v" * 900, b"k" * 900, "tx", 0, 1, 5), error)], 300)
    assert letters.keys == [b""] and letters.values == [b""]
    assert dict(letters.headers[0])["dlq.original_key_size"] == b"900"
