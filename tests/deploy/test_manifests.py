"""deploy/k8s, checked offline: schema (kubernetes-validate --strict), policy (checkov), and the
invariants no schema knows (probe ports exist, selectors match, grace periods add up, settings
are known).

The tools come from `.venv-tools` (made by `make tools`; checkov's pins stay out of our venv) and
kustomize from `kubectl kustomize`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from registry_service.datacenters import Datacenters
from registry_service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
TOOLS = Path(os.environ.get("NODEREGISTRY_TOOLS_BIN", REPO / ".venv-tools" / "bin"))
MIN_KUBERNETES = "1.29.0"
# Custom resources (Prometheus Operator, cert-manager): no schema to validate them against.
CUSTOM_GROUPS = ("monitoring.coreos.com/", "cert-manager.io/")
KUSTOMIZATIONS = [
    "deploy/k8s/base",
    "deploy/k8s/overlays/production",
    "deploy/k8s/overlays/production-cert-manager",
    "deploy/k8s/overlays/dc1",
    "deploy/k8s/overlays/dc2",
]


def _tool(name: str) -> str:
    path = TOOLS / name
    assert path.exists(), f"{path} is missing: run `make tools` (make test does)"
    return str(path)


def _render(kustomization: str) -> str:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with kustomize) is needed to render deploy/k8s"
    return subprocess.run(
        [kubectl, "kustomize", str(REPO / kustomization)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture(scope="module", params=KUSTOMIZATIONS)
def rendered(request, tmp_path_factory) -> tuple[Path, list[dict[str, Any]]]:
    text = _render(request.param)
    path = tmp_path_factory.mktemp("rendered") / "manifests.yaml"
    path.write_text(text)
    return path, [doc for doc in yaml.safe_load_all(text) if doc]


def _by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def test_every_manifest_passes_strict_schema_validation(rendered):
    path, docs = rendered
    result = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", "-k", MIN_KUBERNETES, str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    passed = result.stdout.count(" passed for resource ")
    crds = [d for d in docs if d["apiVersion"].startswith(CUSTOM_GROUPS)]
    assert passed == len(docs) - len(crds)


def test_checkov_finds_nothing_unexplained(rendered, tmp_path):
    path, _ = rendered
    shutil.copy(path, tmp_path / "manifests.yaml")
    shutil.copy(REPO / "Dockerfile", tmp_path / "Dockerfile")
    result = subprocess.run(
        [
            _tool("checkov"),
            "-d",
            str(tmp_path),
            "--framework",
            "kubernetes",
            "dockerfile",
            "--compact",
            "--quiet",
            "--output",
            "cli",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def _pods(docs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [
        (doc, doc["spec"]["template"])
        for doc in docs
        if doc["kind"] in ("Deployment", "StatefulSet")
    ]


def test_probes_use_ports_the_containers_expose(rendered):
    _, docs = rendered
    for workload, pod in _pods(docs):
        for container in pod["spec"]["containers"]:
            names = {p["name"] for p in container["ports"]}
            numbers = {p["containerPort"] for p in container["ports"]}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                spec = container.get(probe)
                if not spec:
                    continue
                port = (spec.get("httpGet") or spec.get("grpc") or spec.get("tcpSocket"))["port"]
                assert port in names | numbers, (workload["metadata"]["name"], probe, port)


def test_selectors_select_the_pods_they_mean(rendered):
    _, docs = rendered
    pod_labels = {w["metadata"]["name"]: pod["metadata"]["labels"] for w, pod in _pods(docs)}
    for workload, pod in _pods(docs):
        for key, value in workload["spec"]["selector"]["matchLabels"].items():
            assert pod["metadata"]["labels"][key] == value
    for service in _by_kind(docs, "Service"):
        selector = service["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in pod_labels.values()), service
    for pdb in _by_kind(docs, "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert any(selector.items() <= labels.items() for labels in pod_labels.values()), pdb
    etcd_client = next(
        d for d in _by_kind(docs, "NetworkPolicy") if d["metadata"]["name"] == "etcd"
    )
    allowed = etcd_client["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert allowed.items() <= pod_labels["registry"].items(), "the registry must reach etcd"


def _settings_config_maps(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ConfigMaps but the Grafana dashboard's (deploy/monitoring): they hold settings."""
    return [
        doc
        for doc in _by_kind(docs, "ConfigMap")
        if "grafana_dashboard" not in doc["metadata"].get("labels", {})
    ]


def test_grace_period_outlasts_the_pre_stop_and_the_drain(rendered):
    _, docs = rendered
    (deployment,) = _by_kind(docs, "Deployment")
    (config,) = _settings_config_maps(docs)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    drain = float(config["data"]["REGISTRY_SHUTDOWN_GRACE_SECONDS"])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + drain + 5


