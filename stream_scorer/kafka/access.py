"""What a Kafka principal may do, checked where it can be and named where it fails.

Least privilege (``deploy/security/kafka-acls.sh``) means a missing right must say which one, once, instead
of a crash loop or a partition that silently stops. At startup :func:`check_access` connects (a wrong
password, an untrusted certificate or TLS against a plaintext port is one clear error) and asks for the
metadata of every topic and the offsets of the group: Describe on each, Read on the group. Read on the
input and Write on the outputs cannot be tried without side effects: :func:`denied` turns the broker's
authorization errors at first use into an :class:`~stream_scorer.errors.AccessDeniedError` naming the
right, which stops the process before it commits anything past what was delivered.

Only refusals are access errors. A broker that does not answer, drops a TLS handshake (it may be
restarting) or does not support a request is left to the clients, which wait and retry as they always did.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import confluent_kafka
from confluent_kafka.admin import AdminClient

from stream_scorer.errors import AccessDeniedError

log = logging.getLogger(__name__)
ACLS = "deploy/security/kafka-acls.sh"
_E = confluent_kafka.KafkaError
_LOGIN = (_E._AUTHENTICATION, _E.SASL_AUTHENTICATION_FAILED)


def denied(
    error: Any, *, topic: str = "", group: str = "", transactional_id: str = "", using: str = ""
) -> AccessDeniedError | None:
    """The :class:`AccessDeniedError` an authorization error or a refused login means; ``None`` for others.

    ``using`` says what the right on a topic is for: ``read`` or ``write``.

    >>> e = confluent_kafka.KafkaError(confluent_kafka.KafkaError.TOPIC_AUTHORIZATION_FAILED)
    >>> str(denied(e, topic="predictions", using="write")).split(":")[0]
    'not authorized to write to topic predictions'
    >>> denied(confluent_kafka.KafkaError(confluent_kafka.KafkaError._MSG_TIMED_OUT)) is None
    True
    """
    code = error.code() if error is not None else None
    if code == _E.TOPIC_AUTHORIZATION_FAILED:
        right = {"write": "Write", "read": "Read"}.get(using, "Describe")
        verb = {"write": "write to", "read": "read"}.get(using, "describe")
        return AccessDeniedError(
            f"not authorized to {verb} topic {topic or '(unknown)'}: grant {right} on the topic to this principal "
            f"(it implies Describe), as {ACLS} does ({error})"
        )
    if code == _E.GROUP_AUTHORIZATION_FAILED:
        return AccessDeniedError(
            f"not authorized for consumer group {group or '(unknown)'}: grant Read on the group to this principal, "
            f"as {ACLS} does ({error})"
        )
    if code == _E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
        return AccessDeniedError(
            f"not authorized for transactional id {transactional_id or '(unknown)'}: grant Write on the "
            f"transactional ids of this worker's group (a prefixed ACL), as {ACLS} does ({error})"
        )
    if code == _E.CLUSTER_AUTHORIZATION_FAILED:
        return AccessDeniedError(f"not authorized for a cluster operation ({error}); see {ACLS}")
    if code in _LOGIN:
        return AccessDeniedError(f"cannot connect to Kafka: the login was refused: {error}")
    return None


def refused_handshake(error: Any) -> AccessDeniedError | None:
    """At startup only: a certificate the CA file does not trust, or TLS against a plaintext listener."""
    text = str(error)
    if "certificate verify failed" in text or "connecting to a PLAINTEXT broker listener" in text:
        return AccessDeniedError(f"cannot connect to Kafka securely: {error}")
    return None


def check_access(settings: Mapping[str, Any], topics: Mapping[str, str], group: str, timeout: float = 15.0) -> None:
    """Connect with the client ``settings`` and check Describe on ``topics`` (each with what it is for,
    ``read`` or ``write``) and on ``group``.

    Raises :class:`AccessDeniedError` naming the first right missing, or why the login or the TLS handshake
    was refused. Anything else is logged and left to the clients.
    """
    seen: list[Any] = []
    # A topic asked for by name must not be created by the asking (librdkafka's producer-side default).
    config = {**settings, "allow.auto.create.topics": False, "error_cb": seen.append}
    admin = AdminClient(config)
    metadata = _metadata(admin, seen, str(settings.get("bootstrap.servers")), timeout)
    if metadata is None:
        return
    for topic, using in topics.items():
        entry = metadata.topics.get(topic)
        if entry is None:  # not listed: missing, or not described to this principal; asking tells which
            try:
                entry = admin.list_topics(topic=topic, timeout=timeout).topics.get(topic)
            except confluent_kafka.KafkaException as exc:
                log.warning("could not check the rights on topic %s: %s", topic, exc)
                continue
        problem = denied(entry.error, topic=topic, using=using) if entry is not None and entry.error else None
        if problem is not None:
            raise problem
    _check_group(admin, group, timeout)


def _metadata(admin: AdminClient, seen: list[Any], bootstrap: str, timeout: float) -> Any | None:
    """The cluster's metadata, asked a second at a time so that a refused login (reported to the error
    callback, which ``poll`` serves) is told at once; ``None`` when Kafka did not answer within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return admin.list_topics(timeout=1.0)
        except confluent_kafka.KafkaException as exc:
            admin.poll(0)
            for error in seen:
                problem = denied(error) or refused_handshake(error)
                if problem is not None:
                    raise problem from exc
            if time.monotonic() >= deadline:
                log.warning("Kafka at %s did not answer the startup check (%s; %s)", bootstrap, exc, seen[-1:])
                return None


def _check_group(admin: AdminClient, group: str, timeout: float) -> None:
    """Describe the group: the Describe right (which Read implies) is checked. Not by listing the group's
    offsets: librdkafka's admin client then crashes the process when a coordinator answers NOT_COORDINATOR
    (a NULL consumer group in ``rd_kafka_handle_OffsetFetch``, librdkafka issue 5040)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.describe_consumer_groups([group], request_timeout=timeout)[group].result(timeout)
            return
        except confluent_kafka.KafkaException as exc:
            error = exc.args[0] if exc.args else None
            problem = denied(error, group=group)
            if problem is not None:
                raise problem from exc
            if error is not None and error.retriable() and time.monotonic() < deadline:
                time.sleep(0.5)  # a coordinator still loading, on a broker just started
                continue
            log.warning("could not check the rights on consumer group %s: %s", group, exc)
            return
