"""Fixtures for tests against the real local Kafka broker and redis-server that scripts/stack starts.

Each test gets its own topics, consumer group and Redis key prefix, and removes them afterwards.
"""

from __future__ import annotations

import dataclasses
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import confluent_kafka
import pytest
import redis
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry
from redis.cluster import RedisCluster

from examples.fraud.world import World, make_world
from stream_scorer.codec import Schemas, decode
from stream_scorer.config import BatchSettings, KafkaSettings, MetricsSettings, RedisSettings, Settings
from stream_scorer.features.store import RedisFeatureStore
from stream_scorer.model import artifact
from stream_scorer.wiring import Runtime, build_runtime
from tests.support import FRAUD_SCHEMAS, FRAUD_SETTINGS, FRAUD_SETTINGS_FILE, fraud_history, fraud_train

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Stack:
    bootstrap: str
    redis_url: str  # on a cluster: one seed node
    registry_url: str  # the Apicurio registry's Confluent-compatible API
    prometheus_url: str  # Debian's Prometheus with deploy/prometheus/alerts.yml (scripts/stack scrape adds targets)
    redis_cluster: bool = False
    replication: int = 1  # of the topics the tests create

    @property
    def hash_tags(self) -> int:
        return RedisSettings(cluster=self.redis_cluster).key_tags

    def redis_settings(self, prefix: str) -> RedisSettings:
        return RedisSettings(url=self.redis_url, key_prefix=prefix, cluster=self.redis_cluster)

    def redis(self, **options: Any) -> redis.Redis | RedisCluster:
        """A client of the stack's Redis (or Redis Cluster)."""
        if self.redis_cluster:
            return RedisCluster.from_url(self.redis_url, **options)
        return redis.Redis.from_url(self.redis_url, **options)


def stack_status(mode: str = "") -> dict[str, str]:
    """The KEY=value lines of ``scripts/stack status [mode]``; fails the test when that stack is down."""
    command = [str(REPO / "scripts" / "stack"), "status", *([mode] if mode else [])]
    status = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if status.returncode != 0:
        pytest.fail(f"the local stack is down ({status.stdout.strip()}); run scripts/stack up {mode}, or scripts/test")
    return dict(line.split("=", 1) for line in status.stdout.splitlines() if "=" in line and line[0] != " ")


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest) -> Stack:
    """The single-node stack; a test parametrized with ``indirect=["stack"]`` and "cluster" gets the cluster
    (three brokers, a Redis Cluster: ``scripts/stack up cluster``) with the single stack's registry and Prometheus."""
    values = stack_status()
    single = Stack(
        bootstrap=values["KAFKA_BOOTSTRAP"],
        redis_url=values["REDIS_URL"],
        registry_url=values["SCHEMA_REGISTRY_URL"],
        prometheus_url=values["PROMETHEUS_URL"],
    )
    if getattr(request, "param", "single") == "single":
        return single
    cluster = stack_status("cluster")
    seed = cluster["CLUSTER_REDIS_NODES"].split(",")[0]
    return dataclasses.replace(
        single,
        bootstrap=cluster["CLUSTER_KAFKA_BOOTSTRAP"],
        redis_url=f"redis://{seed}/0",
        redis_cluster=True,
        replication=3,
    )


SINGLE_AND_CLUSTER = pytest.mark.parametrize("stack", ["single", "cluster"], indirect=True)


@pytest.fixture(scope="session")
def schemas() -> Schemas:
    return FRAUD_SCHEMAS


@pytest.fixture(scope="session")
def world() -> World:
    return make_world(seed=21, n_cards=600, n_merchants=60, n_devices=700)


