"""The Kubernetes deployment, offline: the Helm chart linted and rendered by helm (``scripts/helm`` builds it),
every manifest validated against Kubernetes' schemas (kubernetes-validate) and the custom resources by shape, and
on what was rendered: the pod ordinal is the worker slot, probes are the metrics server's routes, ports and grace
periods follow the rendered settings, replicas stay within the partitions, the alerts are the repo's, no secret
value appears. The image the chart runs: test_dockerfile.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from stream_scorer.config import Settings, load_settings
from stream_scorer.monitoring.server import HEALTH_PATH, METRICS_PATH, READY_PATH, ROUTES
from stream_scorer.wiring.clients import transactional_id
from tools.helm_values import helm_values

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "stream-scorer"
HELM = REPO / "scripts" / "helm"
RELEASE = "scorer"
# The chart's oldest Kubernetes (Chart.yaml kubeVersion: the pod-index label) and the newest the schemas know.
KUBE_VERSIONS = ("1.28", kubernetes_validate.latest_version())
# Kinds whose schemas Kubernetes does not ship (CRDs): kubernetes-validate cannot know them; see test_crds_*.
CUSTOM = {("keda.sh/v1alpha1", "ScaledObject"), ("monitoring.coreos.com/v1", "ServiceMonitor")}
CUSTOM.add(("monitoring.coreos.com/v1", "PrometheusRule"))
KINDS = {"ConfigMap", "ServiceAccount", "Service", "StatefulSet", "Deployment", "PodDisruptionBudget"}
POD_INDEX = "metadata.labels['apps.kubernetes.io/pod-index']"
SECRETS_DIR = "/run/secrets/stream-scorer"
SECRETS: dict[str, Any] = {
    "kafkaClient": {"sasl.password": {"secretName": "scorer-kafka", "key": "password"}},
    "redisPassword": {"secretName": "scorer-redis", "key": "password"},
    "schemaRegistryPassword": {"secretName": "scorer-registry", "key": "password"},
    "modelPublicKey": {"secretName": "scorer-model-key", "key": "public.pem"},
    "files": [{"secretName": "scorer-kafka-tls", "key": "ca.crt"}],
}
Manifest = dict[str, Any]
Charts = dict[str, list[Manifest]]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=900, cwd=REPO, check=False)


def render(folder: Path, *values: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """``helm template`` of the chart with these values files, later ones merged over earlier ones."""
    files = [folder / f"values-{len(list(folder.iterdir()))}-{i}.json" for i in range(len(values))]
    for path, given in zip(files, values, strict=True):
        path.write_text(json.dumps(given))  # helm reads JSON as YAML
    options = [option for path in files for option in ("-f", str(path))]
    return helm("template", RELEASE, str(CHART), "--kube-version", f"{KUBE_VERSIONS[-1]}", *options)


def manifests(folder: Path, *values: dict[str, Any]) -> list[Manifest]:
    result = render(folder, *values)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def fraud_values() -> dict[str, Any]:
    """The fraud example's settings file as values, secured (SASL_SSL, Redis ACL user, TLS CA), exactly-once."""
    values = helm_values(REPO / "examples" / "fraud" / "settings.toml")
    settings = values["settings"]
    settings["kafka"] |= {"delivery": "exactly_once", "transactional_id_prefix": "fraud"}
    client = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "scorer"}
    settings["kafka"]["client"] = client | {"ssl.ca.location": f"{SECRETS_DIR}/scorer-kafka-tls/ca.crt", "linger.ms": 5}
    settings["redis"] = {"url": "rediss://redis:6380/0", "username": "scorer"}
    settings["schema_registry"] = {"url": "https://registry:8081", "username": "scorer"}
    values["kafka"] = {**values.get("kafka", {}), "partitions": 24, "groupId": "fraud-scorer"}
    return values | {"keda": {"maxReplicas": 24}, "secrets": SECRETS}


def manual_values() -> dict[str, Any]:
    """The site values docs/operations.md shows (installed over the fraud example's)."""
    found = re.search(
        r"```yaml\n(.*?)```", (REPO / "docs" / "operations.md").read_text().split("## Kubernetes")[1], re.S
    )
    assert found is not None, "docs/operations.md: the Kubernetes section shows site values in a yaml block"
    values: dict[str, Any] = yaml.safe_load(found.group(1))
    return values


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = helm("version")  # builds helm the first time (Go and the module proxy)
    if result.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"scripts/helm could not build or run helm: {result.stderr[-2000:]}")
        pytest.skip(f"scripts/helm could not build or run helm (needs Go): {result.stderr[-500:]}")
    return tmp_path_factory.mktemp("helm")


