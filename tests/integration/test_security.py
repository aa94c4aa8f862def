"""Least privilege on the secured stack (scripts/stack up secure): a SASL_SSL broker with SCRAM users and
StandardAuthorizer (allow.everyone.if.no.acl.found=false), and a TLS-only redis-server with ACL users.

The rights applied are exactly the lines of deploy/security/kafka-acls.sh and deploy/security/redis-acl.txt
(the files docs/security.md shows), with this test's own topic, group and key-prefix names.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shlex
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import confluent_kafka
import numpy as np
import pytest
import redis
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from prometheus_client import generate_latest
from sklearn.metrics import precision_score, recall_score

from examples.fraud import world as fraud_world
from examples.fraud.world import World
from stream_scorer.config import Settings
from stream_scorer.errors import AccessDeniedError
from stream_scorer.features.access import refused_login
from stream_scorer.features.store import RedisFeatureStore
from stream_scorer.model import artifact
from stream_scorer.wiring import build_label_runtime, build_runtime
from tests.integration.conftest import (
    REPO,
    RunningLabels,
    RunningWorker,
    Stack,
    Topics,
    read_all,
    read_raw,
    wait_for,
    worker_env_base,
)
from tests.integration.test_labels import COUNT_WINDOW, label_settings
from tests.support import FRAUD_CONTRACT
from tools.synth import io as synth_io

pytestmark = pytest.mark.integration

KAFKA_ACLS = REPO / "deploy" / "security" / "kafka-acls.sh"
REDIS_ACLS = REPO / "deploy" / "security" / "redis-acl.txt"
OPERATIONS = {"Read": AclOperation.READ, "Write": AclOperation.WRITE, "DescribeConfigs": AclOperation.DESCRIBE_CONFIGS}
RESOURCES = {
    "--topic": ResourceType.TOPIC,
    "--group": ResourceType.GROUP,
    "--transactional-id": ResourceType.TRANSACTIONAL_ID,
}


@dataclass(frozen=True)
class Secure:
    bootstrap: str
    redis_url: str
    ca: str
    admin_password: str
    passwords: dict[str, str]  # the SCRAM and Redis passwords of this session's users


@pytest.fixture(scope="session")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Secure:
    status = subprocess.run([str(REPO / "scripts" / "stack"), "status", "secure"], capture_output=True, text=True)
    values = dict(line.split("=", 1) for line in status.stdout.splitlines() if "=" in line)
    if status.returncode != 0:
        pytest.fail(f"the secured stack is down ({status.stdout.strip()}); run scripts/stack up secure")
    passwords = {user: uuid.uuid4().hex for user in ("stream-scorer", "stream-scorer-labels")}
    secure = Secure(
        values["SECURE_KAFKA_BOOTSTRAP"],
        values["SECURE_REDIS_URL"],
        values["SECURE_CA"],
        Path(values["SECURE_ADMIN_PASSWORD_FILE"]).read_text().strip(),
        passwords,
    )
    admin = AdminClient(admin_conf(secure))
    upserts = [
        UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), pw.encode())
        for user, pw in passwords.items()
    ]
    for future in admin.alter_user_scram_credentials(upserts).values():
        future.result(30)
    return secure


def admin_conf(secure: Secure, user: str = "admin", password: str | None = None) -> dict[str, Any]:
    return {
        "bootstrap.servers": secure.bootstrap,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": user,
        "sasl.password": secure.admin_password if password is None else password,
        "ssl.ca.location": secure.ca,
    }


def admin_redis(secure: Secure) -> redis.Redis:
    return redis.Redis.from_url(secure.redis_url, password=secure.admin_password, ssl_ca_certs=secure.ca)


@dataclass(frozen=True)
class Names:
    input: str
    output: str
    dlq: str
    labels: str
    group: str
    prefix: str

    def variables(self) -> dict[str, str]:
        return {
            "INPUT": self.input,
            "OUTPUT": self.output,
            "DLQ": self.dlq,
            "LABELS": self.labels,
            "GROUP": self.group,
            "LABELS_GROUP": f"{self.group}-labels",
            "TXN": f"stream-scorer-{self.group}-",
        }


def fresh_names(secure: Secure) -> Names:
    tag = uuid.uuid4().hex[:8]
    names = Names(f"sec-{tag}-in", f"sec-{tag}-out", f"sec-{tag}-dlq", f"sec-{tag}-labels", f"sec-{tag}", f"sec{tag}")
    admin = AdminClient(admin_conf(secure))
    for future in admin.create_topics(
        [NewTopic(t, 2, 1) for t in (names.input, names.output, names.dlq, names.labels)]
    ).values():
        future.result(30)
    return names


def granted_names(secure: Secure) -> Names:
    """Fresh names, with every right of the two files granted on them."""
    names = fresh_names(secure)
    apply_kafka_acls(secure, names)
    apply_redis_acls(secure, names.prefix)
    return names


def kafka_acl_lines() -> list[list[str]]:
    """The `acls --add ...` lines of deploy/security/kafka-acls.sh, split as the shell would."""
    return [shlex.split(line)[1:] for line in KAFKA_ACLS.read_text().splitlines() if line.startswith("acls --add")]


def kafka_bindings(line: list[str], variables: dict[str, str]) -> list[AclBinding]:
    principal, operations, resource, name, pattern = "", [], None, "", ResourcePatternType.LITERAL
    words = iter(line)
    for word in words:
        if word == "--allow-principal":
            principal = next(words)
        elif word == "--operation":
            operations.append(OPERATIONS[next(words)])
        elif word in RESOURCES:
            resource, name = RESOURCES[word], next(words).replace('"', "")
            for key in sorted(variables, key=len, reverse=True):  # $LABELS_GROUP before $LABELS
                name = name.replace(f"${key}", variables[key])
        elif word == "--resource-pattern-type":
            pattern = ResourcePatternType.PREFIXED if next(words) == "prefixed" else ResourcePatternType.LITERAL
    assert principal and operations and resource is not None, line
    return [AclBinding(resource, name, pattern, principal, "*", op, AclPermissionType.ALLOW) for op in operations]


def apply_kafka_acls(secure: Secure, names: Names, skip: int | None = None) -> None:
    admin = AdminClient(admin_conf(secure))
    bindings = [
        b for i, line in enumerate(kafka_acl_lines()) if i != skip for b in kafka_bindings(line, names.variables())
    ]
    for future in admin.create_acls(bindings).values():
        future.result(30)


def redis_acl_commands(prefix: str, passwords: dict[str, str], drop: tuple[str, str] | None = None) -> list[list[str]]:
    """The ACL SETUSER lines of deploy/security/redis-acl.txt for ``prefix``, without ``drop`` (user, token)."""
    commands = []
    for line in REDIS_ACLS.read_text().splitlines():
        if not line.startswith("ACL SETUSER"):
            continue
        words = line.replace("ssf:", f"{prefix}:").split()
        user = words[2]
        words = [f">{passwords[user]}" if w == ">CHANGE-ME" else w for w in words]
        if drop is not None and drop[0] == user:
            words = [w for w in words if w != drop[1].replace("ssf:", f"{prefix}:")]
        commands.append(["ACL", "SETUSER", user, "reset", *words[3:]])
    return commands


def apply_redis_acls(secure: Secure, prefix: str, drop: tuple[str, str] | None = None) -> None:
    client = admin_redis(secure)
    for command in redis_acl_commands(prefix, secure.passwords, drop):
        client.execute_command(*command)


def settings_for(secure: Secure, names: Names, model_path: Path, tmp_path: Path, user: str, **kafka: Any) -> Settings:
    """The label tests' settings (make_settings), on the secured stack with ``names``, as ``user``."""
    password_file = tmp_path / f"{user}.password"
    password_file.write_text(secure.passwords[user])
    variable = "SS_TEST_KAFKA_PASSWORD_" + user.replace("-", "_").upper()
    os.environ[variable] = secure.passwords[user]
    on_secure = Stack(secure.bootstrap, secure.redis_url, registry_url="", prometheus_url="")
    client = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user}
    base = label_settings(
        on_secure, Topics(names.input, names.output, names.labels, names.dlq), names.prefix, model_path
    )
    return dataclasses.replace(
        base,
        kafka=dataclasses.replace(
            base.kafka,
            group_id=names.group,
            client={**client, "ssl.ca.location": secure.ca},
            client_secrets={"sasl.password": f"env:{variable}"},
            **kafka,
        ),
        redis=dataclasses.replace(
            base.redis, username=user, password=f"file:{password_file}", ssl_ca_certs=Path(secure.ca)
        ),
        labels=dataclasses.replace(base.labels, group_id=f"{names.group}-labels"),
    )


