"""Avro in and out by schema: the schemas, a strict reader compiled from them, messages decoded into columns.

``schemas`` parses the ``.avsc`` files and frames single records; ``strict`` is the schema-compiled reader;
``messages`` turns a micro-batch of Kafka messages into a batch and the rejected messages; ``columns`` encodes
whole columns.
"""

from stream_scorer.codec.messages import INVALID_REASONS, DecodeResult, EventDecoder, InvalidMessage
from stream_scorer.codec.schemas import Schemas, confluent_frame, decode, encode, load_schemas

__all__ = [
    "INVALID_REASONS",
    "DecodeResult",
    "EventDecoder",
    "InvalidMessage",
    "Schemas",
    "confluent_frame",
    "decode",
    "encode",
    "load_schemas",
]