@pytest.fixture(scope="module")
def charts(folder: Path) -> Charts:
    """Renders: the defaults (KEDA and monitoring on), the secured fraud example, the manual's, no KEDA."""
    return {
        "defaults": manifests(folder, {}),
        "fraud": manifests(folder, fraud_values()),
        "manual": manifests(folder, helm_values(REPO / "examples" / "fraud" / "settings.toml"), manual_values()),
        "static": manifests(folder, {"keda": {"enabled": False}, "worker": {"replicas": 3}}),
    }


def one(docs: list[Manifest], kind: str, suffix: str = "") -> Manifest:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == f"{RELEASE}-stream-scorer{suffix}"]
    return found


def pods(docs: list[Manifest]) -> list[Manifest]:
    """The pod templates' specs: the workers' and the label flow's."""
    return [
        one(docs, "StatefulSet")["spec"]["template"]["spec"],
        one(docs, "Deployment", "-labels")["spec"]["template"]["spec"],
    ]


def settings_of(docs: list[Manifest], pod: Manifest, folder: Path, slot: str = "3") -> Settings:
    """What the container's process reads: the rendered settings file (with its files), then its environment."""
    (container,) = pod["containers"]
    config = folder / f"config-{len(list(folder.iterdir()))}"
    config.mkdir()
    for name, text in one(docs, "ConfigMap")["data"].items():
        (config / name).write_text(text)
    # The only variable not given as a value is the slot, which the kubelet sets to the ordinal.
    assert all(v["valueFrom"] == {"fieldRef": {"fieldPath": POD_INDEX}} for v in container["env"] if "value" not in v)
    environ = {variable["name"]: variable.get("value", slot) for variable in container["env"]}
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "config"]
    assert environ["STREAM_SCORER_CONFIG"] == f"{mount['mountPath']}/settings.toml"
    return load_settings(None, environ | {"STREAM_SCORER_CONFIG": str(config / "settings.toml")})


def test_helm_lint_passes_strictly(folder: Path) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())  # the image's version is the chart's appVersion
    assert chart["appVersion"] == tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert chart["kubeVersion"] == f">={KUBE_VERSIONS[0]}.0-0"  # the oldest validated: it has the pod-index label
    (folder / "fraud.json").write_text(json.dumps(fraud_values()))
    for values in ([], ["-f", str(folder / "fraud.json")]):
        result = helm("lint", "--strict", str(CHART), "--kube-version", f"{KUBE_VERSIONS[-1]}", *values)
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_manifest_is_valid_kubernetes(charts: Charts) -> None:
    kinds = set()
    for docs in charts.values():
        for doc in docs:
            kinds.add(doc["kind"])
            if (doc["apiVersion"], doc["kind"]) in CUSTOM:  # no schema shipped: an error, not a silent pass
                with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                    kubernetes_validate.validate(doc, KUBE_VERSIONS[-1], strict=True)
                continue
            for version in KUBE_VERSIONS:  # strict: an unknown or misplaced field is an error
                kubernetes_validate.validate(doc, version, strict=True)
    assert kinds == KINDS | {kind for _, kind in CUSTOM}
    typo = json.loads(json.dumps(one(charts["defaults"], "StatefulSet")))
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}  # misspelt
    with pytest.raises(kubernetes_validate.ValidationError):  # the validation does look at fields
        kubernetes_validate.validate(typo, KUBE_VERSIONS[-1], strict=True)


def test_the_pod_ordinal_is_the_worker_slot_and_so_the_transactional_id(charts: Charts, folder: Path) -> None:
    docs = charts["fraud"]
    workers = one(docs, "StatefulSet")
    (slot,) = [e for e in workers["spec"]["template"]["spec"]["containers"][0]["env"] if "valueFrom" in e]
    assert slot == {"name": "STREAM_SCORER_KAFKA__WORKER_SLOT", "valueFrom": {"fieldRef": {"fieldPath": POD_INDEX}}}
    settings = settings_of(docs, workers["spec"]["template"]["spec"], folder, slot="3")
    assert settings.kafka.worker_slot == 3 and settings.kafka.delivery == "exactly_once"
    assert transactional_id(settings) == "fraud-fraud-scorer-3"  # <prefix>-<group>-<ordinal>: pod 3 keeps it
    schema = settings.events.schema  # the fraud example's settings made values by tools.helm_values, its schema too
    assert schema is not None and schema.name == "transaction.avsc"
    assert one(docs, "ConfigMap")["data"][schema.name] == (REPO / "examples" / "fraud" / schema.name).read_text()
    example = load_settings(REPO / "examples" / "fraud" / "settings.toml", {})  # the same settings, deployed
    assert (settings.events.entities, settings.feature_groups) == (example.events.entities, example.feature_groups)
    headless = one(docs, "Service", "-headless")
    assert workers["spec"]["serviceName"] == headless["metadata"]["name"] and headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"].items() <= workers["spec"]["template"]["metadata"]["labels"].items()
    assert (workers["spec"]["podManagementPolicy"], workers["spec"]["updateStrategy"]["type"]) == (
        "Parallel",
        "RollingUpdate",
    )