def publish_secure(secure: Secure, names: Names, world: World, schemas: Any, n: int, **options: Any) -> dict[str, Any]:
    producer = confluent_kafka.Producer({**admin_conf(secure), "linger.ms": 5})
    return synth_io.publish(
        fraud_world,
        world,
        producer,
        schemas,
        FRAUD_CONTRACT,
        events_topic=names.input,
        labels_topic=names.labels,
        count=n,
        label_delay_seconds=1.0,
        rate=2000.0,
        **options,
    )


def read_secure(secure: Secure, topic: str, schema: Any, expect: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    conf = {**admin_conf(secure), "isolation.level": "read_committed"}
    return read_all(secure.bootstrap, topic, schema, expect, timeout, extra=conf)


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
def test_the_worker_and_the_label_flow_run_end_to_end_with_exactly_the_documented_rights(
    secure: Secure,
    world: World,
    model_path: Path,
    schemas: Any,
    tmp_path: Path,
    delivery: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every record our loggers write is scanned for secrets below
    names = granted_names(secure)
    writer = RedisFeatureStore(admin_redis(secure), names.prefix)  # the feature writer has its own rights
    worker_settings = settings_for(secure, names, model_path, tmp_path, "stream-scorer", delivery=delivery)
    label_flow_settings = settings_for(secure, names, model_path, tmp_path, "stream-scorer-labels")
    synth_io.seed_features(world, writer, worker_settings.feature_groups, now_ms=int(time.time() * 1000))
    n = 600
    worker, labels = RunningWorker(worker_settings), RunningLabels(label_flow_settings)
    try:
        sent = publish_secure(secure, names, world, schemas, n)
        poison = confluent_kafka.Producer(admin_conf(secure))
        poison.produce(names.input, b"\x00not avro")  # one dead letter
        assert poison.flush(30) == 0
        predictions = read_secure(secure, names.output, schemas.prediction, n)
        wait_for(lambda: labels.value("stream_scorer_labels_joined_total") >= n, 60, f"{n} labels joined")
        dead = read_raw(secure.bootstrap, names.dlq, 1, timeout=60, extra=admin_conf(secure))
        exposition = generate_latest(worker.registry).decode() + generate_latest(labels.registry).decode()
    finally:
        labels.stop()
        worker.stop()
    assert sorted(p["event_id"] for p in predictions) == sorted(sent["event_ids"])  # each event scored once
    assert labels.value("stream_scorer_labels_joined_total") == n
    # The quality metrics are those of the joined pairs, as on the plaintext stack (test_labels): to 1e-9.
    model = artifact.load(model_path)
    truth = dict(zip(sent["event_ids"], sent["label_values"].tolist(), strict=True))
    y = np.array([truth[p["event_id"]] for p in predictions])
    scores = np.array([p["score"] for p in predictions])
    key = {"model": model.name, "version": model.version, "window": COUNT_WINDOW}
    exported = {m: labels.registry.get_sample_value(f"stream_scorer_model_{m}", key) for m in ("precision", "recall")}
    assert exported["precision"] == pytest.approx(precision_score(y, scores >= model.threshold), abs=1e-9)
    assert exported["recall"] == pytest.approx(recall_score(y, scores >= model.threshold), abs=1e-9)
    # No secret anywhere the run wrote: logs, settings reprs, metrics, dead-letter headers and bodies.
    written = [caplog.text, repr(worker_settings), repr(label_flow_settings), exposition]
    written += [repr(m.headers()) + repr(m.value()) for m in dead]
    for secret in (*secure.passwords.values(), secure.admin_password):
        assert not any(secret in text for text in written)

    assert dead and all(secret not in repr(m.headers()) for m in dead for secret in secure.passwords.values())


WORKER_LINES = [i for i, line in enumerate(kafka_acl_lines()) if "User:stream-scorer" in line]
EXPECTED = {  # what the error names when the line is missing
    "--topic $INPUT": "read topic {input}: grant Read",
    "--topic $OUTPUT": "write to topic {output}: grant Write",
    "--topic $DLQ": "write to topic {dlq}: grant Write",
    "--group $GROUP": "consumer group {group}",
    "--group $LABELS_GROUP": "consumer group {group}-labels",
    "--transactional-id $TXN": "transactional id stream-scorer-{group}-0",
    "--topic $LABELS": "read topic {labels}: grant Read",
}


@pytest.mark.parametrize("skip", range(len(kafka_acl_lines())), ids=lambda i: " ".join(kafka_acl_lines()[i][2:]))
def test_each_kafka_right_removed_stops_the_component_at_startup_naming_it(
    secure: Secure, model_path: Path, tmp_path: Path, skip: int
) -> None:
    line = kafka_acl_lines()[skip]
    names = fresh_names(secure)
    apply_kafka_acls(secure, names, skip=skip)
    apply_redis_acls(secure, names.prefix)
    user = line[line.index("--allow-principal") + 1].removeprefix("User:")
    resource = next(f"{w} {line[i + 1]}".replace('"', "") for i, w in enumerate(line) if w in RESOURCES)
    expected = EXPECTED[resource].format(**dataclasses.asdict(names))
    delivery = "exactly_once" if "transactional" in resource else "at_least_once"
    settings = settings_for(secure, names, model_path, tmp_path, user, delivery=delivery)
    build = build_runtime if user == "stream-scorer" else build_label_runtime
    with pytest.raises(AccessDeniedError, match=expected):
        build(settings).close()


def test_wrong_password_untrusted_ca_and_tls_against_plaintext_each_give_one_clear_error(
    secure: Secure, stack: Stack, model_path: Path, tmp_path: Path
) -> None:
    names = granted_names(secure)
    good = settings_for(secure, names, model_path, tmp_path, "stream-scorer")
    other_ca = tmp_path / "other-ca.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=other",
            "-keyout",
            str(tmp_path / "other.key"),
            "-out",
            str(other_ca),
        ],
        check=True,
        capture_output=True,
    )
    os.environ["SS_TEST_WRONG_PASSWORD"] = "not-the-password"
    cases = {
        "SASL authentication": dataclasses.replace(
            good, kafka=dataclasses.replace(good.kafka, client_secrets={"sasl.password": "env:SS_TEST_WRONG_PASSWORD"})
        ),
        "certificate verify failed": dataclasses.replace(
            good, kafka=dataclasses.replace(good.kafka, client={**good.kafka.client, "ssl.ca.location": str(other_ca)})
        ),
        "SSL handshake failed": dataclasses.replace(
            good,
            kafka=dataclasses.replace(good.kafka, bootstrap_servers=stack.bootstrap),  # the plaintext broker
        ),
        "WRONGPASS|invalid username-password": dataclasses.replace(
            good, redis=dataclasses.replace(good.redis, password="env:SS_TEST_WRONG_PASSWORD")
        ),
        "redis TLS handshake failed.*certificate verify failed": dataclasses.replace(
            good, redis=dataclasses.replace(good.redis, ssl_ca_certs=other_ca)
        ),
    }
    for expected, settings in cases.items():
        started = time.monotonic()
        with pytest.raises(AccessDeniedError, match=expected):
            build_runtime(settings).close()
        assert time.monotonic() - started < 30, expected


