"""The Redis section of the settings: one server or a Redis Cluster, the key prefix, auth, the circuit breaker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stream_scorer.config.secrets import mask_url
from stream_scorer.errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisSettings:
    url: str = "redis://127.0.0.1:16379/0"
    key_prefix: str = "ssf"
    socket_timeout_seconds: float = 0.5
    # Redis 6 ACL user, and its password as "env:NAME" or "file:/path" (for TLS use a rediss:// URL).
    username: str = ""
    password: str = ""
    ssl_ca_certs: Path | None = None
    # Circuit breaker: after this many failed calls in a row, stop calling Redis for `breaker_reset_seconds`
    # and serve predictions with imputed features (status UNAVAILABLE); then try one call again.
    breaker_failures: int = 3
    breaker_reset_seconds: float = 5.0
    # A Redis Cluster: `url` is one seed node, `cluster_nodes` ("host:port") more of them. Keys then carry hash
    # tags (`hash_tags` buckets of the entity or event id, 256 unless set) so a batch costs one call per tag,
    # pipelined per node; a node that is down serves its rows as UNAVAILABLE behind its own circuit breaker.
    cluster: bool = False
    cluster_nodes: tuple[str, ...] = ()
    hash_tags: int = 0  # 0: 1 on a single Redis (keys without tags), 256 on a cluster

    def __post_init__(self) -> None:
        if not 0 <= self.hash_tags <= 16384:
            raise ConfigError(f"redis.hash_tags must be in 0..16384 (0: the default), not {self.hash_tags}")
        if self.key_tags > 1 and ("{" in self.key_prefix or "}" in self.key_prefix):
            raise ConfigError(f"redis.key_prefix cannot hold '{{' or '}}' with hash tags: {self.key_prefix!r}")
        if self.cluster and self.key_tags == 1:
            raise ConfigError(
                "redis.hash_tags = 1 cannot work on a cluster (every batch's keys span slots): leave it 0"
            )
        for node in self.cluster_nodes:
            host, _, port = node.rpartition(":")
            if not host or not port.isdigit():
                raise ConfigError(f'redis.cluster_nodes holds "host:port" seeds, not {node!r}')
        if self.cluster_nodes and not self.cluster:
            raise ConfigError("redis.cluster_nodes is set but redis.cluster is false")

    @property
    def key_tags(self) -> int:
        """How many hash tags keys are spread over (1: no tags)."""
        return self.hash_tags or (256 if self.cluster else 1)

    def __repr__(self) -> str:  # the URL may carry a password
        return (
            f"RedisSettings(url={mask_url(self.url)!r}, key_prefix={self.key_prefix!r}, "
            f"username={self.username!r}, password={'***' if self.password else ''!r}, cluster={self.cluster!r})"
        )
