"""The alert rules and the dashboard against a real Prometheus (Debian's, started by scripts/stack) scraping a real
worker and label flow while events flow at a steady rate.

Every PromQL expression of deploy/prometheus/alerts.yml and of the Grafana dashboard is evaluated through
Prometheus's HTTP API and must return data, or be listed in ``EXPECTED_EMPTY`` with the reason. An alert's
expression is evaluated with its comparisons made ``bool`` (``x > 0.25`` becomes ``x > bool 0.25``), which
returns every series it compares, and then as written: on unshifted, steady traffic no alert condition holds.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from examples.fraud.world import World
from stream_scorer.config import DriftSettings
from stream_scorer.features.store import RedisFeatureStore
from tests.integration.conftest import REPO, RunningLabels, RunningWorker, Stack, Topics, wait_for
from tests.integration.test_labels import label_settings, publish
from tools.synth import io as synth_io

pytestmark = pytest.mark.integration

ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "stream-scorer.json"
# The dashboard's variables, as Grafana would fill them in with "All" selected.
VARIABLES = {"$__rate_interval": "1m", "$model": ".+", "$window": ".+", "$drift_window": ".+"}
# What a clean run of the fraud example cannot show, and why.
EXPECTED_EMPTY = {
    "stream_scorer_feature_records_implausible_total": "no feature record is implausible in the synthetic store",
    "stream_scorer_model_reload_failures_total": "no reload fails: the model does not change during the run",
    "stream_scorer_dead_letters_total": "no dead letter: every synthetic event is valid",
}


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    """The instant vector ``expr`` gives now (an error from Prometheus fails the test with its message)."""
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:
        raise AssertionError(f"Prometheus refused {expr!r}: {error.read().decode()}") from error
    assert body["status"] == "success" and body["data"]["resultType"] == "vector", body
    return list(body["data"]["result"])


def as_bool(expr: str) -> str:
    """``expr`` with every comparison outside label matchers given the ``bool`` modifier.

    >>> as_bool('a{le="1", x!="2"} > 1 and on (i) b >= 200')
    'a{le="1", x!="2"} > bool 1 and on (i) b >= bool 200'
    """
    out, depth = [], 0
    for token in re.split(r'("(?:[^"\\]|\\.)*"|[{}]|==|!=|>=|<=|>|<)', expr):
        depth += token == "{"
        depth -= token == "}"
        is_comparison = token in ("==", "!=", ">=", "<=", ">", "<")
        out.append(f"{token} bool" if is_comparison and depth == 0 else token)
    return "".join(out)


def dashboard_exprs() -> list[tuple[str, str]]:
    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    found = []
    for panel in panels(json.loads(DASHBOARD.read_text())["panels"]):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            found.append((f"panel {panel['title']!r}", expr))
    return found


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def expected_empty(expr: str) -> str | None:
    return next((reason for name, reason in EXPECTED_EMPTY.items() if name in expr), None)


@pytest.fixture
def scraped(stack: Stack) -> Iterator[Any]:
    """Register targets with the stack's Prometheus (scripts/stack scrape); unregister them afterwards."""
    names: list[str] = []

    def register(job: str, url: str) -> str:
        name = f"it-{uuid.uuid4().hex[:8]}"
        address = url.removeprefix("http://")
        subprocess.run([str(REPO / "scripts" / "stack"), "scrape", job, name, address], check=True, timeout=30)
        names.append(name)
        return name

    yield register
    for name in names:
        subprocess.run([str(REPO / "scripts" / "stack"), "unscrape", name], check=True, timeout=30)


def test_every_rule_and_panel_expression_returns_data_and_no_alert_condition_holds_on_unshifted_data(
    stack: Stack,
    topics: Topics,
    redis_prefix: str,
    store: RedisFeatureStore,
    world: World,
    model_path: Path,
    schemas: Any,
    scraped: Any,
) -> None:
    settings = dataclasses.replace(
        label_settings(stack, topics, redis_prefix, model_path, horizon_seconds=8.0, coverage_lookback_seconds=60.0),
        drift=DriftSettings(windows=("5m", "1h"), bucket_seconds=1.0),
    )
    now_ms = int(time.time() * 1000)  # as the demo: some groups stale, some missing
    synth_io.seed_features(
        world, store, settings.feature_groups, now_ms=now_ms, stale_fraction=0.03, missing_fraction=0.02
    )
    worker, labels = RunningWorker(settings), RunningLabels(settings)
    publisher = threading.Thread(
        target=publish, args=(stack, settings, world, schemas, 16_000, 1.0), kwargs={"rate": 400.0}, daemon=True
    )
    prometheus = stack.prometheus_url
    try:
        worker_target = scraped("stream-scorer", worker.metrics_url)
        assert labels.runtime.metrics_server is not None
        host, port = labels.runtime.metrics_server.address
        labels_target = scraped("stream-scorer-labels", f"http://{host}:{port}")
        wait_for(
            lambda: len(query(prometheus, f'up{{target=~"{worker_target}|{labels_target}"}} == 1')) == 2,
            30,
            "Prometheus scraping the worker and the label flow",
        )
        publisher.start()
        # Long enough for two scrapes in every rate window, 200 labels in the quality window, and predictions
        # older than the label horizon for the coverage.
        wait_for(
            lambda: (
                bool(query(prometheus, "stream_scorer_model_window_labels >= 500"))
                and bool(query(prometheus, "stream_scorer_label_coverage_predictions > 0"))
            ),
            60,
            "labels joined and coverage computed, as Prometheus sees them",
        )
        time.sleep(12)
        sources = dashboard_exprs() + [(f"alert {r['alert']}", as_bool(r["expr"])) for r in alert_rules()]
        answers = {(where, expr): query(prometheus, expr) for where, expr in sources}
        ours = {worker_target, labels_target}
        conditions = {  # series of an earlier run's targets (kept for 5 minutes) are not this run's
            rule["alert"]: [
                r for r in query(prometheus, rule["expr"]) if r["metric"].get("target", worker_target) in ours
            ]
            for rule in alert_rules()
        }
        metrics = {
            name: urllib.request.urlopen(f"{url}/metrics", timeout=5).read()
            for name, url in (("worker", worker.metrics_url), ("labels", f"http://{host}:{port}"))
        }
        publisher.join(60)
    finally:
        labels.stop()
        worker.stop()

    empty = [(where, expr) for (where, expr), result in answers.items() if not result and not expected_empty(expr)]
    assert empty == [], "expressions without data (and no reason to expect none):\n" + "\n".join(map(str, empty))
    surprising = [(where, expr) for (where, expr), result in answers.items() if result and expected_empty(expr)]
    assert surprising == [], "listed as expected-empty, yet with data:\n" + "\n".join(map(str, surprising))
    assert len(answers) >= 50 and len(conditions) == 21
    holding = {alert: result for alert, result in conditions.items() if result}
    assert holding == {}, f"alert conditions that hold on unshifted, steady traffic: {holding}"
    # promtool's lint of the exposition: names, types, units and help texts of everything we export.
    for name, text in metrics.items():
        lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, timeout=30)
        assert lint.returncode == 0, (name, lint.stdout.decode() + lint.stderr.decode())
