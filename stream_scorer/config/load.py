"""Read the settings from a TOML file and ``STREAM_SCORER_*`` environment variables.

This module is the only reader of settings files and environment variables. Environment variables
override the file; nested keys use a double underscore, for example
``STREAM_SCORER_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092`` or ``STREAM_SCORER_MODEL_PATH=models/churn``.
Tables in lists (``[[feature_groups]]``, ``[[events.entities]]``, ``[[events.rules]]``) are declared in the
file only. Schema paths (``events.schema``, ``labels.schema``, ``kafka.schema_ids``) are read relative to the
file's folder.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from stream_scorer.config.settings import Settings
from stream_scorer.errors import ConfigError

ENV_PREFIX = "STREAM_SCORER_"


CONFIG_VARIABLE = "STREAM_SCORER_CONFIG"  # the settings file, when no path is given


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``path`` (TOML, optional; else the file named by ``STREAM_SCORER_CONFIG``, if set)
    and then ``environ`` (defaults to ``os.environ``)."""
    environ = os.environ if environ is None else environ
    if path is None and environ.get(CONFIG_VARIABLE):
        path = Path(environ[CONFIG_VARIABLE])
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"settings file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"settings file {path} is not valid TOML: {exc}") from exc
    _apply_env(raw, environ)
    if path is not None:
        _relative_to(Path(path).parent, raw)
    settings: Settings = _build(Settings, raw, "")
    return settings


def _relative_to(folder: Path, raw: dict[str, Any]) -> None:
    """Schema paths in a settings file name files next to it, wherever the command runs."""
    for section in ("events", "labels"):
        table = raw.get(section)
        if isinstance(table, dict) and isinstance(table.get("schema"), str) and table["schema"]:
            table["schema"] = str(folder / table["schema"])
    kafka = raw.get("kafka")
    if isinstance(kafka, dict) and isinstance(kafka.get("schema_ids"), dict):
        kafka["schema_ids"] = {k: str(folder / v) if isinstance(v, str) else v for k, v in kafka["schema_ids"].items()}


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_VARIABLE:
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        target = raw
        for part in path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"{name}: {part} is not a section")
        target[path[-1]] = value


def _build(cls: type[Any], raw: Mapping[str, Any], where: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"[{where}] must be a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown setting(s) {sorted(where + k for k in unknown)}; known: {sorted(known)}")
    kwargs = {key: _convert(hints[key], value, f"{where}{key}") for key, value in raw.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"[{where.rstrip('.') or 'settings'}]: {exc}") from exc


def _convert(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if value in ("", None) else _convert(inner[0], value, key)
    if dataclasses.is_dataclass(hint):
        return _build(typing.cast(type[Any], hint), value, key + ".")
    if origin is tuple and dataclasses.is_dataclass(item_type := typing.get_args(hint)[0]):
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list of tables ([[{key}]])")
        return tuple(_build(typing.cast(type[Any], item_type), item, key + ".") for item in value)
    if origin is tuple and typing.get_args(hint) == (str, ...):
        if isinstance(value, str):  # from an environment variable: comma-separated
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be a list of strings")
        return tuple(str(v) for v in value)
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{key} must be one of {typing.get_args(hint)}, not {value!r}")
        return value
    if origin in (Mapping, dict):
        if isinstance(value, str):
            raise ConfigError(f"{key} is a table and cannot be set from one environment variable")
        return types.MappingProxyType({str(k): str(v) for k, v in dict(value).items()})
    if hint is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key} must be true or false, not {value!r}")
    if hint in (int, float):
        try:
            return hint(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{key} must be a number, not {value!r}") from exc
    if hint is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a path (a string), not {value!r}")
        return Path(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, not {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported setting type {hint!r}")  # pragma: no cover
