"""Input scenarios: every class of malformed input, and seeded mutants of every kind, mixed into valid events."""

from __future__ import annotations

import json
import time
from typing import Any

import fastavro
import numpy as np

from examples.fraud.world import sample_events
from stream_scorer.codec import INVALID_REASONS, confluent_frame, encode
from tools.chaos.context import SECRET, Context, Row, finish
from tools.chaos.harness import (
    Generator,
    Run,
    Supervisor,
    read_topic,
)
from tools.chaos.mutants import mutants, transaction_fields
from tools.synth.examples import EXAMPLES

# One malformed message of every dead-letter class the fraud example's rules can produce (it declares no
# maximum, max_length, required field or maximum age).
MALFORMED_CLASSES = tuple(
    r for r in INVALID_REASONS if r not in ("above_maximum", "too_long", "missing_field", "event_time_too_old")
)


def malformed(ctx: Context, valid: int, per_class: int, rate: float = 0.0) -> Row:
    """Mix ``per_class`` malformed messages of every class into ``valid`` good ones (Confluent framing)."""
    fraud = EXAMPLES / "fraud"
    incompatible = json.loads((fraud / "transaction.avsc").read_text())
    for f in incompatible["fields"]:
        if f["name"] == "amount":
            f["type"] = "string"
    (ctx.workdir / "incompatible.avsc").write_text(json.dumps(incompatible))
    (ctx.workdir / "transaction.avsc").write_text((fraud / "transaction.avsc").read_text())
    config = ctx.workdir / "malformed.toml"
    one_writer = 'schema_ids = { "1" = "transaction.avsc" }'
    two_writers = 'schema_ids = { "1" = "transaction.avsc", "2" = "incompatible.avsc" }\ninput_format = "confluent"'
    # The fraud settings, with a second (incompatible) writer schema in Confluent framing.
    config.write_text((fraud / "settings.toml").read_text().replace(one_writer, two_writers))
    items = ctx.events(valid, seed=5, schema_id=1)
    bad = _malformed_items(ctx, per_class, fastavro.parse_schema(incompatible))
    rng = np.random.default_rng(6)
    mixed = [items[i] if i < len(items) else bad[i - len(items)] for i in rng.permutation(len(items) + len(bad))]
    run = Run.create(ctx.bootstrap, ctx.workdir, "malformed")
    sup = Supervisor(run, ctx.env(), config=config)
    gen = Generator(run, mixed, rate)
    verdict = finish(ctx, run, sup, gen, 180)
    run.delete()
    valid_ids = {event_id for _, _, event_id in items}
    verdict.expected, verdict.unique = len(valid_ids), len(valid_ids & {p["event_id"] for p in verdict.predictions})
    verdict.missing = verdict.expected - verdict.unique
    leaks = sup.log.read_text(errors="replace").count(SECRET) + sum(
        value.count(SECRET.encode()) for header in verdict.dead_letter_headers for _, value in header
    )
    exact = all(verdict.dead_letters.get(c, 0) == per_class for c in MALFORMED_CLASSES)
    return Row(
        f"{per_class * len(MALFORMED_CLASSES)} malformed in {valid}",
        "at_least_once",
        verdict,
        sup.crashes,
        notes=f"DLQ counts exact: {exact}; sensitive values leaked: {leaks}",
    )