def test_probes_are_routes_the_metrics_server_serves(charts: Charts) -> None:
    for docs in charts.values():
        for pod in pods(docs):
            (container,) = pod["containers"]
            paths = {"startupProbe": HEALTH_PATH, "livenessProbe": HEALTH_PATH, "readinessProbe": READY_PATH}
            assert {probe: container[probe]["httpGet"] for probe in paths} == {
                probe: {"path": path, "port": "metrics"} for probe, path in paths.items()
            }
            assert [p["name"] for p in container["ports"]] == ["metrics"]
        (endpoint,) = one(docs, "ServiceMonitor")["spec"]["endpoints"]
        assert endpoint["path"] == METRICS_PATH and endpoint["port"] == "metrics"
    assert {HEALTH_PATH, READY_PATH, METRICS_PATH} == set(ROUTES)


def test_container_ports_are_the_metrics_ports_of_the_rendered_settings(charts: Charts, folder: Path) -> None:
    for docs in charts.values():
        services = [one(docs, "Service", "-metrics"), one(docs, "Service", "-labels-metrics")]
        for pod, service in zip(pods(docs), services, strict=True):
            settings = settings_of(docs, pod, folder)
            (port,) = pod["containers"][0]["ports"]
            assert settings.metrics.enabled and settings.metrics.host == "0.0.0.0"  # reachable in the pod
            assert port["containerPort"] == settings.metrics.port
            (exposed,) = service["spec"]["ports"]
            assert exposed == {"name": "metrics", "port": settings.metrics.port, "targetPort": "metrics"}
        worker, labels = (settings_of(docs, pod, folder).metrics.port for pod in pods(docs))
        assert (worker, labels) == (9464, 9465)


def test_the_grace_period_outlasts_the_flush_timeout(charts: Charts, folder: Path) -> None:
    for docs in charts.values():
        for pod in pods(docs):
            settings = settings_of(docs, pod, folder)
            assert pod["terminationGracePeriodSeconds"] > settings.batch.flush_timeout_seconds
    docs = manifests(folder, {"batch": {"flushTimeoutSeconds": 299.5}, "terminationGraceMarginSeconds": 20})
    for pod in pods(docs):
        assert settings_of(docs, pod, folder).batch.flush_timeout_seconds == 299.5  # one value drives both
        assert pod["terminationGracePeriodSeconds"] == 320


def test_replicas_and_keda_never_exceed_the_partitions(charts: Charts, folder: Path) -> None:
    for docs in charts.values():
        partitions = settings_of(docs, pods(docs)[0], folder).kafka.topic_partitions
        workers = one(docs, "StatefulSet")
        scaled = [d for d in docs if d["kind"] == "ScaledObject"]
        if scaled:
            assert "replicas" not in workers["spec"]  # KEDA owns the count: an upgrade must not reset it
            assert 1 <= scaled[0]["spec"]["minReplicaCount"] <= scaled[0]["spec"]["maxReplicaCount"] <= partitions
        else:
            assert 1 <= workers["spec"]["replicas"] <= partitions
    too_many: list[dict[str, Any]] = [
        {"keda": {"enabled": False}, "worker": {"replicas": 13}, "kafka": {"partitions": 12}},
        {"keda": {"maxReplicas": 13}, "kafka": {"partitions": 12}},
    ]
    for values in too_many:
        result = render(folder, values)
        assert result.returncode != 0 and "exceeds kafka.partitions (12)" in result.stderr, result.stderr


def test_crds_keda_scales_the_statefulset_on_the_lag_of_the_workers_group(charts: Charts, folder: Path) -> None:
    docs = charts["fraud"]
    settings = settings_of(docs, pods(docs)[0], folder)
    spec = one(docs, "ScaledObject")["spec"]
    target = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": one(docs, "StatefulSet")["metadata"]["name"]}
    assert spec["scaleTargetRef"] == target
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka" and all(isinstance(v, str) for v in trigger["metadata"].values())
    assert trigger["metadata"]["topic"] == settings.kafka.input_topic == "transactions"
    assert trigger["metadata"]["consumerGroup"] == settings.kafka.group_id == "fraud-scorer"
    assert trigger["metadata"]["bootstrapServers"] == settings.kafka.bootstrap_servers
    assert trigger["metadata"]["allowIdleConsumers"] == "false" and int(trigger["metadata"]["lagThreshold"]) > 0
    assert spec["maxReplicaCount"] == 24 == settings.kafka.topic_partitions
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] > 0


