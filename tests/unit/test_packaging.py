"""What cannot run here but must stay right: docker-compose.yml, the console script and every --help."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from stream_scorer.cli import main
from tools.chaos.__main__ import main as chaos_main
from tools.synth.__main__ import main as synth_main

REPO = Path(__file__).resolve().parents[2]


def test_compose_runs_kafka_redis_and_the_worker_with_healthchecks() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"kafka", "redis", "registry", "worker", "labels", "prometheus", "grafana"} <= set(services)
    assert services["registry"]["image"].startswith("apicurio/apicurio-registry:3.")
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["redis"]["image"].startswith("redis:")
    for name in services:
        assert "test" in services[name]["healthcheck"], name
    kafka_env = services["kafka"]["environment"]
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka_env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert "19092:19092" in services["kafka"]["ports"] and "16379:6379" in services["redis"]["ports"]
    worker = services["worker"]
    assert worker["depends_on"] == {
        "kafka": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
        "registry": {"condition": "service_healthy"},
    }
    assert worker["environment"]["STREAM_SCORER_KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert "9464:9464" in worker["ports"]
    assert (REPO / worker["command"][1]).exists()


@pytest.mark.parametrize(
    "command",
    [
        ["run"],
        ["train"],
        ["features", "put"],
        ["watch"],
        ["topics"],
        ["model", "keygen"],
        ["model", "sign"],
    ],
)
def test_every_subcommand_explains_itself(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    assert "usage: stream-scorer " + " ".join(command) in capsys.readouterr().out


@pytest.mark.parametrize(
    ("tool", "command", "usage"),
    [
        (synth_main, ["history"], "usage: python -m tools.synth history"),
        (synth_main, ["features"], "usage: python -m tools.synth features"),
        (synth_main, ["publish"], "usage: python -m tools.synth publish"),
        (chaos_main, [], "usage: python -m tools.chaos [-h]"),
    ],
)
def test_every_tool_command_explains_itself(
    tool: Callable[[list[str]], int], command: list[str], usage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        tool([*command, "--help"])
    assert exited.value.code == 0
    assert usage in capsys.readouterr().out


def test_console_script_is_installed() -> None:
    result = subprocess.run(
        [Path(sys.executable).parent / "stream-scorer", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "run" in result.stdout and "train" in result.stdout


def test_a_bad_setting_is_reported_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAM_SCORER_BATCH__MAX_EVENTS", "lots")
    assert main(["topics"]) == 1
    assert "ConfigError: batch.max_events must be a number" in capsys.readouterr().err
