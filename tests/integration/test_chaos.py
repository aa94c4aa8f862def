"""A reduced chaos scenario 5 in CI: every class of malformed input, mixed into valid events, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream_scorer.chaos import scenarios
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


def test_every_malformed_class_is_dead_lettered_exactly_and_nothing_leaks(stack: Stack, tmp_path: Path) -> None:
    ctx = scenarios.Context.prepare(stack.bootstrap, stack.redis_url, tmp_path)
    row = scenarios.malformed(ctx, valid=3000, per_class=30)
    verdict = row.verdict
    assert (verdict.expected, verdict.unique, verdict.missing) == (3000, 3000, 0)
    assert verdict.dead_letters == dict.fromkeys(scenarios.MALFORMED_CLASSES, 30)
    assert verdict.order_violations == 0 and row.crashes == 0
    assert "sensitive values leaked: 0" in row.notes
    print(scenarios.table([row]))