def test_the_worker_redis_user_cannot_read_or_write_outside_its_prefix(secure: Secure) -> None:
    prefix = f"sec{uuid.uuid4().hex[:8]}"
    apply_redis_acls(secure, prefix)
    port = secure.redis_url.rsplit(":", 1)[1].split("/")[0]
    base = [
        "redis-cli",
        "--tls",
        "--cacert",
        secure.ca,
        "-h",
        "127.0.0.1",
        "-p",
        port,
        "--user",
        "stream-scorer",
    ]
    auth = {**os.environ, "REDISCLI_AUTH": secure.passwords["stream-scorer"]}  # not on a command line

    def cli(*command: str) -> str:
        return subprocess.run([*base, *command], capture_output=True, text=True, timeout=10, env=auth).stdout.strip()

    assert cli("GET", f"{prefix}:card_profile:c1") == ""  # its own prefix: allowed (nil)
    assert "NOPERM" in cli("GET", "other:card_profile:c1")
    assert "NOPERM" in cli("SET", f"{prefix}:card_profile:c1", "x")  # features are read-only to it
    assert "NOPERM" in cli("SET", "other:pending:e1", "x")
    assert "NOPERM" in cli("KEYS", "*")
    assert "NOPERM" in cli("GET", f"{prefix}:label:e1")  # the joined labels are the label flow's
    assert "NOPERM" in cli("GET", f"{prefix}:held:e1")
    assert cli("SET", f"{prefix}:pending:e1", "x", "PX", "1000") == "OK"


