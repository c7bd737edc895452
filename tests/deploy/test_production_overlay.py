"""The production overlay's promises, read off the rendered manifests: etcd speaks TLS to peers
and clients and admits only clients with a certificate; no plaintext path carries a token; no
public load balancer; liveness on the plaintext health port; no fixed replica count beside the
HPA; the certificates cert-manager makes are the ones the pods mount, naming the addresses they
are reached at. (tests/integration/test_production_etcd.py runs the same etcd for real.)"""

from __future__ import annotations

import ipaddress
import os
import string
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from registry_service.settings import Settings
from tests.support.local_pods import REPO, find, pod_spec, render

PRODUCTION = "deploy/k8s/overlays/production"
FEDERATED = ("deploy/k8s/overlays/dc1", "deploy/k8s/overlays/dc2")
CERT_MANAGER = "deploy/k8s/overlays/production-cert-manager"
TOOLS = Path(os.environ.get("NODEREGISTRY_TOOLS_BIN", REPO / ".venv-tools" / "bin"))
# Ports that are plaintext on purpose: they carry no credential and no registration.
HEALTH_PORT = 50052  # grpc.health.v1 only (REGISTRY_HEALTH_LISTEN)
ETCD_METRICS_PORT = 2381  # etcd's /metrics and /health (--listen-metrics-urls)
INTERNAL_LOAD_BALANCER = {
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
    "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
    "networking.gke.io/load-balancer-type": "Internal",
    "service.beta.kubernetes.io/azure-load-balancer-internal": "true",
}


@pytest.fixture(scope="module")
def production() -> list[dict[str, Any]]:
    return render(PRODUCTION)


def _flags(args: list[str]) -> dict[str, str]:
    """`--name=value` arguments by name; a bare `--name` has the value ""."""
    return {name: value for name, _, value in (arg.partition("=") for arg in args)}


def _etcd_flags(docs: list[dict[str, Any]]) -> dict[str, str]:
    (container,) = pod_spec(find(docs, "StatefulSet", "etcd"))["containers"]
    return _flags(container["args"])


def _registry(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, str]]:
    (container,) = pod_spec(find(docs, "Deployment", "registry"))["containers"]
    return container, find(docs, "ConfigMap", "registry-config")["data"]


def _mounted_file(docs: list[dict[str, Any]], workload: dict[str, Any], path: str) -> str:
    """The Secret that holds the file at `path` in the workload's pods, as `secret/key`."""
    spec = pod_spec(workload)
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for container in spec.get("initContainers", []) + spec["containers"]:
        for mount in container.get("volumeMounts", []):
            folder, _, key = path.rpartition("/")
            if folder == mount["mountPath"] and "secret" in volumes[mount["name"]]:
                return f"{volumes[mount['name']]['secret']['secretName']}/{key}"
    raise AssertionError(f"no Secret is mounted at {path}")


def test_etcd_speaks_tls_to_peers_and_clients_and_requires_client_certificates(production):
    flags = _etcd_flags(production)
    for name in ("--listen-client-urls", "--advertise-client-urls", "--listen-peer-urls"):
        assert flags[name].startswith("https://"), name
    assert flags["--initial-advertise-peer-urls"].startswith("https://")
    assert all(
        member.split("=", 1)[1].startswith("https://")
        for member in flags["--initial-cluster"].split(",")
    )
    assert "--client-cert-auth" in flags and "--peer-client-cert-auth" in flags
    statefulset = find(production, "StatefulSet", "etcd")
    for flag in ("--trusted-ca-file", "--cert-file", "--key-file"):
        assert _mounted_file(production, statefulset, flags[flag]).startswith("etcd-server-tls/")
        peer = flags[f"--peer-{flag[2:]}"]
        assert _mounted_file(production, statefulset, peer).startswith("etcd-peer-tls/")
    # The only plaintext URL is the metrics port's.
    assert flags["--listen-metrics-urls"] == f"http://0.0.0.0:{ETCD_METRICS_PORT}"


def test_etcd_keeps_every_flag_of_the_base_and_a_quota_a_defragmentation_has_room_for():
    base = _etcd_flags(render("deploy/k8s/base"))
    production = render(PRODUCTION)
    flags = _etcd_flags(production)
    assert set(base) <= set(flags), set(base) - set(flags)
    quota = int(flags["--quota-backend-bytes"])
    claim = find(production, "StatefulSet", "etcd")["spec"]["volumeClaimTemplates"][0]
    volume = claim["spec"]["resources"]["requests"]["storage"]
    assert volume.endswith("Gi")
    assert 2 * quota < int(volume[:-2]) * 2**30  # the database, and its defragmented copy


