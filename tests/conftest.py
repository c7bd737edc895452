"""Fixtures: real etcd processes on loopback, registry frontends, each test in its own prefix."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc.aio
import pytest
from noderegistry.v1 import registry_pb2_grpc

from registry_service.app import Frontend
from registry_service.process.embedded_etcd import EtcdServer, find_etcd_binary
from registry_service.settings import Settings
from registry_service.store.etcd_client import EtcdClient, EtcdConfig
from tests.support.frontends import FrontendProcess
from tests.support.ports import free_port
from tests.support.waiting import eventually

# Fast-moving settings for tests: a dead evictor is replaced in ~2 s, idle streams get progress
# every second.
TEST_SETTINGS = {
    "evictor_lease_ttl_seconds": 2,
    "evictor_poll_seconds": 0.2,
    "watch_progress_seconds": 1.0,
    "shutdown_grace_seconds": 1.0,
    "etcd_watch_stale_seconds": 6.0,
    "admin_listen": "127.0.0.1:0",
    "http_listen": "127.0.0.1:0",
    "workers": 1,
    # Expired nodes go at once (tests of the outage grace set it themselves).
    "evictor_outage_grace_seconds": 0.0,
    # The shared test machine's load is not an overload of the frontend: its event loop may lag
    # a few hundred ms when other processes take the cores, and a Register waiting in line for a
    # slot may wait longer than the shipped second. Tests of admission control (D72) set them.
    "admission_loop_lag_seconds": 5.0,
    "admission_max_wait_seconds": 10.0,
}


def start_etcd(directory: Path, name: str = "etcd") -> EtcdServer:
    port = free_port()
    server = EtcdServer(data_dir=directory / name, client_port=port, peer_port=port + 1, name=name)
    server.start()
    server.wait_ready()
    return server


@pytest.fixture(scope="session")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """One etcd for the whole run; tests keep apart by prefix."""
    server = start_etcd(tmp_path_factory.mktemp("etcd-shared"))
    yield server
    server.stop()


@pytest.fixture
def own_etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    """An etcd for this test alone (tests that restart or compact it)."""
    server = start_etcd(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def etcd_cluster(tmp_path: Path) -> Iterator[list[EtcdServer]]:
    """Three etcd members on loopback (for faults: kill, pause, lose quorum)."""
    binary = find_etcd_binary()
    ports = [free_port() for _ in range(3)]
    initial = ",".join(f"m{i}=http://127.0.0.1:{port + 1}" for i, port in enumerate(ports))
    members = [
        EtcdServer(
            data_dir=tmp_path / f"m{i}",
            client_port=port,
            peer_port=port + 1,
            name=f"m{i}",
            initial_cluster=initial,
            binary=binary,
        )
        for i, port in enumerate(ports)
    ]
    for member in members:
        member.start()
    for member in members:
        member.wait_ready()
    yield members
    for member in members:
        member.stop()


@pytest.fixture
def cluster() -> str:
    return f"t-{secrets.token_hex(4)}"


@pytest.fixture
def settings_for(cluster: str) -> Callable[..., Settings]:
    def make(endpoints: tuple[str, ...] | str, **overrides: Any) -> Settings:
        if isinstance(endpoints, str):
            endpoints = (endpoints,)
        values = {"listen": "127.0.0.1:0", **TEST_SETTINGS, **overrides}
        return dataclasses.replace(Settings(), cluster=cluster, etcd_endpoints=endpoints, **values)

    return make


@pytest.fixture
async def start_frontend(
    etcd: EtcdServer, settings_for: Callable[..., Settings]
) -> AsyncIterator[Callable[..., Awaitable[Frontend]]]:
    """Starts in-process frontends (on the shared etcd unless endpoints are given)."""
    started: list[Frontend] = []

    async def start(endpoints: tuple[str, ...] | str | None = None, **overrides: Any) -> Frontend:
        frontend = Frontend(settings_for(endpoints or etcd.endpoint, **overrides))
        await frontend.start()
        started.append(frontend)
        # Its election key is its last background write: wait for it so that tests can compare
        # etcd revisions.
        await eventually(lambda: frontend.evictor.status.candidate, message="evictor candidacy")
        return frontend

    yield start
    for frontend in started:
        try:
            await asyncio.wait_for(frontend.stop(), 20)
        except TimeoutError:
            for task in asyncio.all_tasks():
                task.print_stack()
            raise


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[Frontend | str], registry_pb2_grpc.RegistryStub]]:
    """A Registry stub for a frontend (or an address); channels close after the test."""
    channels: list[grpc.aio.Channel] = []

    def make(target: Frontend | str) -> registry_pb2_grpc.RegistryStub:
        address = target if isinstance(target, str) else target.address
        channel = grpc.aio.insecure_channel(address)
        channels.append(channel)
        return registry_pb2_grpc.RegistryStub(channel)

    yield make
    for channel in channels:
        await channel.close()


@pytest.fixture
async def etcd_client(etcd: EtcdServer) -> AsyncIterator[EtcdClient]:
    """A direct etcd client, to look at etcd itself (revision, keys) beside the registry."""
    client = EtcdClient(EtcdConfig(endpoints=(etcd.endpoint,)))
    yield client
    await client.close()


@pytest.fixture
def spawn_frontend(
    tmp_path: Path, cluster: str
) -> Iterator[Callable[..., Awaitable[FrontendProcess]]]:
    """Starts frontends as child processes (so that a test can SIGKILL one)."""
    spawned: list[FrontendProcess] = []

    async def spawn(endpoints: str, **overrides: Any) -> FrontendProcess:
        flags = ["--etcd-endpoints", endpoints, "--cluster", cluster]
        for name, value in {**TEST_SETTINGS, **overrides}.items():
            flags += [f"--{name.replace('_', '-')}", str(value)]
        process = FrontendProcess(flags, tmp_path / f"frontend-{len(spawned)}.log")
        spawned.append(process)
        await process.start()
        return process

    yield spawn
    for process in spawned:
        process.kill()


@dataclass
class TwoDatacenters:
    """Two datacenters' registries (docs/design.md §10), one in-process frontend each."""

    dc1: Frontend
    dc2: Frontend
    stub: Callable[[Frontend], registry_pb2_grpc.RegistryStub]


@pytest.fixture
async def two_datacenters(
    etcd: EtcdServer,
    own_etcd: EtcdServer,
    start_frontend: Callable[..., Awaitable[Frontend]],
    connect: Callable[[Frontend], registry_pb2_grpc.RegistryStub],
) -> TwoDatacenters:
    """dc1 on the shared etcd, dc2 on its own; each follows the other. dc1 starts first and
    follows a dc2 that is not up yet (its follower retries)."""
    ports = {"dc1": free_port(), "dc2": free_port()}

    def settings(name: str, other: str) -> dict[str, Any]:
        return {
            "listen": f"127.0.0.1:{ports[name]}",
            "datacenter": name,
            "remote_datacenters": f"{other}=127.0.0.1:{ports[other]}",
            "remote_silence_seconds": 3.0,
        }

    dc1 = await start_frontend(etcd.endpoint, **settings("dc1", "dc2"))
    dc2 = await start_frontend(own_etcd.endpoint, **settings("dc2", "dc1"))
    for frontend in (dc1, dc2):
        for remote in frontend.remotes.datacenters.values():
            await eventually(lambda r=remote: not r.stale, timeout=15, message="followed")
    return TwoDatacenters(dc1, dc2, connect)