def redis_rules() -> list[tuple[str, str]]:
    """(user, token) of every command and key pattern the rights file grants."""
    out = []
    for line in REDIS_ACLS.read_text().splitlines():
        if line.startswith("ACL SETUSER"):
            words = line.split()
            out += [(words[2], w) for w in words[3:] if w.startswith(("+", "%"))]
    return out


# Granted for a purpose the startup check cannot see: PING is what /readyz asks; EVALSHA_RO tells a record of
# another type from a missing one, and the worker serves without it, saying so (docs/configuration.md).
OPTIONAL = {
    ("stream-scorer", "+ping"),
    ("stream-scorer-labels", "+ping"),
    ("stream-scorer", "+evalsha_ro"),
    ("stream-scorer", "+get"),  # only that script's command
}


@pytest.mark.parametrize("rule", redis_rules(), ids=lambda r: f"{r[0]} {r[1]}")
def test_each_redis_rule_removed_stops_the_component_at_startup_naming_it(
    secure: Secure, model_path: Path, tmp_path: Path, rule: tuple[str, str]
) -> None:
    user = rule[0]
    names = fresh_names(secure)
    apply_kafka_acls(secure, names)
    apply_redis_acls(secure, names.prefix, drop=rule)
    settings = settings_for(secure, names, model_path, tmp_path, user)
    build = build_runtime if user == "stream-scorer" else build_label_runtime
    if rule in OPTIONAL:
        build(settings).close()  # starts; what needs it degrades and says so
        return
    expected = "redis refused .*(no permissions|can't run this command)"
    with pytest.raises(AccessDeniedError, match=expected):
        build(settings).close()