def test_the_frontends_reach_etcd_over_tls_with_their_client_certificate(production):
    _, config = _registry(production)
    settings = Settings.from_environ(config)
    deployment = find(production, "Deployment", "registry")
    assert settings.etcd_ca_file and not settings.etcd_password
    for path in (settings.etcd_ca_file, settings.etcd_cert_file, settings.etcd_key_file):
        assert _mounted_file(production, deployment, path).startswith("registry-etcd-client-tls/")
    assert settings.etcd_endpoints == ("etcd-0.etcd:2379", "etcd-1.etcd:2379", "etcd-2.etcd:2379")


def test_no_plaintext_path_carries_a_token(production):
    """Every port that takes a token or a registration is TLS: the frontends' gRPC, HTTP API and
    admin ports, etcd's client and peer ports; Prometheus sends its token over HTTPS; the
    maintenance jobs reach etcd over HTTPS. Plaintext: the health port and etcd's metrics."""
    container, config = _registry(production)
    settings = Settings.from_environ(config)
    assert settings.tls_cert_file and settings.tls_key_file and settings.auth_tokens_file
    assert not settings.grpc_reflection
    deployment = find(production, "Deployment", "registry")
    assert _mounted_file(production, deployment, settings.tls_cert_file).startswith("registry-tls/")
    assert settings.health_listen.endswith(f":{HEALTH_PORT}")
    plaintext = {HEALTH_PORT, ETCD_METRICS_PORT}
    # No Service sends clients to a plaintext port.
    for service in (d for d in production if d["kind"] == "Service"):
        for port in service["spec"]["ports"]:
            assert port["port"] not in plaintext or service["metadata"]["name"] == "etcd", port
            if port["port"] == ETCD_METRICS_PORT:
                assert port["name"] == "metrics"
    # The frontends' HTTP probes speak HTTPS; the gRPC probe uses the health port.
    for probe in ("startupProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"
    # Prometheus: the token goes over HTTPS; etcd's metrics need none.
    for monitor in (d for d in production if d["kind"] == "ServiceMonitor"):
        for endpoint in monitor["spec"]["endpoints"]:
            if "bearerTokenSecret" in endpoint or "authorization" in endpoint:
                assert endpoint["scheme"] == "https" and endpoint["tlsConfig"]["ca"]
            else:
                assert endpoint["port"] == "metrics" and monitor["metadata"]["name"] == "etcd"
    # The maintenance jobs: etcd over HTTPS with their own certificate.
    for cronjob in (d for d in production if d["kind"] == "CronJob"):
        for container in (
            pod_spec(cronjob).get("initContainers", []) + pod_spec(cronjob)["containers"]
        ):
            env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
            if "ETCDCTL_ENDPOINTS" in env:
                assert all(
                    url.startswith("https://") for url in env["ETCDCTL_ENDPOINTS"].split(",")
                )
                assert _mounted_file(production, cronjob, env["ETCDCTL_CERT"]).startswith(
                    "etcd-maintenance-client-tls/"
                )


def test_liveness_is_the_plaintext_health_port_and_no_replica_count_fights_the_hpa(production):
    container, config = _registry(production)
    assert container["livenessProbe"]["grpc"]["port"] == HEALTH_PORT
    assert HEALTH_PORT in {p["containerPort"] for p in container["ports"]}
    assert Settings.from_environ(config).health_listen == f"0.0.0.0:{HEALTH_PORT}"
    deployment = find(production, "Deployment", "registry")
    assert "replicas" not in deployment["spec"]
    hpa = find(production, "HorizontalPodAutoscaler", "registry")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "registry",
    }


@pytest.mark.parametrize("kustomization", [PRODUCTION, CERT_MANAGER, *FEDERATED])
def test_no_public_load_balancer(kustomization):
    """Production has none; a datacenter's registry-wan Service is an internal one, and admits
    private source addresses only."""
    balancers = [
        d
        for d in render(kustomization)
        if d["kind"] == "Service" and d["spec"].get("type") == "LoadBalancer"
    ]
    if kustomization in (PRODUCTION, CERT_MANAGER):
        assert not balancers
        return
    (wan,) = balancers
    assert INTERNAL_LOAD_BALANCER.items() <= wan["metadata"]["annotations"].items()
    ranges = [ipaddress.ip_network(r) for r in wan["spec"]["loadBalancerSourceRanges"]]
    assert ranges and all(r.is_private for r in ranges)


@pytest.mark.parametrize("kustomization", FEDERATED)
def test_the_followers_reach_the_other_datacenters_over_tls(kustomization):
    _, config = _registry(render(kustomization))
    settings = Settings.from_environ(config)
    assert settings.remote_datacenters and settings.remote_token == ""  # it is a file's
    assert settings.remote_tls_ca_file == settings.peer_ca_file  # the registry CA, mounted


def _certificates() -> dict[str, dict[str, Any]]:
    docs = render(CERT_MANAGER)
    return {d["spec"]["secretName"]: d["spec"] for d in docs if d["kind"] == "Certificate"}