@pytest.fixture(scope="session")
def model_path(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("model")
    fraud_history(world, directory / "history.csv", 6000, seed=3)
    model = fraud_train(directory / "history.csv", name="fraud", version="it-1")
    artifact.save(model, directory / "artifact")
    return directory / "artifact"


@pytest.fixture
def topic_factory(stack: Stack) -> Iterator[Callable[[str, int], str]]:
    admin = AdminClient({"bootstrap.servers": stack.bootstrap})
    created: list[str] = []

    def make(name: str, partitions: int = 3) -> str:
        topic = f"it-{uuid.uuid4().hex[:10]}-{name}"
        admin.create_topics([NewTopic(topic, partitions, stack.replication)])[topic].result(30)
        created.append(topic)
        return topic

    yield make
    if created:
        for future in admin.delete_topics(created, operation_timeout=30).values():
            future.result(30)


@pytest.fixture
def redis_prefix(stack: Stack) -> Iterator[str]:
    prefix = f"it-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = stack.redis()
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for key in keys:
        client.delete(key)
    client.close()


@pytest.fixture
def store(stack: Stack, redis_prefix: str) -> Iterator[RedisFeatureStore]:
    client = stack.redis(decode_responses=False)
    yield RedisFeatureStore(client, redis_prefix, stack.hash_tags)
    client.close()


@dataclass
class Topics:
    input: str
    output: str
    labels: str
    dead_letters: str


@pytest.fixture
def topics(topic_factory: Callable[[str, int], str]) -> Topics:
    return Topics(
        topic_factory("transactions", 3),
        topic_factory("predictions", 3),
        topic_factory("labels", 1),
        topic_factory("dlq", 1),
    )


def make_settings(
    stack: Stack, topics: Topics, redis_prefix: str, model_path: Path, base: Settings = FRAUD_SETTINGS, **kafka: Any
) -> Settings:
    """Settings for one test (of the fraud example, unless ``base`` is another's): its own topics, group and
    key prefix; metrics on a free port."""
    kafka.setdefault("schema_ids", base.kafka.schema_ids)
    return dataclasses.replace(
        base,
        kafka=KafkaSettings(
            bootstrap_servers=stack.bootstrap,
            input_topic=topics.input,
            output_topic=topics.output,
            labels_topic=topics.labels,
            dead_letter_topic=topics.dead_letters,
            group_id=f"it-{uuid.uuid4().hex[:10]}",
            create_topics=False,
            **kafka,
        ),
        batch=BatchSettings(max_events=500, max_wait_seconds=0.05),
        redis=stack.redis_settings(redis_prefix),
        metrics=MetricsSettings(host="127.0.0.1", port=0),
        model_path=model_path,
        schemas_dir=REPO / "schemas",
    )


def worker_env_base() -> dict[str, str]:
    """The environment of a worker process of the fraud example."""
    return {"STREAM_SCORER_CONFIG": str(FRAUD_SETTINGS_FILE)}


class _Running:
    """A loop (``run(stop)``) of a runtime built by the real wiring, running in a thread until :meth:`stop`."""

    def __init__(self, runtime: Any, loop: Callable[[threading.Event], None], registry: CollectorRegistry) -> None:
        self.registry = registry
        self.runtime = runtime
        self._loop = loop
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._loop(self._stop)
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.runtime.close()
        if self.error is not None:
            raise self.error


class RunningWorker(_Running):
    """A scoring worker running in a thread until :meth:`stop`."""

    runtime: Runtime

    def __init__(self, settings: Settings) -> None:
        registry = CollectorRegistry()
        runtime = build_runtime(settings, registry)
        super().__init__(runtime, runtime.worker.run, registry)

    @property
    def metrics_url(self) -> str:
        assert self.runtime.metrics_server is not None
        host, port = self.runtime.metrics_server.address
        return f"http://{host}:{port}"


class RunningLabels(_Running):
    """A label flow running in a thread until :meth:`stop`."""

    def __init__(self, settings: Settings) -> None:
        from stream_scorer.wiring import build_label_runtime

        registry = CollectorRegistry()
        runtime = build_label_runtime(settings, registry)
        super().__init__(runtime, runtime.flow.run, registry)

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 0.2 s; fail the test with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


def produce(bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes]]) -> None:
    """Produce (key, value) pairs and wait until all are acknowledged."""
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    errors: list[Any] = []
    for key, value in items:
        producer.produce(topic, value, key, on_delivery=lambda err, _m: err and errors.append(err))
        producer.poll(0)
    assert producer.flush(30) == 0 and not errors


def read_all(
    bootstrap: str, topic: str, schema: Any, expect: int, timeout: float = 60.0, extra: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every record of ``topic`` from the beginning, until ``expect`` have arrived or ``timeout``; ``extra``
    adds client settings (a secured broker's)."""
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            **(extra or {}),
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in partitions])
        records: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(records) < expect and time.monotonic() < deadline:
            for message in consumer.consume(500, 0.2):
                if message.error() is None:
                    record = decode(schema, message.value())
                    record["_key"] = message.key()
                    records.append(record)
        return records
    finally:
        consumer.close()


def read_to_end(bootstrap: str, topic: str, schema: Any) -> list[dict[str, Any]]:
    """Every committed record of ``topic``, up to the end offsets as they are now."""
    from tools.chaos.harness import read_topic

    return [decode(schema, m.value()) for m in read_topic(bootstrap, topic, limit_seconds=60)]


def read_raw(
    bootstrap: str, topic: str, expect: int, timeout: float = 30.0, extra: dict[str, Any] | None = None
) -> list[Any]:
    """Every message of ``topic`` (key, value, headers) from the beginning, until ``expect`` or ``timeout``."""
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            **(extra or {}),
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in partitions])
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < deadline:
            out.extend(m for m in consumer.consume(500, 0.2) if m.error() is None)
        return out
    finally:
        consumer.close()


def committed_and_end(
    bootstrap: str, group: str, topic: str, timeout: float = 20.0
) -> tuple[dict[int, int], dict[int, int]]:
    """The group's committed offsets and the partitions' end offsets."""
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = {
            tp.partition: tp.offset
            for tp in consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=timeout)
        }
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1] for p in partitions}
        return committed, ends
    finally:
        consumer.close()