def test_crds_the_servicemonitor_scrapes_the_jobs_the_alerts_name(charts: Charts) -> None:
    docs = charts["defaults"]
    spec = one(docs, "ServiceMonitor")["spec"]
    wanted = spec["selector"]["matchLabels"].items()
    selected = [s for s in docs if s["kind"] == "Service" and wanted <= s["metadata"]["labels"].items()]
    jobs = {s["metadata"]["labels"][spec["jobLabel"]] for s in selected}
    assert len(selected) == 2 and jobs == {"stream-scorer", "stream-scorer-labels"}  # not the headless one too
    alerts = (REPO / "deploy" / "prometheus" / "alerts.yml").read_text()
    assert set(re.findall(r'job="([^"]+)"', alerts)) <= jobs
    prometheus = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert {job["job_name"] for job in prometheus["scrape_configs"]} == jobs
    assert spec["endpoints"][0]["interval"] == prometheus["global"]["scrape_interval"]


def test_crds_the_prometheusrule_holds_the_repos_alert_rules(charts: Charts) -> None:
    ours = REPO / "deploy" / "prometheus" / "alerts.yml"
    copy = CHART / "files" / "alerts.yml"  # a chart reads only its own folder
    assert copy.read_text() == ours.read_text(), f"stale: cp {ours.relative_to(REPO)} {copy.relative_to(REPO)}"
    for docs in charts.values():
        rule = one(docs, "PrometheusRule")
        assert rule["spec"] == {"groups": yaml.safe_load(ours.read_text())["groups"]}


def test_no_secret_value_is_rendered_only_references_to_existing_secrets(charts: Charts, folder: Path) -> None:
    docs = charts["fraud"]
    assert not [doc for rendered in charts.values() for doc in rendered if doc["kind"] == "Secret"]
    for pod in pods(docs):
        settings = settings_of(docs, pod, folder)
        references = [*settings.kafka.client_secrets.values(), settings.redis.password]
        references += [settings.schema_registry.password, settings.model_public_key]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "secrets"]
        files = {
            f"file:{SECRETS_DIR}/{item['path']}": (source["secret"]["name"], item["key"])
            for source in volume["projected"]["sources"]
            for item in source["secret"]["items"]
        }
        given = [*SECRETS["kafkaClient"].values(), *(SECRETS[k] for k in ("redisPassword", "schemaRegistryPassword"))]
        given += [SECRETS["modelPublicKey"]]
        assert [files[r] for r in references] == [(s["secretName"], s["key"]) for s in given]
        assert f"file:{settings.kafka.client['ssl.ca.location']}" in files
        (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "secrets"]
        assert mount == {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True}
    plain: list[dict[str, Any]] = [
        {"settings": {"kafka": {"client": {"sasl.password": "hunter2"}}}},
        {"settings": {"redis": {"password": "hunter2"}}},
        {"settings": {"model_public_key": "hunter2"}},
    ]
    for values in plain:  # refused, and the refusal does not repeat it
        result = render(folder, values)
        assert result.returncode != 0 and "secret" in result.stderr and "hunter2" not in result.stderr


def test_pods_run_unprivileged_bounded_and_spread_and_drains_go_one_by_one(charts: Charts) -> None:
    docs = charts["defaults"]
    for pod in pods(docs):
        (container,) = pod["containers"]
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] > 0
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        # no STREAM_SCORER_*_PORT variables from Services, which the settings would refuse as unknown settings
        assert pod["enableServiceLinks"] is False and pod["automountServiceAccountToken"] is False
        assert {"memory"} <= container["resources"]["limits"].keys() and container["resources"]["requests"]["cpu"]
        (term,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    worker = pods(docs)[0]["containers"][0]["resources"]
    assert worker == {"requests": {"cpu": "1", "memory": "384Mi"}, "limits": {"memory": "512Mi"}}
    budget = one(docs, "PodDisruptionBudget")["spec"]
    assert budget["maxUnavailable"] == 1
    assert budget["selector"]["matchLabels"] == one(docs, "StatefulSet")["spec"]["selector"]["matchLabels"]
