"""Topic administration: create the worker's topics when they are missing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from stream_scorer.errors import KafkaError


def ensure_topics(
    bootstrap_servers: str,
    topics: Sequence[str],
    partitions: int,
    extra: Mapping[str, str],
    replication_factor: int = 1,
    timeout: float = 30.0,
) -> list[str]:
    """Create each topic of ``topics`` that does not exist yet. Returns the ones created."""
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap_servers, **extra})
    except confluent_kafka.KafkaException as exc:
        raise KafkaError(f"the Kafka admin client refused its settings: {exc}") from exc
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except confluent_kafka.KafkaException as exc:
        raise KafkaError(f"cannot reach Kafka at {bootstrap_servers}: {exc}") from exc
    missing = [t for t in dict.fromkeys(topics) if t not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(t, partitions, replication_factor) for t in missing], operation_timeout=timeout
    )
    created = []
    for topic, future in futures.items():
        try:
            future.result(timeout)
            created.append(topic)
        except confluent_kafka.KafkaException as exc:
            if exc.args[0].code() != confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                raise KafkaError(f"cannot create topic {topic}: {exc}") from exc
    return created
