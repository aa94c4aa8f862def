"""Topic administration: create the worker's topics when they are missing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import confluent_kafka
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic  # type: ignore[attr-defined]

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


def max_message_bytes(bootstrap_servers: str, topic: str, extra: Mapping[str, str], timeout: float = 30.0) -> int:
    """The topic's ``max.message.bytes``; raise :class:`KafkaError` if the topic does not exist or cannot be read.

    A record larger than this is refused by the broker, whatever the producer allows.
    """
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap_servers, **extra})
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        configs = admin.describe_configs([resource], request_timeout=timeout)[resource].result(timeout)
        return int(configs["max.message.bytes"].value)
    except (confluent_kafka.KafkaException, TimeoutError) as exc:
        raise KafkaError(f"cannot read the configuration of topic {topic}: {exc!r}") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise KafkaError(f"topic {topic} reports no usable max.message.bytes: {exc}") from exc
