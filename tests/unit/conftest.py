"""Fixtures of the unit tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from stream_scorer.codec.native import native_available
from tests import support


def native_or_skip() -> None:
    """Skip a native-decoder test where the extension is not built, unless CI requires it."""
    if not native_available():
        if os.environ.get("REQUIRE_NATIVE_CODEC") == "1":
            pytest.fail("REQUIRE_NATIVE_CODEC=1 but stream_scorer_native is not installed")
        pytest.skip("the stream_scorer_native extension is not built (scripts/install builds it with cargo)")


@pytest.fixture(params=["python", "native"])
def decoder_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test with ``fraud_decoder`` building each decoder in turn."""
    if request.param == "native":
        native_or_skip()
    support.DECODER["native"] = request.param == "native"
    try:
        yield str(request.param)
    finally:
        support.DECODER["native"] = False
