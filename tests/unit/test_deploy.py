"""The monitoring stack that cannot run here, checked by parsing it: deploy/prometheus (scrape config and alert
rules), deploy/grafana (provisioning and the dashboard) and their services in docker-compose.yml.

Every metric an alert or a panel reads must be one the worker or the label-join process exports: a typo in a
PromQL expression gives an empty graph or an alert that never fires, and nothing else would notice.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy" / "prometheus"
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "stream-scorer.json"

# The exported metrics, as named in README's Metrics table and the label-join / drift / lag metrics.
COUNTERS = {
    "stream_scorer_events_consumed_total",
    "stream_scorer_predictions_produced_total",
    "stream_scorer_decode_errors_total",
    "stream_scorer_dead_letters_total",
    "stream_scorer_invalid_input_stops_total",
    "stream_scorer_batches_aborted_total",
    "stream_scorer_feature_store_errors_total",
    "stream_scorer_feature_group_lookups_total",
    "stream_scorer_feature_records_malformed_total",
    "stream_scorer_feature_records_implausible_total",
    "stream_scorer_delivery_failures_total",
    "stream_scorer_predictions_imputed_total",
    "stream_scorer_commits_total",
    "stream_scorer_model_reloads_total",
    "stream_scorer_model_reload_failures_total",
    "stream_scorer_labels_consumed_total",
    "stream_scorer_labels_joined_total",
    "stream_scorer_labels_duplicate_total",
    "stream_scorer_labels_contradicting_total",
    "stream_scorer_labels_unknown_total",
    "stream_scorer_labels_early_total",
}
GAUGES = {
    "stream_scorer_feature_store_circuit_state",
    "stream_scorer_batch_retry_backoff_seconds",
    "stream_scorer_challenger_models",
    "stream_scorer_last_batch_timestamp_seconds",
    "stream_scorer_assigned_partitions",
    "stream_scorer_consumer_lag",
    "stream_scorer_feature_psi",
    "stream_scorer_prediction_psi",
    "stream_scorer_drift_window_events",
    "stream_scorer_label_coverage",
    "stream_scorer_label_coverage_predictions",
    "stream_scorer_model_training_metric",
    # live quality, one series per (model, version, window); precision_at_k adds k, reliability_* add bin
    "stream_scorer_model_precision",
    "stream_scorer_model_recall",
    "stream_scorer_model_f1",
    "stream_scorer_model_ece",
    "stream_scorer_model_brier",
    "stream_scorer_model_log_loss",
    "stream_scorer_model_auc",
    "stream_scorer_model_auc_error_bound",
    "stream_scorer_model_precision_at_k",
    "stream_scorer_model_reliability_observed",
    "stream_scorer_model_reliability_predicted",
    "stream_scorer_model_reliability_labels",
    "stream_scorer_model_positive_rate",
    "stream_scorer_model_window_positives",
    "stream_scorer_model_window_flagged",
    "stream_scorer_model_window_labels",
}
INFOS = {"stream_scorer_model_info"}
HISTOGRAMS = {
    "stream_scorer_batch_size_events",
    "stream_scorer_stage_duration_seconds",
    "stream_scorer_event_to_prediction_seconds",
    "stream_scorer_feature_age_seconds",
    "stream_scorer_label_lag_seconds",
}
METRIC = re.compile(r"stream_scorer_[a-z0-9_]+")
DURATION = re.compile(r"^[0-9]+[smhd]$")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def is_exported(name: str) -> bool:
    """Counters are read with ``_total``; histograms only through ``_bucket``, ``_sum`` or ``_count``.

    >>> is_exported("stream_scorer_label_lag_seconds_bucket"), is_exported("stream_scorer_label_lag_seconds")
    (True, False)
    >>> is_exported("stream_scorer_commits_total"), is_exported("stream_scorer_commits")
    (True, False)
    """
    if name in COUNTERS | GAUGES | INFOS:
        return True
    base, _, suffix = name.rpartition("_")
    return suffix in ("bucket", "sum", "count") and base in HISTOGRAMS


def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(PROMETHEUS / "alerts.yml")["groups"] for rule in group["rules"]]


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Top-level panels and those nested in collapsed rows."""
    return [p for top in dashboard["panels"] for p in (top, *top.get("panels", []))]


