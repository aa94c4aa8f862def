"""The ``stream-scorer`` command: run, labels, train, score, model, features, events, watch, status, topics."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from stream_scorer.cli.events import add_events_command
from stream_scorer.cli.features import add_features_commands
from stream_scorer.cli.model import add_model_commands
from stream_scorer.cli.run import add_run_commands
from stream_scorer.cli.train import add_batch_commands
from stream_scorer.cli.watch import add_watch_command
from stream_scorer.config import load_settings
from stream_scorer.errors import AccessDeniedError, InvalidInputRateError, StreamScorerError
from stream_scorer.worker.supervisor import ACCESS_DENIED_EXIT, INVALID_INPUT_EXIT


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    return dispatch(build_parser(), argv, "stream-scorer")


def dispatch(parser: argparse.ArgumentParser, argv: Sequence[str] | None, prog: str) -> int:
    """Parse ``argv``, read the settings (``--config`` and the environment) and run the chosen command.

    Our errors become one line on stderr and an exit code, never a traceback: 3 when too much input was
    invalid (a supervisor must not restart into the same input), 4 when a right is missing (nor into the same
    ACLs), 1 for the others; ``run`` exits 5 when its exactly-once watchdog fires (restart it).
    """
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        settings = load_settings(args.config)
        logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        code: int = args.handler(args, settings)
        return code
    except InvalidInputRateError as exc:
        print(f"{prog}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return INVALID_INPUT_EXIT
    except AccessDeniedError as exc:
        print(f"{prog}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return ACCESS_DENIED_EXIT
    except StreamScorerError as exc:
        print(f"{prog}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``stream-scorer``: one subcommand per command, each with ``--help``."""
    parser = argparse.ArgumentParser(prog="stream-scorer", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        default=None,
        help="settings TOML file; STREAM_SCORER_* environment variables override it",
    )
    commands = parser.add_subparsers(title="commands")
    add_run_commands(commands, common)
    add_batch_commands(commands, common)
    add_model_commands(commands, common)
    add_features_commands(commands, common)
    add_events_command(commands, common)
    add_watch_command(commands, common)
    return parser