def test_config_map_holds_only_settings_the_service_knows(rendered):
    _, docs = rendered
    known = {f"REGISTRY_{f.name.upper()}" for f in dataclasses.fields(Settings)}
    for config in _settings_config_maps(docs):
        assert set(config["data"]) <= known, set(config["data"]) - known
        Settings.from_environ(config["data"])  # and every value parses


def _every_pod_template(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pod templates of every workload, CronJobs' included."""
    templates = [pod for _, pod in _pods(docs)]
    for cronjob in _by_kind(docs, "CronJob"):
        templates.append(cronjob["spec"]["jobTemplate"]["spec"]["template"])
    return templates


def test_high_availability_and_hardening(rendered):
    _, docs = rendered
    (deployment,) = _by_kind(docs, "Deployment")
    scalers = [h for h in _by_kind(docs, "HorizontalPodAutoscaler")]
    if scalers:  # the HPA owns the count: no fixed one beside it
        (hpa,) = scalers
        assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        assert "replicas" not in deployment["spec"]
        assert hpa["spec"]["minReplicas"] >= 2
    else:
        assert deployment["spec"]["replicas"] >= 2
    (etcd,) = _by_kind(docs, "StatefulSet")
    assert etcd["spec"]["replicas"] == 3
    assert (
        etcd["spec"]["template"]["spec"]["containers"][0]["image"].split(":v")[1].startswith("3.5.")
    )
    for pod in _every_pod_template(docs):
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert pod["spec"]["automountServiceAccountToken"] is False
        for container in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert container["resources"]["requests"] and container["resources"]["limits"]


def _registry_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = _by_kind(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_the_admin_port_admits_only_monitoring_and_the_frontends_themselves(rendered):
    _, docs = rendered
    policy = next(d for d in _by_kind(docs, "NetworkPolicy") if d["metadata"]["name"] == "registry")
    admin_port = next(
        p["containerPort"] for p in _registry_container(docs)["ports"] if p["name"] == "admin"
    )
    rules = [r for r in policy["spec"]["ingress"] if admin_port in {p["port"] for p in r["ports"]}]
    (rule,) = rules
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "registry"}}},
    ]
    open_rules = [r for r in policy["spec"]["ingress"] if "from" not in r]
    assert all(admin_port not in {p["port"] for p in r["ports"]} for r in open_rules)


def test_tokens_come_from_a_secret_that_is_never_committed(rendered):
    _, docs = rendered
    assert not _by_kind(docs, "Secret")  # the operator creates it (docs/deploy.md)
    (deployment,) = _by_kind(docs, "Deployment")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    container = _registry_container(docs)
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "tokens"]
    secret = volumes["tokens"]["secret"]
    assert secret["secretName"] == "registry-tokens" and mount["readOnly"] is True
    (config,) = _settings_config_maps(docs)
    tokens_file = config["data"]["REGISTRY_AUTH_TOKENS_FILE"]
    assert tokens_file == f"{mount['mountPath']}/{secret['items'][0]['path']}"
    advertise = next(e for e in container["env"] if e["name"] == "REGISTRY_ADVERTISE_ADDRESS")
    assert advertise["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    for monitor in _by_kind(docs, "ServiceMonitor"):
        if monitor["metadata"]["name"] != "registry":
            continue  # etcd's: its metrics port asks for no credentials
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["bearerTokenSecret"] == {"name": "registry-tokens", "key": "metrics-token"}


def test_each_datacenter_overlay_is_a_registry_of_its_own_following_the_other():
    """Federation: dc1 and dc2 each run their own etcd and frontends, write their own nodes and
    follow the other through its WAN Service, with a token from the Secret."""
    followed = {}
    for name in ("dc1", "dc2"):
        docs = [d for d in yaml.safe_load_all(_render(f"deploy/k8s/overlays/{name}")) if d]
        (config,) = _settings_config_maps(docs)
        settings = Settings.from_environ(config["data"])
        datacenters = Datacenters.from_settings(settings.datacenter, settings.remote_datacenters)
        assert datacenters.local == name
        followed[name] = set(datacenters.remotes)
        (etcd,) = _by_kind(docs, "StatefulSet")
        assert etcd["spec"]["replicas"] == 3  # a quorum of its own, never across the WAN
        assert all(e.split(".")[1].split(":")[0] == "etcd" for e in settings.etcd_endpoints)
        wan = next(d for d in _by_kind(docs, "Service") if d["metadata"]["name"] == "registry-wan")
        assert [p["name"] for p in wan["spec"]["ports"]] == ["grpc"]  # never the admin port
        container = _registry_container(docs)
        token_file = next(e for e in container["env"] if e["name"] == "REGISTRY_REMOTE_TOKEN_FILE")
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "tokens"]
        (deployment,) = _by_kind(docs, "Deployment")
        (tokens,) = [
            v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "tokens"
        ]
        paths = {f"{mount['mountPath']}/{item['path']}" for item in tokens["secret"]["items"]}
        assert token_file["value"] in paths
    assert followed == {"dc1": {"dc2"}, "dc2": {"dc1"}}