def test_a_write_right_revoked_while_running_stops_the_worker_with_nothing_committed_past_what_was_delivered(
    secure: Secure, world: World, model_path: Path, schemas: Any, tmp_path: Path
) -> None:
    names = granted_names(secure)
    settings = settings_for(secure, names, model_path, tmp_path, "stream-scorer")
    synth_io.seed_features(
        world,
        RedisFeatureStore(admin_redis(secure), names.prefix),
        settings.feature_groups,
        now_ms=int(time.time() * 1000),
    )
    worker = RunningWorker(settings)
    admin = AdminClient(admin_conf(secure))
    try:
        publish_secure(secure, names, world, schemas, 200)
        read_secure(secure, names.output, schemas.prediction, 200)
        (write,) = kafka_bindings(kafka_acl_lines()[1], names.variables())  # Write on the output topic
        for future in admin.delete_acls(
            [
                AclBindingFilter(
                    write.restype,
                    write.name,
                    write.resource_pattern_type,
                    write.principal,
                    write.host,
                    write.operation,
                    write.permission_type,
                )
            ]
        ).values():
            future.result(30)
        time.sleep(2)
        publish_secure(secure, names, world, schemas, 200)
        wait_for(lambda: worker.error is not None, 60, "the worker to stop on the missing right")
    finally:
        with pytest.raises(AccessDeniedError, match=f"not authorized to write to topic {names.output}"):
            worker.stop()
    delivered = len(read_secure(secure, names.output, schemas.prediction, 400, timeout=10))
    # The group's offsets through a consumer of the group, not the admin client's offset listing (which can
    # crash the process: stream_scorer.kafka.access._check_group).
    reader = confluent_kafka.Consumer({**admin_conf(secure), "group.id": names.group})
    partitions = admin.list_topics(names.input, timeout=30).topics[names.input].partitions
    offsets = reader.committed([confluent_kafka.TopicPartition(names.input, p) for p in partitions], timeout=30)
    reader.close()
    committed = sum(max(tp.offset, 0) for tp in offsets)
    assert committed <= delivered < 400  # nothing committed past what was delivered; the rest waits


