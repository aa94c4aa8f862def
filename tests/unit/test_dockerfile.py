"""The image (Dockerfile, .dockerignore), which no Docker engine here builds: read against what the package and
the Helm chart (deploy/helm/stream-scorer) expect of it."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from stream_scorer.config import load_settings

REPO = Path(__file__).resolve().parents[2]


def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


def instruction(name: str) -> list[str]:
    """The arguments of every ``name`` instruction (continued lines joined)."""
    text = dockerfile().replace("\\\n", " ")
    return [" ".join(line.split()) for line in re.findall(rf"^{name} (.+)$", text, re.M)]


def test_a_build_stage_makes_the_wheels_and_a_slim_stage_installs_only_them() -> None:
    assert instruction("ARG") == ["PYTHON=python:3.11-slim"]
    assert instruction("FROM") == ["${PYTHON} AS build", "${PYTHON} AS runtime"]
    build, runtime = dockerfile().split("FROM ${PYTHON} AS runtime")
    assert "RUN pip wheel --wheel-dir /dist ." in build
    assert "maturin build --release --locked --manifest-path native/Cargo.toml --out /dist" in build  # the decoder
    assert "pip install --no-index --find-links /dist stream-scorer stream-scorer-native" in runtime  # no compiler
    assert "COPY stream_scorer/" not in runtime


def test_the_settings_the_image_sets_are_settings_and_its_schemas_are_where_they_say() -> None:
    pairs = [pair.split("=", 1) for env in instruction("ENV") for pair in env.split()]
    ours = {name: value for name, value in pairs if name.startswith("STREAM_SCORER_")}
    settings = load_settings(None, ours)  # an unknown setting would fail here
    assert settings.metrics.host == "0.0.0.0"  # reachable from outside the container
    assert f"schemas/ {settings.schemas_dir}/" in instruction("COPY")
    for name in ("prediction.avsc", "label.avsc", "score.avsc"):  # what the package reads from schemas_dir
        assert (REPO / "schemas" / name).is_file(), name


def test_it_runs_the_worker_as_the_charts_user_on_the_charts_ports() -> None:
    values = yaml.safe_load((REPO / "deploy" / "helm" / "stream-scorer" / "values.yaml").read_text())
    assert instruction("ENTRYPOINT") == ['["stream-scorer"]'] and instruction("CMD") == ['["run"]']
    user = values["podSecurityContext"]
    assert instruction("USER") == [f"{user['runAsUser']}:{user['runAsGroup']}"] and user["runAsUser"] > 0
    assert instruction("EXPOSE") == [f"{values['metrics']['port']} {values['labels']['metricsPort']}"]


def test_the_build_context_holds_the_package_and_nothing_local() -> None:
    ignored = {line for line in (REPO / ".dockerignore").read_text().splitlines() if not line.startswith("#")}
    assert {".git", ".venv", ".cache", ".stack", "tests", "benchmarks", "models", "**/__pycache__"} <= ignored
    assert not {"stream_scorer", "native", "schemas", "pyproject.toml", "README.md"} & ignored  # what the build copies
    assert "native/target" in ignored
