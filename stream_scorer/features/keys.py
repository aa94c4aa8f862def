"""Redis key names, and the hash tags that keep a Redis Cluster call's keys in one slot.

A key is ``<prefix>:<kind>:<name>``. On a Redis Cluster a multi-key command (MGET, a script) is refused
unless all its keys hash to one slot, so there keys carry a hash tag, one of ``hash_tags`` buckets of an
id: ``<prefix>:<kind>:{<bucket>}:<name>``, the bucket being ``crc32(utf-8 id) mod hash_tags``. Every group
of one entity shares its entity id's bucket; a pending prediction, its label and its held label share the
event id's, and each bucket has its own coverage counters and held set. A batch then costs one call per
bucket it touches (at most ``hash_tags``), grouped into one pipeline per node. With ``hash_tags = 1`` (a
single Redis) keys carry no tag and a batch is one call.

Because the tag follows the kind, ACL key patterns such as ``ssf:pending:*`` cover both layouts.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

MAX_HASH_TAGS = 16384  # one per hash slot


class KeySpace:
    """Key names under one prefix, tagged by buckets of ids when ``hash_tags`` > 1.

    >>> KeySpace("ssf").key("pending", "e1"), KeySpace("ssf", 256).key("pending", "e1")
    ('ssf:pending:e1', 'ssf:pending:{39}:e1')
    """

    def __init__(self, prefix: str, hash_tags: int = 1) -> None:
        if hash_tags > 1 and ("{" in prefix or "}" in prefix):
            raise ValueError(f"a key prefix cannot hold '{{' or '}}' (Redis hash tags): {prefix!r}")
        if not 1 <= hash_tags <= MAX_HASH_TAGS:
            raise ValueError(f"hash_tags must be in 1..{MAX_HASH_TAGS}, not {hash_tags}")
        self.prefix = prefix
        self.hash_tags = hash_tags

    def bucket(self, identifier: str) -> int:
        """The hash-tag bucket of an id (0 when keys are not tagged)."""
        if self.hash_tags == 1:
            return 0
        return zlib.crc32(identifier.encode("utf-8", "surrogatepass")) % self.hash_tags

    def buckets(self, identifiers: Sequence[str]) -> list[int]:
        """The buckets of many ids."""
        if self.hash_tags == 1:
            return [0] * len(identifiers)
        n, crc = self.hash_tags, zlib.crc32
        return [crc(i.encode("utf-8", "surrogatepass")) % n for i in identifiers]

    def tag(self, bucket: int) -> str:
        """The hash tag of a bucket, as it appears in a key ("" when keys are not tagged)."""
        return "" if self.hash_tags == 1 else f"{{{bucket}}}:"

    def key(self, kind: str, name: str) -> str:
        """The key of ``name``, tagged by its own bucket."""
        return f"{self.prefix}:{kind}:{self.tag(self.bucket(name))}{name}"

    def bucket_key(self, kind: str, bucket: int, name: str) -> str:
        """A key in a given bucket (a held set, say)."""
        return f"{self.prefix}:{kind}:{self.tag(bucket)}{name}"


def by_bucket(buckets: Sequence[int]) -> dict[int, list[int]]:
    """Positions grouped by bucket, in order of first appearance.

    >>> by_bucket([3, 1, 3])
    {3: [0, 2], 1: [1]}
    """
    groups: dict[int, list[int]] = {}
    for position, bucket in enumerate(buckets):
        groups.setdefault(bucket, []).append(position)
    return groups
