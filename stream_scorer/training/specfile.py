"""Read a feature spec file (TOML) into a :class:`~stream_scorer.training.featurespec.FeatureSpec`.

The file's sections and keys are described in :mod:`stream_scorer.training.featurespec`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stream_scorer.errors import ModelArtifactError, TrainingError
from stream_scorer.model.derive import Derivation, category_text
from stream_scorer.training.featurespec import FeatureSpec, HashedFeature, NumericFeature, OneHotFeature

_SCALED = ("name", "impute", "standardize")
_NUMERIC_SECTIONS = ("numeric", "cyclic", "member", "compare", "missing")
_KEYS: dict[str, tuple[str, ...]] = {
    "": ("label", "time_column", *_NUMERIC_SECTIONS, "onehot", "hashed"),
    "numeric": ("column", "clip_min", "clip_max", "log1p", *_SCALED),
    "cyclic": ("column", "period", *_SCALED),
    "member": ("column", "values", *_SCALED),
    "compare": ("left", "right", "op", *_SCALED),
    "missing": ("column", *_SCALED),
    "onehot": ("column", "categories", "max_categories"),
    "hashed": ("column", "buckets"),
}


def load_spec(path: Path) -> FeatureSpec:
    """Read a TOML spec file; raise :class:`TrainingError` naming the unknown key or bad value."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TrainingError(f"feature spec {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainingError(f"feature spec {path} cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise TrainingError(f"feature spec {path} is not valid TOML: {exc}") from exc
    try:
        return _spec_from_doc(doc)
    except TrainingError as exc:
        raise TrainingError(f"feature spec {path}: {exc}") from exc


def _spec_from_doc(doc: dict[str, Any]) -> FeatureSpec:
    _known_keys(doc, "")
    sections: dict[str, list[dict[str, Any]]] = {}
    for section in (*_NUMERIC_SECTIONS, "onehot", "hashed"):
        tables = doc.get(section, [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise TrainingError(f"{section} must be an array of tables: write [[{section}]]")
        for i, table in enumerate(tables):
            _known_keys(table, section)
            for key in ("left", "right", "name") if section == "compare" else ("column",):
                if not isinstance(table.get(key), str) or not table[key]:
                    raise TrainingError(f"[[{section}]] number {i + 1} needs {key} (a string)")
        sections[section] = tables
    for key in ("label", "time_column"):
        if key in doc and not isinstance(doc[key], str):
            raise TrainingError(f"{key} must be a string, not {doc[key]!r}")
    for t in (t for section in _NUMERIC_SECTIONS for t in sections[section]):
        if not isinstance(t.get("standardize", True), bool):
            raise TrainingError(f"{t.get('name') or t.get('column')}: standardize must be true or false")
    for t in sections["onehot"]:
        if "categories" in t and "max_categories" in t:
            raise TrainingError(f"{t['column']}: give either categories or max_categories, not both")
        cats = t.get("categories")
        if cats is not None and (not isinstance(cats, list) or not all(isinstance(c, str) for c in cats)):
            raise TrainingError(f"{t['column']}: categories must be a list of strings")
    return FeatureSpec(
        numeric=tuple(f for section in _NUMERIC_SECTIONS for t in sections[section] for f in _numeric(section, t)),
        onehot=tuple(
            OneHotFeature(
                t["column"], None if "categories" not in t else tuple(t["categories"]), t.get("max_categories", 20)
            )
            for t in sections["onehot"]
        ),
        hashed=tuple(HashedFeature(t["column"], _buckets(t)) for t in sections["hashed"]),
        label=doc.get("label"),
        time_column=doc.get("time_column"),
    )


def _numeric(section: str, t: dict[str, Any]) -> list[NumericFeature]:
    """The numeric features one table declares (a cyclic table declares two)."""
    where = f"[[{section}]] {t.get('name') or t.get('column')}"
    if "name" in t and (not isinstance(t["name"], str) or not t["name"]):
        raise TrainingError(f"{where}: name must be a non-empty string")
    rule, standardize = t.get("impute", "mean"), t.get("standardize", True)
    try:
        if section == "numeric":
            bounds = [t.get("clip_min"), t.get("clip_max")]
            if not all(b is None or (isinstance(b, int | float) and not isinstance(b, bool)) for b in bounds):
                raise TrainingError(f"{where}: clip_min and clip_max must be numbers")
            if not isinstance(t.get("log1p", False), bool):
                raise TrainingError(f"{where}: log1p must be true or false")
            derive = None
            if t.get("log1p") or bounds != [None, None] or t.get("name", t["column"]) != t["column"]:
                low, high = (None if b is None else float(b) for b in bounds)
                derive = Derivation("log1p" if t.get("log1p") else "value", (t["column"],), low=low, high=high)
            return [NumericFeature(t.get("name", t["column"]), rule, standardize, derive)]
        if section == "cyclic":
            period, name = t.get("period"), t.get("name", f"{t['column']}.{t.get('period')}")
            return [
                NumericFeature(f"{name}_{op}", rule, standardize, Derivation(op, (t["column"],), period=str(period)))
                for op in ("sin", "cos")
            ]
        if section == "member":
            values = t.get("values")
            if not isinstance(values, list) or not all(isinstance(v, str | int | float | bool) for v in values):
                raise TrainingError(f"{where}: values must be a list of strings, numbers or booleans")
            derive = Derivation("member", (t["column"],), tuple(category_text(v) for v in values))
            return [NumericFeature(t.get("name", f"{t['column']}.member"), rule, standardize, derive)]
        if section == "compare":
            if t.get("op") not in ("equal", "differ"):
                raise TrainingError(f"{where}: op must be equal or differ, not {t.get('op')!r}")
            return [NumericFeature(t["name"], rule, standardize, Derivation(t["op"], (t["left"], t["right"])))]
        derive = Derivation("missing", (t["column"],))
        return [NumericFeature(t.get("name", f"{t['column']}.missing"), rule, standardize, derive)]
    except ModelArtifactError as exc:
        raise TrainingError(f"{where}: {exc}") from exc


def _buckets(table: dict[str, Any]) -> int:
    if "buckets" not in table:
        raise TrainingError(f"{table['column']}: a hashed column needs buckets (an integer >= 1)")
    buckets: int = table["buckets"]
    return buckets


def _known_keys(table: Mapping[str, Any], section: str) -> None:
    if unknown := sorted(set(table) - set(_KEYS[section])):
        where = f"[[{section}]] {table.get('column', '?')}" if section else "the top level"
        raise TrainingError(f"unknown keys {unknown} in {where}; allowed: {list(_KEYS[section])}")
