"""The examples under ``examples/``, by name: world, settings, contract, history and a trained model."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from stream_scorer import wiring
from stream_scorer.config import Settings, load_settings
from stream_scorer.events.contract import EventContract
from stream_scorer.model.artifact import LogisticModel
from stream_scorer.training import train
from stream_scorer.training.dataset import read_table, with_event_fields
from stream_scorer.training.specfile import load_spec
from tools.synth.io import REPO, Example, write_history

EXAMPLES = REPO / "examples"


def example(name: str) -> Example:
    """The world module of ``examples/<name>``."""
    return cast(Example, importlib.import_module(f"examples.{name}.world"))


def example_settings(name: str, environ: Mapping[str, str] | None = None) -> Settings:
    """The settings of ``examples/<name>/settings.toml`` (with only ``environ``'s variables, by default none)."""
    return load_settings(EXAMPLES / name / "settings.toml", environ=environ or {})


def example_contract(name: str) -> EventContract:
    """The example's event contract, checked against its schema."""
    settings = example_settings(name)
    return wiring.event_contract(settings, wiring.schemas(settings))


def example_history(name: str, world: Any, path: Path, rows: int, seed: int = 11, end_ms: int | None = None) -> float:
    """A labelled training CSV of the example's world; returns the positive rate."""
    settings = example_settings(name)
    contract = wiring.event_contract(settings, wiring.schemas(settings))
    return write_history(example(name), world, contract, settings.feature_groups, path, rows, seed=seed, end_ms=end_ms)


def train_example(name: str, history: Path, *, model: str = "", version: str = "1", **options: Any) -> LogisticModel:
    """A model trained on the example's history CSV with its feature spec (``examples/<name>/features.toml``)."""
    table = with_event_fields(read_table(history), example_contract(name).fields)
    spec = load_spec(EXAMPLES / name / "features.toml")
    options = {"time_column": spec.time_column or "event_time", **options}
    return train.train(table, name=model or name, version=version, spec=spec, options=train.TrainOptions(**options))