def fuzz(ctx: Context, valid: int, n_mutants: int, rate: float = 0.0, seed: int = 11) -> Row:
    """Valid events shuffled with seeded mutants of every kind, from 0 bytes to the broker's maximum message
    size. Every message is keyed by its own position, so the verdict can check that each yields exactly one
    prediction or one dead letter (predictions and dead letters keep the input key)."""
    rng = np.random.default_rng(seed)
    records, _ = sample_events(
        ctx.world, valid, start_ms=int(time.time() * 1000), rng=rng, spacing_ms=0.01, id_prefix=f"fuzz{seed}"
    )
    marked = [{**r, "card_id": f"{SECRET}{i}", "ip_address": None} for i, r in enumerate(records[:50])]
    bodies = [encode(ctx.schemas.events, r) for r in records]
    hostile = list(
        mutants(rng, [encode(ctx.schemas.events, r) for r in marked], transaction_fields(marked[0]), n_mutants)
    )
    values: list[bytes | None] = [*bodies, *hostile]
    order = rng.permutation(len(values))
    items = [(f"m{i}".encode(), values[j], f"m{i}") for i, j in enumerate(order)]
    run = Run.create(ctx.bootstrap, ctx.workdir, "fuzz")
    sup = Supervisor(run, ctx.env())
    gen = Generator(run, items, rate)
    verdict = finish(ctx, run, sup, gen, 300)
    outcomes = _outcomes(run, {key for key, _, _ in items})
    run.delete()
    leaks = sup.log.read_text(errors="replace").count(SECRET) + sum(
        value.count(SECRET.encode()) for header in verdict.dead_letter_headers for _, value in header
    )
    verdict.expected, verdict.unique = len(items), outcomes["one"]
    verdict.missing, verdict.duplicates = outcomes["none"], outcomes["two or more"]
    return Row(
        f"fuzz: {n_mutants} mutants in {valid}",
        "at_least_once",
        verdict,
        sup.crashes,
        notes=f"{outcomes['predicted']} predicted, {outcomes['dead-lettered']} dead-lettered, "
        f"worker exits {[c for c in sup.exit_codes[:-1]] or 'none'}; sensitive values leaked: {leaks}",
    )


def _outcomes(run: Run, keys: set[bytes]) -> dict[str, int]:
    """Per input key, how many outputs (predictions and dead letters) carry it."""
    count: dict[bytes, int] = dict.fromkeys(keys, 0)
    predicted = dead = 0
    for message in read_topic(run.bootstrap, run.output):
        count[message.key()] = count.get(message.key(), 0) + 1
        predicted += 1
    for message in read_topic(run.bootstrap, run.dead_letters):
        count[message.key()] = count.get(message.key(), 0) + 1
        dead += 1
    values = list(count.values())
    return {
        "one": values.count(1),
        "none": values.count(0),
        "two or more": sum(1 for v in values if v > 1),
        "predicted": predicted,
        "dead-lettered": dead,
    }


def _malformed_items(ctx: Context, per_class: int, incompatible: Any) -> list[tuple[bytes, bytes, str]]:
    schema = ctx.schemas.events
    records, _ = sample_events(
        ctx.world,
        per_class * len(MALFORMED_CLASSES),
        start_ms=int(time.time() * 1000),
        rng=np.random.default_rng(7),
        spacing_ms=0.0,
        id_prefix="bad",
    )
    out = []
    for i, record in enumerate(records):
        kind = MALFORMED_CLASSES[i % len(MALFORMED_CLASSES)]
        record = {**record, "card_id": f"{SECRET}{i}", "ip_address": f"{SECRET}ip{i}"}
        body = encode(schema, record)
        value = {
            "empty_value": b"",
            "oversized": confluent_frame(1, encode(schema, {**record, "ip_address": SECRET + "x" * 70_000})),
            "bad_magic_byte": b"\x05" + confluent_frame(1, body)[1:],
            "unknown_schema_id": confluent_frame(404, body),
            "incompatible_schema": confluent_frame(2, encode(incompatible, {**record, "amount": "12.5"})),
            "malformed_avro": confluent_frame(1, body[: len(body) // 3]),
            "trailing_bytes": confluent_frame(1, body + b"\x00\x01"),
            "missing_entity_id": confluent_frame(1, encode(schema, {**record, "merchant_id": ""})),
            "missing_event_id": confluent_frame(1, encode(schema, {**record, "event_id": ""})),
            "not_finite": confluent_frame(1, encode(schema, {**record, "amount": float("nan")})),
            "below_minimum": confluent_frame(1, encode(schema, {**record, "amount": -0.01})),
            "event_time_in_future": confluent_frame(
                1, encode(schema, {**record, "event_time": record["event_time"] + 86_400_000})
            ),
        }[kind]
        out.append((record["card_id"].encode(), value, f"bad-{kind}-{i}"))
    return out
