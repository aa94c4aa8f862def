"""The packed feature layout and freshness (pure), and how the store reads replies (with a fake client)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import redis

from examples.fraud.world import FEATURE_GROUPS as DEFAULT_FEATURE_GROUPS
from stream_scorer.features.freshness import FRESH, MISSING, STALE, assess
from stream_scorer.features.layout import HEADER, pack, unpack_many
from stream_scorer.features.nodes import SingleNode
from stream_scorer.features.store import RedisFeatureStore


def test_pack_unpack_round_trip_keeps_float32_values_and_times() -> None:
    values = np.array([[1.25, -3.5, 1e6], [0.0, 7.0, 2.5]])
    blobs = [pack(row, updated_at_ms=1_000 + i, version=3) for i, row in enumerate(values)]
    out = unpack_many(blobs, n_features=3, version=3)
    assert out.values.tolist() == values.tolist()
    assert out.updated_at_ms.tolist() == [1000, 1001]
    assert out.present.tolist() == [True, True]
    assert out.malformed.tolist() == [False, False]


def test_missing_keys_are_missing_not_malformed() -> None:
    out = unpack_many([None, pack([1.0], 5)], n_features=1)
    assert out.present.tolist() == [False, True]
    assert out.malformed.tolist() == [False, False]
    assert out.values[0].tolist() == [0.0]


@pytest.mark.parametrize(
    "blob",
    [
        b"garbage",  # wrong size
        pack([1.0, 2.0], 5)[:-1],  # truncated
        pack([1.0, 2.0, 3.0], 5),  # another feature count
        pack([1.0, 2.0], 5, version=2),  # another group version
        b"XX" + pack([1.0, 2.0], 5)[2:],  # wrong magic
        pack([float("nan"), 2.0], 5),  # non-finite value
        HEADER.pack(b"SF", 9, 1, 2, 5) + bytes(8),  # unknown layout version
    ],
)
def test_unreadable_records_are_flagged_and_served_as_missing(blob: bytes) -> None:
    out = unpack_many([blob, pack([1.0, 2.0], 5)], n_features=2, version=1)
    assert out.present.tolist() == [False, True]
    assert out.malformed.tolist() == [True, False]
    assert out.values[0].tolist() == [0.0, 0.0]


def test_rows_of_another_type_are_malformed_and_still_missing() -> None:
    blob = pack([1.0], 5)
    out = unpack_many([None, None, blob, b"bad"], n_features=1, other_type=np.array([True, False, False, False]))
    assert out.present.tolist() == [False, False, True, False]
    assert out.malformed.tolist() == [True, False, False, True]
    with pytest.raises(ValueError, match="one flag per reply"):
        unpack_many([None], n_features=1, other_type=np.zeros(2, bool))


class FakeRedis:
    """MGET and the read-only script over a dict of key -> bytes, or a str naming another Redis type."""

    def __init__(self, data: dict[str, bytes | str], script_error: Exception | None = None) -> None:
        self.data = data
        self.script_error = script_error
        self.loaded = False
        self.calls: list[tuple[str, int]] = []

    def pipeline(self, transaction: bool = False) -> FakePipeline:
        return FakePipeline(self)

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        self.calls.append(("mget", len(keys)))
        return [v if isinstance(v := self.data.get(k), bytes) else None for k in keys]

    def script_load(self, source: str) -> str:
        self.loaded = True
        return str(redis.Redis().register_script(source).sha)

    def evalsha_ro(self, sha: str, numkeys: int, *keys: str) -> list[int]:
        self.calls.append(("evalsha_ro", numkeys))
        if self.script_error is not None:
            raise self.script_error
        if not self.loaded:
            raise redis.exceptions.NoScriptError("NOSCRIPT No matching script.")
        return [i for i, k in enumerate(keys, 1) if isinstance(self.data.get(k), str)]


class FakePipeline:
    """The pipeline of FakeRedis: each command answered by its method, failures in place (raise_on_error=False)."""

    def __init__(self, fake: FakeRedis) -> None:
        self.fake = fake
        self.commands: list[tuple[Any, ...]] = []

    def execute_command(self, *args: Any) -> None:
        self.commands.append(args)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        replies: list[Any] = []
        for name, *args in self.commands:
            try:
                if name == "MGET":
                    replies.append(self.fake.mget(args))
                else:
                    replies.append(self.fake.evalsha_ro(args[0], args[1], *args[2:]))
            except redis.RedisError as exc:
                replies.append(exc)
        return replies


VELOCITY, PROFILE, MERCHANT = DEFAULT_FEATURE_GROUPS[:3]


def fake_store(script_error: Exception | None = None) -> tuple[RedisFeatureStore, FakeRedis]:
    fake = FakeRedis(
        {
            "p:card_velocity:c1": pack([1, 2, 3, 4], 5),
            "p:card_velocity:c2": "hash",
            "p:card_profile:c1": "list",
            "p:merchant_risk:m1": pack([1, 2, 3], 5),
            "p:merchant_risk:m2": "set",
        },
        script_error,
    )
    return RedisFeatureStore(SingleNode(fake, native=False), "p"), fake  # type: ignore[arg-type]  # the fake takes pipelines, not packed commands


def test_store_flags_keys_of_another_type_in_the_right_group_and_row() -> None:
    store, fake = fake_store()
    ids = {"card": ["c1", "c2", "c3", "c2"], "merchant": ["m2", "m1", "m3"]}
    out = store.fetch([VELOCITY, PROFILE, MERCHANT], ids)
    # 9 nil keys; the first script call answers NOSCRIPT, so the store loads the script and calls again.
    assert fake.calls == [("mget", 11), ("evalsha_ro", 9), ("evalsha_ro", 9)] and fake.loaded
    assert out[VELOCITY.name].present.tolist() == [True, False, False, False]
    assert out[VELOCITY.name].malformed.tolist() == [False, True, False, True]
    assert out[PROFILE.name].malformed.tolist() == [True, False, False, False]
    assert out[MERCHANT.name].present.tolist() == [False, True, False]
    assert out[MERCHANT.name].malformed.tolist() == [True, False, False]

    fake.calls.clear()
    assert store.fetch([MERCHANT], {"merchant": ["m3"]})[MERCHANT.name].malformed.tolist() == [False]
    assert store.fetch([MERCHANT], {"merchant": ["m1"]})[MERCHANT.name].present.tolist() == [True]
    assert fake.calls == [("mget", 1), ("evalsha_ro", 1), ("mget", 1)]  # loaded: one call; nothing nil: none


def test_a_script_call_that_fails_in_transit_keeps_the_mget_answer_and_checks_again_next_time() -> None:
    store, fake = fake_store(redis.exceptions.ConnectionError("reset"))
    for _ in range(2):
        out = store.fetch([VELOCITY], {"card": ["c1", "c2"]})[VELOCITY.name]
        assert out.present.tolist() == [True, False] and out.malformed.tolist() == [False, False]
    assert fake.calls == [("mget", 2), ("evalsha_ro", 1), ("mget", 2), ("evalsha_ro", 1)]


@pytest.mark.parametrize(
    "refusal",
    [
        redis.exceptions.NoPermissionError("NOPERM no permissions to run 'evalsha_ro'"),
        redis.exceptions.ResponseError("ERR unknown command 'evalsha_ro'"),  # Redis 6, some proxies
    ],
)
def test_when_redis_refuses_the_script_the_store_warns_once_and_stops_checking(
    refusal: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    store, fake = fake_store(refusal)
    with caplog.at_level("WARNING"):
        for _ in range(2):
            out = store.fetch([VELOCITY], {"card": ["c1", "c2"]})[VELOCITY.name]
            assert out.present.tolist() == [True, False] and out.malformed.tolist() == [False, False]
    assert fake.calls == [("mget", 2), ("evalsha_ro", 1), ("mget", 2)]
    assert len([r for r in caplog.records if "+evalsha_ro" in r.getMessage()]) == 1


def test_empty_batch() -> None:
    out = unpack_many([], n_features=4)
    assert out.values.shape == (0, 4) and out.present.shape == (0,)


def test_freshness_boundaries() -> None:
    now, max_age = 10_000, 1_000
    updated = np.array([now, now - 1_000, now - 1_001, now + 500, 0])
    present = np.array([True, True, True, True, False])
    f = assess(updated, present, now, max_age)
    assert f.status.tolist() == [FRESH, FRESH, STALE, FRESH, MISSING]
    assert f.age_ms.tolist() == [0, 1000, 1001, 0, -1]  # a future time (clock skew) counts as age 0
    assert f.usable.tolist() == [True, True, False, True, False]
