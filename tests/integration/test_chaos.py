"""A reduced chaos scenario 5 in CI: every class of malformed input, mixed into valid events, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import Stack
from tools.chaos import context, inputs

pytestmark = pytest.mark.integration


def test_every_malformed_class_is_dead_lettered_exactly_and_nothing_leaks(stack: Stack, tmp_path: Path) -> None:
    ctx = context.Context.prepare(stack.bootstrap, stack.redis_url, tmp_path)
    row = inputs.malformed(ctx, valid=3000, per_class=30)
    verdict = row.verdict
    assert (verdict.expected, verdict.unique, verdict.missing) == (3000, 3000, 0)
    assert verdict.dead_letters == dict.fromkeys(inputs.MALFORMED_CLASSES, 30)
    assert verdict.order_violations == 0 and row.crashes == 0
    assert "sensitive values leaked: 0" in row.notes
    print(context.table([row]))


def test_fuzz_every_message_of_any_bytes_or_size_yields_one_prediction_or_one_dead_letter(
    stack: Stack, tmp_path: Path
) -> None:
    ctx = context.Context.prepare(stack.bootstrap, stack.redis_url, tmp_path)
    row = inputs.fuzz(ctx, valid=2000, n_mutants=1200)
    verdict = row.verdict
    assert verdict.expected == 3200 and verdict.unique == 3200  # every key has exactly one outcome
    assert verdict.missing == 0 and verdict.duplicates == 0
    assert row.crashes == 0 and "worker exits none" in row.notes
    assert "sensitive values leaked: 0" in row.notes
    assert set(verdict.dead_letters) <= set(inputs.MALFORMED_CLASSES)
    assert verdict.dead_letters.get("oversized", 0) >= 20 and verdict.dead_letters.get("malformed_avro", 0) > 0
    print(context.table([row]))
