"""The chaos rig: a 3-member etcd cluster, frontends as processes on fixed ports (so they can be
SIGKILLed and restarted where clients expect them), an SDK fleet, and the history checker."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import pytest

from client_sdk import ClientConfig
from registry_service.process.embedded_etcd import EtcdServer, etcdctl_binary, find_etcd_binary
from registry_service.store.etcd_client import EtcdClient, EtcdConfig
from tests.support.etcd_metrics import metric
from tests.support.frontends import FrontendProcess
from tests.support.history import ResumingWatcher, check_stream, read_history
from tests.support.ports import free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.chaos

FLEET = ClientConfig(call_timeout_seconds=2, retry_initial_seconds=0.05, retry_max_seconds=0.5)


def leader(members: Sequence[EtcdServer]) -> EtcdServer:
    (found,) = [m for m in members if _is_leader(m)]
    return found


def _is_leader(member: EtcdServer) -> bool:
    try:
        return metric(member.endpoint, "etcd_server_is_leader") == 1
    except OSError:
        return False


async def wait_for_leader(members: Sequence[EtcdServer]) -> EtcdServer:
    await eventually(
        lambda: sum(_is_leader(m) for m in members) == 1, timeout=20, message="one etcd leader"
    )
    return leader(members)


async def restart(member: EtcdServer) -> None:
    member.start()
    await asyncio.to_thread(member.wait_ready)


def hashkv(members: Sequence[EtcdServer], revision: int) -> set[int]:
    """Each member's hash of its key-value store at revision (equal on a healthy cluster)."""
    output = subprocess.run(
        [
            etcdctl_binary(find_etcd_binary()),
            "--endpoints",
            ",".join(m.endpoint for m in members),
            "endpoint",
            "hashkv",
            f"--rev={revision}",
            "-w",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return {entry["HashKV"]["hash"] for entry in json.loads(output)}


@dataclass
class Rig:
    members: list[EtcdServer]
    frontends: list[FrontendProcess]
    cluster: str
    client: EtcdClient

    @property
    def endpoints(self) -> str:
        return ",".join(m.endpoint for m in self.members)

    @property
    def targets(self) -> list[str]:
        return [f.address for f in self.frontends]

    async def check_watchers(self, watchers: Sequence[ResumingWatcher]) -> int:
        """Waits for every watcher to reach etcd's revision, then checks each stream against
        etcd's history (W1: same changes, in order, once each, on every frontend)."""
        revision = await self.client.kv.current_revision(f"/noderegistry/{self.cluster}/".encode())
        for watcher in watchers:
            await eventually(
                lambda w=watcher: w.revision >= revision, timeout=30, message="watcher caught up"
            )
        history = await read_history(self.client, self.cluster, revision)
        for watcher in watchers:
            assert check_stream(watcher.messages, history) == []
        return len(history.changes)

    async def check_hashes(self) -> None:
        revision = await self.client.kv.current_revision(b"/")
        await eventually(
            lambda: len(hashkv(self.members, revision)) == 1, timeout=30, message="equal hashes"
        )


@pytest.fixture
async def rig(
    etcd_cluster: list[EtcdServer],
    spawn_frontend: Callable[..., Awaitable[FrontendProcess]],
    cluster: str,
) -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    clients: list[EtcdClient] = []

    async def make(frontends: int = 2, **overrides: object) -> Rig:
        endpoints = ",".join(m.endpoint for m in etcd_cluster)
        processes = [
            await spawn_frontend(endpoints, listen=f"127.0.0.1:{free_port()}", **overrides)
            for _ in range(frontends)
        ]
        client = EtcdClient(EtcdConfig(endpoints=tuple(m.endpoint for m in etcd_cluster)))
        clients.append(client)
        return Rig(etcd_cluster, processes, cluster, client)

    yield make
    for client in clients:
        await client.close()
