"""The exception tree of stream-scorer. Every error we raise is one of these.

::

    StreamScorerError
     ├── ConfigError             fatal at startup: a setting is missing, unknown or out of range
     ├── SchemaError             fatal at startup: an .avsc file is missing or does not parse
     ├── ModelArtifactError      fatal at startup: artifact missing, checksum mismatch, features unknown
     ├── TrainingError           the dataset cannot produce a model (empty, one class, bad column)
     ├── InvalidEventError       poison input: one message cannot be decoded or validated.
     │                           Policy: sent to the dead-letter topic with its reason, counted, and the
     │                           worker moves on.
     ├── InvalidInputRateError   fatal: too many invalid messages in a row or in a window (a schema
     │                           change upstream?). Policy: stop without committing the batch.
     ├── FeatureStoreError       transient: the feature store (Redis) unreachable or too slow. Policy:
     │                           retried once, then the batch is scored with imputed features (status
     │                           UNAVAILABLE) and a circuit breaker stops calling Redis for a while.
     ├── PendingWriteError       the worker could not write its pending predictions for the label join.
     │                           Policy: counted; predictions keep flowing (those labels count as unknown).
     ├── LabelStoreError         the label flow's Redis calls failed (join, held labels). Policy: the
     │                           batch is rewound, nothing is committed, and it is read again after a pause.
     ├── SchemaRegistryError     transient: the schema registry did not answer for a writer schema id not
     │                           seen before. Policy: the batch is rewound (nothing committed past it, no dead
     │                           letter) and read again after a backoff (1 s doubling to 30 s), not ready meanwhile.
     └── KafkaError              a Kafka client call failed (consume, produce, commit, admin): fatal
          ├── DeliveryError      transient: a produced record (prediction or dead letter) was not
          │                      acknowledged: topic missing, access denied, broker refusing or away.
          │                      Policy: the batch is not committed; it is rewound and retried after a
          │                      backoff (1 s doubling to 30 s), the worker is not ready meanwhile, and
          │                      each failure is counted and logged. The worker never skips it.
          ├── BatchAborted       exactly-once: the batch's transaction was aborted; the consumer was
          │                      rewound to the committed offsets and the worker goes on (with the same
          │                      backoff when it happens again in a row)
          └── TransactionStuckError  exactly-once: librdkafka did not return from a transactional call past
                                 its timeout. Policy: the process exits at once (code 5); a restarted
                                 worker fences it and aborts its transaction.

Third-party exceptions are translated where they cross into our code, with ``raise ... from exc``.
"""

from __future__ import annotations


class StreamScorerError(Exception):
    """Base class of every error raised by stream-scorer."""


class ConfigError(StreamScorerError):
    """A setting is missing, unknown or invalid. The message says how to fix it."""


class SchemaError(StreamScorerError):
    """An Avro schema file is missing or does not parse."""


class ModelArtifactError(StreamScorerError):
    """A model artifact cannot be loaded or does not fit the configured features."""


class TrainingError(StreamScorerError):
    """The training data cannot produce a model."""


class InvalidEventError(StreamScorerError):
    """One input message cannot be decoded or fails validation.

    ``reason`` is a short code from a fixed set (it is used as a metric label); the message
    names the topic, partition and offset but never the payload.
    """

    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        topic: str = "",
        partition: int = -1,
        offset: int = -1,
        schema_id: int | None = None,
    ):
        self.reason = reason
        self.detail = detail
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.schema_id = schema_id
        super().__init__(f"{topic}[{partition}]@{offset}: {reason}: {detail}")


class InvalidInputRateError(StreamScorerError):
    """Too many invalid input messages: the worker stops rather than dead-letter a whole topic."""


class FeatureStoreError(StreamScorerError):
    """The feature store could not answer (connection refused, timeout, protocol error)."""


class PendingWriteError(StreamScorerError):
    """The pending predictions of a batch were not written for the label join."""


class LabelStoreError(StreamScorerError):
    """The label join's store (Redis) could not answer."""


class SchemaRegistryError(StreamScorerError):
    """The schema registry could not be reached (or answered with an error) for a writer schema id."""


class AccessDeniedError(StreamScorerError):
    """This component's principal lacks a right (a Kafka ACL, a Redis ACL rule), or could not authenticate; the
    message names it. Restarting cannot help: the process exits with code 4, and a supervisor stops."""


class KafkaError(StreamScorerError):
    """A Kafka client call failed."""


class DeliveryError(KafkaError):
    """At least one produced record was not acknowledged by the broker; ``topics`` are those that failed."""

    def __init__(self, message: str, *, topics: frozenset[str] = frozenset(), fatal: bool = False) -> None:
        super().__init__(message)
        self.topics = topics
        self.fatal = fatal  # the producer itself is unusable (librdkafka's fatal error): retrying cannot help


class TransactionStuckError(KafkaError):
    """Exactly-once: a transactional call of librdkafka did not return past its timeout. The process exits at
    once without cleaning up (the stuck client would hang it); a restarted worker fences it."""


class BatchAborted(KafkaError):
    """Exactly-once: the batch's transaction was aborted and the consumer rewound; nothing was committed."""
