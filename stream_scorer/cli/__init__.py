"""The ``stream-scorer`` command."""

from stream_scorer.cli.main import main

__all__ = ["main"]
