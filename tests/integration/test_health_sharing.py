"""The live frontends share the probes by rendezvous hashing of node keys over the frontends
announced in etcd (docs/design.md §13): each node is probed by one frontend at a time; a killed
frontend's nodes move to the others within one announcement TTL; a frontend that joins takes its
share, and no node is probed by two frontends for long. Frontends as child processes (SIGKILL),
real etcd, one gRPC health server on loopback that records which frontend probed what (each
frontend names itself in its user agent)."""

from __future__ import annotations

import collections
import time

import pytest

from client_sdk import Check, Node, RegistryClient
from registry_service.store.control_records import decode_announcement
from tests.support.health_servers import GrpcHealthServer
from tests.support.sdk import FAST
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

TTL = 3  # frontend_lease_ttl_seconds: a killed frontend's announcement goes within it
INTERVAL = 0.5
NODES = 24
SETTINGS = {"frontend_lease_ttl_seconds": TTL, "health_check_min_interval_seconds": 0.1}
AGENT = "noderegistry-health-check/"


async def _announced(etcd_client, cluster: str) -> dict[int, str]:
    """pid -> frontend id, as the frontends announce themselves in etcd."""
    _, kvs = await etcd_client.kv.range_prefix(f"/noderegistry/{cluster}/frontends/".encode())
    announcements = [decode_announcement(kv.value) for kv in kvs]
    return {announcement.pid: announcement.id for announcement in announcements}


def _prober(user_agent: str) -> str:
    return user_agent.split(AGENT, 1)[1].split()[0] if AGENT in user_agent else ""


def _probers(service: GrpcHealthServer, since: float) -> dict[str, collections.Counter[str]]:
    """node -> how often each frontend probed it since `since` (monotonic)."""
    seen: dict[str, collections.Counter[str]] = {
        f"n{i}": collections.Counter() for i in range(NODES)
    }
    for probe in service.probes.seen:
        if probe.at >= since and probe.what in seen:
            seen[probe.what][_prober(probe.user_agent)] += 1
    return seen


async def _window(service: GrpcHealthServer, probes_each: int = 3) -> dict[str, set[str]]:
    """Who probed each node in a window (from now) in which every node was probed
    `probes_each` times; no node more often than once an interval."""
    start = time.monotonic()
    await eventually(
        lambda: all(
            sum(counts.values()) >= probes_each for counts in _probers(service, start).values()
        ),
        timeout=probes_each * INTERVAL + 5,
        message="every node probed in the window",
    )
    window = time.monotonic() - start
    seen = _probers(service, start)
    for node, counts in seen.items():
        # One frontend at its interval, not two: at most one probe per interval (and the edges).
        assert sum(counts.values()) <= window / INTERVAL + 2, (node, counts)
    return {node: set(counts) for node, counts in seen.items()}


async def _settled(service: GrpcHealthServer, timeout: float = 6.0) -> dict[str, set[str]]:
    """The owners once every node is probed by one frontend only: a window in which that holds
    comes within `timeout` (a handover may overlap for a moment, never for long)."""
    deadline = time.monotonic() + timeout
    while True:
        owners = await _window(service)
        if all(len(frontends) == 1 for frontends in owners.values()):
            return owners
        assert time.monotonic() < deadline, f"probed by two frontends for long: {owners}"


async def test_a_killed_frontends_probes_move_within_one_ttl_and_a_new_one_takes_its_share(
    etcd, spawn_frontend, cluster, etcd_client
):
    service = await GrpcHealthServer().start()
    for i in range(NODES):
        await service.set(f"n{i}", True)
    a = await spawn_frontend(etcd.endpoint, **SETTINGS)
    b = await spawn_frontend(etcd.endpoint, **SETTINGS)
    await eventually(lambda: _count(etcd_client, cluster, 2), message="both announced")
    ids = await _announced(etcd_client, cluster)
    a_id, b_id = ids[a.process.pid], ids[b.process.pid]
    async with RegistryClient(f"{a.address},{b.address}", config=FAST) as client:
        for i in range(NODES):
            check = Check.grpc(f"n{i}", port=service.port, interval_seconds=INTERVAL)
            await client.register(
                Node(f"n{i}", "web", "dc1", f"127.0.0.1:{9000 + i}"), ttl_seconds=30, checks=[check]
            )

        # 1. Shared: one frontend per node, both frontends with a share.
        owners = await _settled(service)
        assert set().union(*owners.values()) == {a_id, b_id}
        a_share = [node for node, frontends in owners.items() if frontends == {a_id}]

        # 2. A is killed: its nodes are probed by B within one TTL (then one interval's jitter
        # and the look that follows the announcement's removal).
        a.kill()
        killed_at = time.monotonic()
        await eventually(
            lambda: all(_probers(service, killed_at)[node][b_id] for node in a_share),
            timeout=TTL + 2 * INTERVAL + 1,
            message="A's nodes probed by B",
        )
        assert set().union(*(await _settled(service)).values()) == {b_id}

        # 3. C joins: it takes a share; again one frontend per node.
        c = await spawn_frontend(etcd.endpoint, **SETTINGS)
        await eventually(lambda: _count(etcd_client, cluster, 2), message="C announced")
        c_id = (await _announced(etcd_client, cluster))[c.process.pid]
        await eventually(
            lambda: any(counts[c_id] for counts in _probers(service, killed_at).values()),
            timeout=5,
            message="C probes its share",
        )
        owners = await _settled(service)
        assert set().union(*owners.values()) == {b_id, c_id}
    await service.stop()


async def _count(etcd_client, cluster: str, expected: int) -> bool:
    return len(await _announced(etcd_client, cluster)) == expected