def test_an_expired_redis_certificate_is_one_clear_error(secure: Secure, tmp_path: Path) -> None:
    ca_dir = Path(secure.ca).parent
    conf = tmp_path / "ca.cnf"
    conf.write_text(
        f"[ca]\ndefault_ca=d\n[d]\ndatabase={tmp_path}/index\nnew_certs_dir={tmp_path}\nserial={tmp_path}/serial\n"
        "default_md=sha256\npolicy=p\nx509_extensions=e\n[p]\ncommonName=supplied\n[e]\nsubjectAltName=IP:127.0.0.1\n"
    )
    (tmp_path / "index").write_text("")
    (tmp_path / "serial").write_text("01\n")
    key, csr, cert = tmp_path / "old.key", tmp_path / "old.csr", tmp_path / "old.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(csr),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            "openssl",
            "ca",
            "-batch",
            "-config",
            str(conf),
            "-cert",
            str(ca_dir / "ca.pem"),
            "-keyfile",
            str(ca_dir / "ca.key"),
            "-in",
            str(csr),
            "-out",
            str(cert),
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200102000000Z",
        ],
        check=True,
        capture_output=True,
    )
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--tls-cert-file",
            str(cert),
            "--tls-key-file",
            str(key),
            "--tls-ca-cert-file",
            secure.ca,
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _accepts(port), 10, "the expired-certificate redis-server to listen")
        client = redis.Redis.from_url(f"rediss://127.0.0.1:{port}/0", ssl_ca_certs=secure.ca, socket_timeout=5)
        with pytest.raises(redis.ConnectionError) as refused:
            client.ping()
        problem = refused_login(refused.value)
        assert problem is not None and "redis TLS handshake failed" in str(problem) and "expired" in str(problem)
    finally:
        server.terminate()
        server.wait(10)


def test_the_metrics_endpoint_binds_only_where_configured(secure: Secure, model_path: Path, tmp_path: Path) -> None:
    names = granted_names(secure)
    settings = settings_for(secure, names, model_path, tmp_path, "stream-scorer")
    runtime = build_runtime(settings)
    try:
        assert runtime.metrics_server is not None
        assert runtime.metrics_server.address[0] == "127.0.0.1"  # metrics.host, not every interface
    finally:
        runtime.close()


def test_a_supervised_worker_without_a_right_stops_once_with_exit_code_4_and_is_not_restarted(
    secure: Secure, model_path: Path, tmp_path: Path
) -> None:
    names = fresh_names(secure)
    group_line = next(i for i, line in enumerate(kafka_acl_lines()) if '"$GROUP"' in line or "$GROUP" in line)
    apply_kafka_acls(secure, names, skip=group_line)
    apply_redis_acls(secure, names.prefix)
    (tmp_path / "pw").write_text(secure.passwords["stream-scorer"])
    env = {
        **os.environ,
        **worker_env_base(),
        "STREAM_SCORER_MODEL_PATH": str(model_path),
        "STREAM_SCORER_METRICS__PORT": "0",
        "STREAM_SCORER_KAFKA__BOOTSTRAP_SERVERS": secure.bootstrap,
        "STREAM_SCORER_KAFKA__INPUT_TOPIC": names.input,
        "STREAM_SCORER_KAFKA__OUTPUT_TOPIC": names.output,
        "STREAM_SCORER_KAFKA__DEAD_LETTER_TOPIC": names.dlq,
        "STREAM_SCORER_KAFKA__GROUP_ID": names.group,
        "STREAM_SCORER_KAFKA__CREATE_TOPICS": "false",
        "STREAM_SCORER_KAFKA__CLIENT__security.protocol": "SASL_SSL",
        "STREAM_SCORER_KAFKA__CLIENT__sasl.mechanism": "SCRAM-SHA-512",
        "STREAM_SCORER_KAFKA__CLIENT__sasl.username": "stream-scorer",
        "STREAM_SCORER_KAFKA__CLIENT__ssl.ca.location": secure.ca,
        "STREAM_SCORER_KAFKA__CLIENT_SECRETS__sasl.password": f"file:{tmp_path / 'pw'}",
        "STREAM_SCORER_REDIS__URL": secure.redis_url,
        "STREAM_SCORER_REDIS__KEY_PREFIX": names.prefix,
        "STREAM_SCORER_REDIS__USERNAME": "stream-scorer",
        "STREAM_SCORER_REDIS__PASSWORD": f"file:{tmp_path / 'pw'}",
        "STREAM_SCORER_REDIS__SSL_CA_CERTS": secure.ca,
    }
    started = time.monotonic()
    run = subprocess.run(
        [str(REPO / ".venv" / "bin" / "stream-scorer"), "run", "--workers", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 4, output
    assert f"not authorized for consumer group {names.group}" in output
    assert output.count("AccessDeniedError") == 1, output  # one worker start, no restart loop
    assert time.monotonic() - started < 60
    assert secure.passwords["stream-scorer"] not in output


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