def test_cert_manager_makes_every_secret_the_production_pods_mount(production):
    certificates = _certificates()
    mounted = {
        volume["secret"]["secretName"]
        for doc in production
        if doc["kind"] in ("Deployment", "StatefulSet", "CronJob")
        for volume in pod_spec(doc).get("volumes", [])
        if "secret" in volume
    }
    assert mounted - set(certificates) == {"registry-tokens"}  # tokens are the operator's
    for monitor in (d for d in production if d["kind"] == "ServiceMonitor"):
        for endpoint in monitor["spec"]["endpoints"]:
            if "tlsConfig" in endpoint:
                assert endpoint["tlsConfig"]["ca"]["secret"]["name"] in certificates


def test_the_certificates_name_the_addresses_they_are_reached_at(production):
    certificates = _certificates()
    flags = _etcd_flags(production)
    members = [url.split("//")[1].split(":")[0] for url in flags["--initial-cluster"].split(",")]
    members = [m.replace("$(POD_NAME)", "") for m in members]
    _, config = _registry(production)
    endpoints = [e.split(":")[0] for e in Settings.from_environ(config).etcd_endpoints]
    backup = find(production, "CronJob", "etcd-backup")
    (snapshot,) = [c for c in pod_spec(backup)["initContainers"] if c["name"] == "snapshot"]
    backup_host = next(e["value"] for e in snapshot["env"] if e["name"] == "ETCDCTL_ENDPOINTS")
    server = certificates["etcd-server-tls"]
    assert set(endpoints) | {backup_host.split("//")[1].split(":")[0]} <= set(server["dnsNames"])
    assert set(members) <= set(certificates["etcd-peer-tls"]["dnsNames"])
    assert set(certificates["etcd-peer-tls"]["usages"]) == {"server auth", "client auth"}
    for client in ("registry-etcd-client-tls", "etcd-maintenance-client-tls"):
        assert "client auth" in certificates[client]["usages"]
        assert certificates[client]["issuerRef"] == server["issuerRef"]  # etcd's CA
    registry = certificates["registry-tls"]
    assert registry["issuerRef"] != server["issuerRef"]  # etcd's CA signs for etcd alone
    monitor = find(production, "ServiceMonitor", "registry")
    (endpoint,) = monitor["spec"]["endpoints"]
    names = set(registry["dnsNames"])
    assert endpoint["tlsConfig"]["serverName"] in names
    # the cluster-wide admin views ask the other frontends at their pod IPs, as Prometheus does
    assert Settings.from_environ(config).peer_tls_server_name in names
    services = [d["metadata"]["name"] for d in production if d["kind"] == "Service"]
    assert {s for s in services if s.startswith("registry")} <= names


def _restore_files(tmp_path: Path) -> Path:
    folder = tmp_path / "restore"
    folder.mkdir()
    for source in sorted((REPO / "deploy/k8s/restore").glob("*.yaml")):
        text = string.Template(source.read_text()).safe_substitute(MEMBER="etcd-1")
        assert "${" not in text, f"{source.name}: a variable the docs do not set"
        (folder / source.name).write_text(text)
    return folder


def test_the_restore_manifests_pass_strict_schema_validation_and_checkov(tmp_path):
    folder = _restore_files(tmp_path)
    for path in sorted(folder.iterdir()):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        result = subprocess.run(
            [str(TOOLS / "kubernetes-validate"), "--strict", "-k", "1.29.0", str(path)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.count(" passed for resource ") == len(docs)
    checkov = [str(TOOLS / "checkov"), "-d", str(folder), "--framework", "kubernetes"]
    result = subprocess.run(
        [*checkov, "--compact", "--quiet", "--output", "cli"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_the_restore_job_rebuilds_the_member_the_statefulset_runs(production, tmp_path):
    """The restore Job writes the data the StatefulSet's member reads: its volume, its name, the
    same cluster of peer URLs and token."""
    flags = _etcd_flags(production)
    path = _restore_files(tmp_path) / "etcd-restore-job.yaml"
    (job,) = [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == "Job"]
    (restore,) = [c for c in pod_spec(job)["initContainers"] if c["name"] == "restore"]
    restored = _flags(restore["args"])
    assert restored["--initial-cluster"] == flags["--initial-cluster"]
    assert restored["--initial-cluster-token"] == flags["--initial-cluster-token"]
    assert restored["--name"] == "etcd-1"
    assert restored["--initial-advertise-peer-urls"] == flags[
        "--initial-advertise-peer-urls"
    ].replace("$(POD_NAME)", "etcd-1")
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod_spec(job)["volumes"]
        if "persistentVolumeClaim" in v
    ]
    template = find(production, "StatefulSet", "etcd")["spec"]["volumeClaimTemplates"][0]
    assert claims == [f"{template['metadata']['name']}-etcd-1"]
    assert "--bump-revision" in restored and "--mark-compacted" in restored
