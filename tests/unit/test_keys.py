"""Key names and hash tags (features/keys.py) and the Redis settings that choose them."""

from __future__ import annotations

import binascii

import pytest
from redis.crc import key_slot

from stream_scorer.config import RedisSettings
from stream_scorer.errors import ConfigError
from stream_scorer.features.keys import KeySpace, by_bucket


def test_a_single_redis_keeps_the_untagged_layout() -> None:
    keys = KeySpace("ssf")
    assert keys.key("card_velocity", "card-1") == "ssf:card_velocity:card-1"
    assert keys.buckets(["a", "b"]) == [0, 0] and keys.bucket_key("held", 0, "by-deadline") == "ssf:held:by-deadline"


def test_the_bucket_is_the_standard_crc32_of_the_utf8_id_so_other_writers_can_compute_it() -> None:
    keys = KeySpace("ssf", 256)
    for identifier in ("card-1", "é-42", "12345"):
        expected = binascii.crc32(identifier.encode()) % 256
        assert keys.bucket(identifier) == expected
        assert keys.key("card_profile", identifier) == f"ssf:card_profile:{{{expected}}}:{identifier}"


def test_every_group_of_an_entity_and_every_key_of_an_event_share_one_slot() -> None:
    keys = KeySpace("ssf", 256)
    slots = {key_slot(keys.key(group, "card-9").encode()) for group in ("card_velocity", "card_profile")}
    event = {key_slot(keys.key(kind, "event-3").encode()) for kind in ("pending", "held", "label")}
    bucket = keys.bucket("event-3")
    event |= {
        key_slot(k.encode())
        for k in (keys.bucket_key("held", bucket, "by-deadline"), keys.bucket_key("predicted", bucket, "17"))
    }
    assert len(slots) == 1 and len(event) == 1


def test_ids_with_braces_do_not_move_the_tag() -> None:
    keys = KeySpace("ssf", 64)
    key = keys.key("pending", "{evil}")
    assert key_slot(key.encode()) == key_slot(f"{{{keys.bucket('{evil}')}}}".encode())


def test_by_bucket_keeps_first_appearance_order() -> None:
    assert by_bucket([5, 2, 5, 2, 9]) == {5: [0, 2], 2: [1, 3], 9: [4]}


def test_the_settings_choose_the_tags_and_refuse_layouts_that_cannot_work() -> None:
    assert RedisSettings().key_tags == 1 and RedisSettings(cluster=True).key_tags == 256
    assert RedisSettings(cluster=True, hash_tags=64).key_tags == 64
    assert RedisSettings(key_prefix="a{b}").key_tags == 1  # braces matter only with tags
    with pytest.raises(ConfigError, match="cannot work on a cluster"):
        RedisSettings(cluster=True, hash_tags=1)
    with pytest.raises(ConfigError, match="hash tags"):
        RedisSettings(cluster=True, key_prefix="a{b}")
    with pytest.raises(ConfigError, match="host:port"):
        RedisSettings(cluster=True, cluster_nodes=("nohost",))
    with pytest.raises(ConfigError, match="cluster is false"):
        RedisSettings(cluster_nodes=("127.0.0.1:7000",))
