"""deploy/k8s/examples/sidecar, checked offline as the base is (kubernetes-validate --strict,
checkov), and against the CLI it runs: the sidecar's arguments are ones `noderegistry register`
accepts, its check probes a port the service's container exposes, and its variables are the
CLI's own."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from registry_cli.main import build_parser
from registry_cli.options import OPTIONS
from registry_cli.sidecar import parse_check_url
from tests.deploy.test_manifests import MIN_KUBERNETES, REPO, _render, _tool

EXAMPLE = "deploy/k8s/examples/sidecar"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, list[dict[str, Any]]]:
    text = _render(EXAMPLE)
    path = tmp_path_factory.mktemp("sidecar") / "manifests.yaml"
    path.write_text(text)
    return path, [doc for doc in yaml.safe_load_all(text) if doc]


def _pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [doc for doc in docs if doc["kind"] == "Deployment"]
    return deployment["spec"]["template"]["spec"]


def test_the_example_passes_strict_schema_validation(rendered):
    path, docs = rendered
    result = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", "-k", MIN_KUBERNETES, str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" passed for resource ") == len(docs)


def test_checkov_finds_nothing_unexplained_in_the_example(rendered, tmp_path):
    path, _ = rendered
    shutil.copy(path, tmp_path / "manifests.yaml")
    result = subprocess.run(
        [
            _tool("checkov"),
            *("-d", str(tmp_path), "--framework", "kubernetes"),
            *("--compact", "--quiet", "--output", "cli"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_the_sidecar_runs_register_with_a_check_of_the_service_beside_it(rendered):
    _, docs = rendered
    pod = _pod(docs)
    service, sidecar = pod["containers"]
    assert "noderegistry" not in service["image"] and "registry" in sidecar["image"]
    # $(VAR) is the kubelet's: any value of the right shape stands for it here.
    args = [re.sub(r"\$\((\w+)\)", "x", arg) for arg in sidecar["args"]]
    args = [arg.replace("--address=x:", "--address=10.0.0.1:") for arg in args]
    parsed = build_parser().parse_args(args)
    assert parsed.command == "register" and parsed.check
    exposed = {port["containerPort"] for port in service["ports"]}
    for url in parsed.check:
        _, target, _ = parse_check_url(url)
        host, _, port = target.rpartition(":")
        assert host == "127.0.0.1" and int(port) in exposed, url
    address_port = int(parsed.address.rpartition(":")[2])
    assert address_port in exposed
    known = {option.variable for option in OPTIONS}
    variables = {env["name"] for env in sidecar["env"] if env["name"].startswith("NODEREGISTRY_")}
    assert variables <= known and "NODEREGISTRY_ENDPOINTS" in variables
    mounts = {mount["mountPath"] for mount in sidecar["volumeMounts"]}
    token = next(env["value"] for env in sidecar["env"] if env["name"] == "NODEREGISTRY_TOKEN_FILE")
    assert str(Path(token).parent) in mounts


def test_the_example_stays_out_of_the_registrys_own_kustomizations():
    for kustomization in REPO.glob("deploy/k8s/{base,overlays}/**/kustomization.yaml"):
        assert "examples" not in kustomization.read_text(), kustomization
