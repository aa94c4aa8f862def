"""The Redis feature store on a real redis-server: round trip, one MGET per batch, keys of another type, TTL,
the CLI writer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import redis

from examples.fraud.world import FEATURE_GROUPS as DEFAULT_FEATURE_GROUPS
from stream_scorer.config import FeatureGroup
from stream_scorer.errors import AccessDeniedError
from stream_scorer.features.nodes import SingleNode
from stream_scorer.features.store import RedisFeatureStore
from tests.integration.conftest import Stack, worker_env_base
from tests.unit.conftest import native_or_skip

pytestmark = pytest.mark.integration

VELOCITY = DEFAULT_FEATURE_GROUPS[0]
MERCHANT = DEFAULT_FEATURE_GROUPS[2]


def command_calls(client: redis.Redis, command: str) -> int:
    stats = client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def mget_calls(client: redis.Redis) -> int:
    return command_calls(client, "mget")


def test_round_trip_of_many_groups_in_one_mget(store: RedisFeatureStore, stack: Stack) -> None:
    rng = np.random.default_rng(0)
    cards = [f"c{i}" for i in range(300)]
    merchants = [f"m{i}" for i in range(40)]
    velocity = rng.normal(size=(300, len(VELOCITY.features)))
    merchant = rng.normal(size=(40, len(MERCHANT.features)))
    store.put_many(VELOCITY, cards[:250], velocity[:250], np.full(250, 1_000))  # 50 cards have none
    store.put_many(MERCHANT, merchants, merchant, np.arange(40))
    rows_cards = cards * 2
    rows_merchants = [merchants[i % 40] for i in range(600)]

    client = redis.Redis.from_url(stack.redis_url)
    before = mget_calls(client)
    out = store.fetch([VELOCITY, MERCHANT], {"card": rows_cards, "merchant": rows_merchants})
    assert mget_calls(client) == before + 1
    client.close()

    v = out[VELOCITY.name]
    assert v.present.tolist() == ([True] * 250 + [False] * 50) * 2
    np.testing.assert_array_equal(v.values[:250], velocity[:250].astype(np.float32))
    assert (v.values[250:300] == 0).all() and v.updated_at_ms[0] == 1_000
    m = out[MERCHANT.name]
    np.testing.assert_array_equal(m.values, merchant[[i % 40 for i in range(600)]].astype(np.float32))
    assert m.updated_at_ms.tolist() == [i % 40 for i in range(600)]


def test_a_group_version_change_reads_as_missing_and_malformed(store: RedisFeatureStore) -> None:
    store.put(VELOCITY, "c1", [1, 2, 3, 4], 5)
    bumped = FeatureGroup(name=VELOCITY.name, entity="card", features=VELOCITY.features, max_age_seconds=60, version=2)
    out = store.fetch([bumped], {"card": ["c1"]})[VELOCITY.name]
    assert out.present.tolist() == [False] and out.malformed.tolist() == [True]


def write_other_types(stack: Stack, store: RedisFeatureStore) -> None:
    """c-hash, c-list and c-set hold another Redis type; c-ok a valid record; c-none nothing."""
    client = redis.Redis.from_url(stack.redis_url)
    client.hset(store.key(VELOCITY, "c-hash"), mapping={"txn_count_1h": 1})
    client.rpush(store.key(VELOCITY, "c-list"), b"1")
    client.sadd(store.key(VELOCITY, "c-set"), b"1")
    client.close()
    store.put(VELOCITY, "c-ok", [1, 2, 3, 4], 5)


OTHER_TYPE_ROWS = ["c-hash", "c-list", "c-set", "c-ok", "c-none"]


def test_keys_of_another_type_are_malformed_not_missing(store: RedisFeatureStore, stack: Stack) -> None:
    write_other_types(stack, store)
    client = redis.Redis.from_url(stack.redis_url)
    before = (mget_calls(client), command_calls(client, "evalsha_ro"))
    out = store.fetch([VELOCITY, MERCHANT], {"card": OTHER_TYPE_ROWS, "merchant": ["m-none", "m-none"]})
    v = out[VELOCITY.name]
    assert v.present.tolist() == [False, False, False, True, False]
    assert v.malformed.tolist() == [True, True, True, False, False]
    assert v.values[3].tolist() == [1, 2, 3, 4] and (v.values[[0, 1, 2, 4]] == 0).all()
    m = out[MERCHANT.name]
    assert m.present.tolist() == [False, False] and m.malformed.tolist() == [False, False]
    # One MGET, then one script call for the 4 nil keys.
    assert (mget_calls(client), command_calls(client, "evalsha_ro")) == (before[0] + 1, before[1] + 1)

    # Nothing missing: MGET only, no script call.
    before = (mget_calls(client), command_calls(client, "evalsha_ro"))
    assert store.fetch([VELOCITY], {"card": ["c-ok"]})[VELOCITY.name].present.tolist() == [True]
    assert (mget_calls(client), command_calls(client, "evalsha_ro")) == (before[0] + 1, before[1])
    client.close()


def test_the_native_read_equals_the_python_read_survives_a_dropped_connection_and_reports_refusals(
    store: RedisFeatureStore, stack: Stack, redis_prefix: str, feature_reader: Callable[..., redis.Redis]
) -> None:
    native_or_skip()
    write_other_types(stack, store)
    rows = {"card": [*OTHER_TYPE_ROWS, "c-none"] * 50, "merchant": ["m-none"] * 300}
    client = stack.redis(decode_responses=False)
    native = RedisFeatureStore(SingleNode(client), redis_prefix, stack.hash_tags)
    python = RedisFeatureStore(SingleNode(client, native=False), redis_prefix, stack.hash_tags, native=False)
    first = native.fetch([VELOCITY, MERCHANT], rows)
    for name, values in python.fetch([VELOCITY, MERCHANT], rows).items():
        for part in ("values", "updated_at_ms", "present", "malformed"):
            assert np.array_equal(getattr(first[name], part), getattr(values, part)), (name, part)
    assert first[VELOCITY.name].present.sum() == 50 and first[VELOCITY.name].malformed.sum() == 150

    # The server drops the pooled connection between two reads: the next read reconnects, as redis-py would.
    admin = redis.Redis.from_url(stack.redis_url)
    assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
    again = native.fetch([VELOCITY, MERCHANT], rows)
    assert np.array_equal(again[VELOCITY.name].values, first[VELOCITY.name].values)
    admin.close()
    client.close()

    # A user without read rights on the keys: the MGET's NOPERM reply is the store's AccessDeniedError.
    outsider = feature_reader()
    stranger = RedisFeatureStore(outsider, "not-" + redis_prefix, stack.hash_tags)
    with pytest.raises(AccessDeniedError, match="feature read"):
        stranger.fetch([VELOCITY], {"card": ["c1"]})


@pytest.fixture
def feature_reader(stack: Stack, redis_prefix: str) -> Iterator[Callable[..., redis.Redis]]:
    """Clients logged in as a temporary Redis user with the worker's read permissions on the feature keys
    (README: %R~prefix:* -@all +mget +get +ping +evalsha +eval +script|load), plus extra rules."""
    admin = redis.Redis.from_url(stack.redis_url)
    users: list[str] = []
    clients: list[redis.Redis] = []

    def make(*extra: str) -> redis.Redis:
        user = f"it-reader-{uuid.uuid4().hex[:10]}"
        rules = ["on", ">it-pw", "resetkeys", f"%R~{redis_prefix}:*", "-@all", "+mget", "+get", "+ping"]
        admin.execute_command("ACL", "SETUSER", user, *rules, "+evalsha", "+eval", "+script|load", *extra)
        users.append(user)
        client = redis.Redis.from_url(stack.redis_url, username=user, password="it-pw")
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
    for user in users:
        admin.execute_command("ACL", "DELUSER", user)
    admin.close()


def test_telling_other_types_needs_only_read_permissions_and_evalsha_ro(
    store: RedisFeatureStore,
    stack: Stack,
    redis_prefix: str,
    feature_reader: Callable[..., redis.Redis],
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_other_types(stack, store)
    granted = RedisFeatureStore(feature_reader("+evalsha_ro"), redis_prefix)
    out = granted.fetch([VELOCITY], {"card": OTHER_TYPE_ROWS})[VELOCITY.name]
    assert out.malformed.tolist() == [True, True, True, False, False]

    # Without +evalsha_ro (the README's ACL before this change): reads go on, other types read as missing.
    denied = RedisFeatureStore(feature_reader(), redis_prefix)
    for _ in range(2):
        with caplog.at_level("WARNING", logger="stream_scorer.features.store"):
            out = denied.fetch([VELOCITY], {"card": OTHER_TYPE_ROWS})[VELOCITY.name]
        assert out.present.tolist() == [False, False, False, True, False]
        assert out.malformed.tolist() == [False] * 5
    assert sum("+evalsha_ro" in r.getMessage() for r in caplog.records) == 1  # warned once, then stopped asking


def test_ttl_and_validation(store: RedisFeatureStore, stack: Stack) -> None:
    store.put(VELOCITY, "c-ttl", [1, 2, 3, 4], 5, ttl_seconds=30)
    client = redis.Redis.from_url(stack.redis_url)
    ttl = client.pttl(store.key(VELOCITY, "c-ttl"))
    client.close()
    assert 0 < ttl <= 30_000
    with pytest.raises(ValueError, match="shape"):
        store.put(VELOCITY, "c", [1, 2], 5)
    with pytest.raises(ValueError, match="finite"):
        store.put(VELOCITY, "c", [1, 2, 3, float("nan")], 5)


def cli(stack: Stack, prefix: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **worker_env_base(), "STREAM_SCORER_REDIS__URL": stack.redis_url}
    env["STREAM_SCORER_REDIS__KEY_PREFIX"] = prefix
    return subprocess.run(
        [sys.executable, "-m", "stream_scorer", *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


def test_features_put_cli_writes_by_name_and_refuses_bad_lines(
    store: RedisFeatureStore, stack: Stack, redis_prefix: str
) -> None:
    ok = cli(
        stack,
        redis_prefix,
        "features",
        "put",
        "--group",
        "merchant_risk",
        "--entity-id",
        "m-7",
        "--values",
        "txn_count_24h=120, fraud_rate_30d=0.01, refund_rate_30d=0.05",
    )
    assert ok.returncode == 0, ok.stderr
    out = store.fetch([MERCHANT], {"merchant": ["m-7"]})[MERCHANT.name]
    np.testing.assert_allclose(out.values[0], [0.01, 0.05, 120.0], rtol=1e-6)  # stored in the group's order
    assert abs(out.updated_at_ms[0] - time.time() * 1000) < 60_000

    lines = "\n".join(
        [
            json.dumps({"group": "card_profile", "entity_id": "c-9", "values": [100, 50.5, 0], "updated_at_ms": 42}),
            json.dumps({"group": "card_profile", "entity_id": "c-10", "values": [1, 2]}),
        ]
    )
    bad = cli(stack, redis_prefix, "features", "put", "--file", "-", stdin=lines)
    assert bad.returncode == 2 and "line 2" in bad.stderr and "takes 3 values" in bad.stderr
    # Nothing from a rejected file was written, not even its good lines.
    assert not store.fetch([DEFAULT_FEATURE_GROUPS[1]], {"card": ["c-9"]})["card_profile"].present[0]

    for args in (
        ["--group", "nope", "--entity-id", "x", "--values", "1"],
        ["--group", "card_profile", "--entity-id", "x", "--values", "1,2,inf"],
    ):
        result = cli(stack, redis_prefix, "features", "put", *args)
        assert result.returncode == 2 and "nothing was written" in result.stderr