def dashboard_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [(p["title"], t["expr"]) for p in all_panels(dashboard) for t in p.get("targets", [])]
    variables = [(f"${v['name']}", v["definition"]) for v in dashboard["templating"]["list"]]
    return exprs + variables


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """``{container path: checkout path}`` of a service's bind mounts."""
    pairs = (volume.split(":") for volume in service.get("volumes", []))
    return {parts[1]: parts[0] for parts in pairs}


def test_every_alert_has_an_expression_a_duration_a_severity_and_a_summary() -> None:
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names)), "alert names must be unique"
    for rule in rules():
        assert rule["expr"].strip(), rule["alert"]
        assert DURATION.match(str(rule["for"])), rule["alert"]
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]


def test_alerts_page_and_ticket() -> None:
    assert {rule["labels"]["severity"] for rule in rules()} == {"page", "ticket"}


def test_alerts_and_panels_read_only_exported_metrics() -> None:
    sources = [(rule["alert"], rule["expr"]) for rule in rules()] + dashboard_exprs()
    unknown = [(where, name) for where, expr in sources for name in METRIC.findall(expr) if not is_exported(name)]
    assert unknown == []
    referenced = {name for _, expr in sources for name in METRIC.findall(expr)}
    assert "stream_scorer_event_to_prediction_seconds_bucket" in referenced  # the extraction sees through PromQL


def test_alerts_name_only_scraped_jobs() -> None:
    jobs = {job["job_name"] for job in load_yaml(PROMETHEUS / "prometheus.yml")["scrape_configs"]}
    named = {job for rule in rules() for job in re.findall(r'job="([^"]+)"', rule["expr"])}
    assert named and named <= jobs


def test_dashboard_panels_have_unique_ids_and_prometheus_queries() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] == 39 and dashboard["uid"] == "stream-scorer"
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"model", "window", "drift_window"}
    panels = all_panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    graphs = [p for p in panels if p["type"] != "row"]
    assert graphs and {p["type"] for p in graphs} <= {"timeseries", "stat"}
    for panel in graphs:
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"], panel["title"]
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24, panel["title"]


def test_the_dashboard_has_an_executive_an_on_call_and_a_debug_row_each_with_panels() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    rows = [i for i, p in enumerate(panels) if p["type"] == "row"]
    assert [panels[i]["title"].split(":")[0] for i in rows] == ["Executive", "On-call", "Debug"]
    for start, end in zip(rows, [*rows[1:], len(panels)], strict=True):
        assert end - start > 3, panels[start]["title"]  # several panels under each row
        top = panels[start]["gridPos"]["y"]
        assert all(p["gridPos"]["y"] > top for p in panels[start + 1 : end]), "a panel above its row"


# Grafana writes these, its dashboard model (the schema the foundation SDK is generated from) has no field for them.
GRAFANA_EXTRAS = {"builtIn", "definition"}


def test_the_dashboard_parses_into_grafanas_dashboard_model_without_losing_a_field() -> None:
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models.dashboard import Dashboard, Panel, RowPanel

    ours = json.loads(DASHBOARD.read_text())
    model = Dashboard.from_json(ours)
    assert model.panels is not None and all(isinstance(p, Panel | RowPanel) for p in model.panels)
    again = json.loads(JSONEncoder(sort_keys=True).encode(model))

    def lost(a: Any, b: Any, path: str) -> list[str]:
        if type(a) is not type(b) and not (isinstance(a, int | float) and isinstance(b, int | float)):
            return [f"{path}: a {type(a).__name__} became a {type(b).__name__}"]
        if isinstance(a, dict):
            missing = [f"{path}/{k}" for k in a if k not in b and k not in GRAFANA_EXTRAS]
            return missing + [m for k in a if k in b for m in lost(a[k], b[k], f"{path}/{k}")]
        if isinstance(a, list):
            if len(a) != len(b):
                return [f"{path}: {len(a)} items became {len(b)}"]
            return [m for i, (x, y) in enumerate(zip(a, b, strict=True)) for m in lost(x, y, f"{path}[{i}]")]
        return [] if a == b else [f"{path}: {a!r} became {b!r}"]

    assert lost(ours, again, "") == []


