"""Nothing schema-specific is left in the package: no field, enum symbol, entity or feature-group name of an
example appears in ``stream_scorer/`` (code, comments or docstrings), outside the examples' own folders.

Names that belong to stream-scorer's own records (``schemas/``: ``event_id``, ``event_time``, ``label`` ...)
are the product's contract, not an example's, and are allowed.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def schema_names(schema: Any) -> Iterator[str]:
    """Every record field name and enum symbol of a schema (nested records, unions, arrays, maps)."""
    if isinstance(schema, list):
        for branch in schema:
            yield from schema_names(branch)
    elif isinstance(schema, dict):
        if schema.get("type") == "enum":
            yield from schema["symbols"]
        for field in schema.get("fields", []):
            yield field["name"]
            yield from schema_names(field["type"])
        for key in ("items", "values"):
            if key in schema:
                yield from schema_names(schema[key])
        if isinstance(schema.get("type"), dict | list):
            yield from schema_names(schema["type"])


def example_names() -> dict[str, set[str]]:
    """Per example: the names its schemas, entities and feature groups declare, less our own records' names."""
    ours = {n for path in (REPO / "schemas").glob("*.avsc") for n in schema_names(json.loads(path.read_text()))}
    out = {}
    for folder in sorted(p for p in (REPO / "examples").iterdir() if (p / "settings.toml").exists()):
        names = {n for path in folder.glob("*.avsc") for n in schema_names(json.loads(path.read_text()))}
        settings = tomllib.loads((folder / "settings.toml").read_text())
        names |= {e["name"] for e in settings["events"]["entities"]}
        for group in settings.get("feature_groups", []):
            names |= {group["name"], *group["features"]}
        out[folder.name] = names - ours
    return out


def occurrences(names: set[str], text: str) -> list[str]:
    """The names that occur in ``text`` as whole words.

    >>> occurrences({"card_id", "amount"}, "x = batch.card_id  # amounts")
    ['card_id']
    """
    return sorted(n for n in names if re.search(rf"(?<!\w){re.escape(n)}(?!\w)", text))


def test_the_examples_declare_what_this_test_looks_for() -> None:
    names = example_names()
    assert set(names) >= {"fraud", "ads"}
    assert {"card_id", "merchant_category_code", "ECOM", "card_velocity", "txn_count_1h"} <= names["fraud"]
    assert {"visitor_id", "creative_id", "shown_at", "VIDEO", "clicked", "creative_stats"} <= names["ads"]
    assert "event_id" not in names["fraud"]  # our prediction's own field


def test_no_example_name_appears_in_the_package() -> None:
    names = set().union(*example_names().values())
    found = {}
    for path in sorted((REPO / "stream_scorer").rglob("*.py")):
        if hits := occurrences(names, path.read_text()):
            found[str(path.relative_to(REPO))] = hits
    assert not found, f"schema-specific names in the package (move them to configuration or an example): {found}"
