"""The decoder against hostile bytes: strict Avro, and a seeded mutational fuzz (no servers).

Every input either decodes to exactly one event whose record re-encodes to the same bytes, or is rejected
with one of the documented reasons; no other exception escapes. ``STREAM_SCORER_FUZZ_CASES`` runs the
fuzz for longer (CI runs the default).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from stream_scorer.codec import INVALID_REASONS, confluent_frame, encode
from stream_scorer.codec.columns import string
from stream_scorer.errors import InvalidEventError
from tests.support import FRAUD_SCHEMAS, FakeMessage, fraud_decoder, transaction
from tools.chaos.mutants import long, mutants, transaction_fields

pytestmark = pytest.mark.usefixtures("decoder_kind")  # each test with the Python and the native decoder

SCHEMAS = FRAUD_SCHEMAS
NOW = 1_700_000_000_000
CASES = int(os.environ.get("STREAM_SCORER_FUZZ_CASES", "4000"))
CHANNELS, ENTRY_MODES = 5, 6  # symbol counts in schemas/transaction.avsc


def body(**raw: bytes) -> bytes:
    """transaction(1)'s body with some fields' bytes replaced (by name)."""
    names = [f["name"] for f in SCHEMAS.events["fields"]]
    parts = transaction_fields(transaction(1))
    return b"".join(raw.get(name, part) for name, part in zip(names, parts, strict=True))


def test_the_hand_built_body_is_the_canonical_encoding() -> None:
    assert body() == encode(SCHEMAS.events, transaction(1))


@pytest.mark.parametrize(
    ("case", "value"),
    [
        ("enum index -1", body(currency=long(-1))),
        ("enum index -len(symbols)", body(channel=long(-CHANNELS))),
        ("enum index past the end", body(entry_mode=long(ENTRY_MODES))),
        ("union index -1", body(ip_address=long(-1) + string("10.0.0.1"))),
        ("union index -2", body(ip_address=long(-2))),
        ("union index past the end", body(ip_address=long(2))),
        ("boolean byte 2", body(card_present=b"\x02")),
        ("boolean byte 255", body(card_present=b"\xff")),
        ("negative string length", body(ip_address=b"\x02" + long(-3) + b"abc")),
        ("overlong varint", body(event_time=long(NOW)[:-1] + bytes([long(NOW)[-1] | 0x80]) + b"\x00")),
        ("long wrapped past 64 bits", body(event_time=b"\xff" * 12 + b"\x01")),
        ("int past 32 bits", body(merchant_category_code=long(2**40))),
        ("invalid UTF-8", body(country=long(2) + b"\xc3\x28")),
    ],
)
def test_lenient_encodings_are_malformed_avro(case: str, value: bytes) -> None:
    decoder = fraud_decoder(input_format="avro")
    with pytest.raises(InvalidEventError) as caught:
        decoder.decode_one(value)
    assert caught.value.reason == "malformed_avro", case
    assert caught.value.detail.startswith(("MalformedAvro: ", "truncated", "UnicodeDecodeError: ")), caught.value.detail
    framed = fraud_decoder(input_format="confluent").decode([FakeMessage(confluent_frame(1, value))], NOW)
    assert [i.error.reason for i in framed.invalid] == ["malformed_avro"] and framed.invalid[0].error.schema_id == 1


@pytest.mark.parametrize("input_format", ["avro", "confluent"])
def test_fuzz_every_input_decodes_to_itself_or_is_rejected_with_a_documented_reason(input_format: str) -> None:
    rng = np.random.default_rng(20261201)
    good = [encode(SCHEMAS.events, transaction(i)) for i in range(20)]
    decoder = fraud_decoder(input_format=input_format, max_message_bytes=65536)
    outcomes = {"valid": 0, **dict.fromkeys(INVALID_REASONS, 0)}
    for value in mutants(rng, good, transaction_fields(transaction(2)), CASES):
        framed = value if value is None or input_format == "avro" else confluent_frame(1, value)
        result = decoder.decode([FakeMessage(framed, offset_value=0)], NOW)  # the batch API, validation included
        assert len(result.batch) + len(result.invalid) == 1  # exactly one outcome per message
        if len(result.batch):
            record = decoder.decode_one(framed)
            assert encode(SCHEMAS.events, record) == value  # accepted means canonical
            outcomes["valid"] += 1
        else:
            reason = result.invalid[0].error.reason
            assert reason in INVALID_REASONS, reason
            outcomes[reason] += 1
    assert outcomes["valid"] > 0 and outcomes["malformed_avro"] > 0 and outcomes["oversized"] > 0