def test_prometheus_scrapes_the_worker_and_the_label_join_every_5s_and_loads_the_alerts() -> None:
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    assert config["global"]["scrape_interval"] == "5s"
    targets = {
        job["job_name"]: [t for static in job["static_configs"] for t in static["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets == {"stream-scorer": ["worker:9464"], "stream-scorer-labels": ["labels:9465"]}
    assert config["rule_files"] == ["alerts.yml"]


def test_grafana_provisions_the_datasource_and_the_dashboard_folder() -> None:
    (datasource,) = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert datasource["uid"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    (provider,) = load_yaml(GRAFANA / "provisioning" / "dashboards" / "dashboards.yml")["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_compose_runs_the_label_join_prometheus_and_grafana() -> None:
    services = load_yaml(REPO / "docker-compose.yml")["services"]
    worker, labels = services["worker"], services["labels"]
    assert labels["image"] == worker["image"] and labels["volumes"] == worker["volumes"]
    assert labels["command"] == ["bash", "scripts/compose-labels"]
    assert os.access(REPO / "scripts" / "compose-labels", os.X_OK)
    assert labels["environment"] == {**worker["environment"], "STREAM_SCORER_METRICS__PORT": "9465"}
    assert "9465:9465" in labels["ports"]

    prometheus, grafana = services["prometheus"], services["grafana"]
    for service in (prometheus, grafana):
        assert re.fullmatch(r"[a-z/]+:v?[0-9]+\.[0-9]+\.[0-9]+", service["image"]), "pin the image version"
        assert "test" in service["healthcheck"]
        for source in mounts(service).values():
            assert (REPO / source).is_dir(), source
    assert mounts(prometheus)["/etc/prometheus"] == "./deploy/prometheus"
    assert "9090:9090" in prometheus["ports"]
    assert mounts(grafana)["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    assert mounts(grafana)["/var/lib/grafana/dashboards"] == "./deploy/grafana/dashboards"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert "prometheus" in grafana["depends_on"] and "3000:3000" in grafana["ports"]


def seconds(duration: str) -> int:
    """``5m`` -> 300.

    >>> seconds("90s"), seconds("5m"), seconds("1h")
    (90, 300, 3600)
    """
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[duration[-1]]


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_keeps_it_silent() -> None:
    cases = [case for test in load_yaml(PROMETHEUS / "alerts.test.yml")["tests"] for case in test["alert_rule_test"]]
    for rule in rules():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        firing = [alert for case in mine for alert in case["exp_alerts"]]
        # silent once its `for` has passed: under the threshold, too little support or NaN, not merely pending
        silent = [c for c in mine if not c["exp_alerts"] and seconds(c["eval_time"]) > seconds(rule["for"])]
        assert firing and silent, rule["alert"]
        assert {alert["exp_labels"]["severity"] for alert in firing} == {rule["labels"]["severity"]}, rule["alert"]


# CI installs promtool (scripts/install); elsewhere these are skipped when it is missing.
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None and not os.environ.get("CI"), reason="promtool is not installed"
)


@needs_promtool
def test_promtool_passes_the_unit_tests_of_every_alert() -> None:
    result = subprocess.run(
        ["promtool", "test", "rules", "alerts.test.yml"], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_accepts_the_rules_and_the_config() -> None:
    for command in (["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"]):
        result = subprocess.run(
            ["promtool", *command], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
