"""Stateless frontends on one etcd: any serves any client; eviction survives a dead leader."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from noderegistry.v1 import registry_pb2 as pb

from tests.support.api import KeepAliveStream, WatchRecorder, key_of, node, node_ids, register
from tests.support.frontends import stub as stub_for
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_registered_on_one_frontend_and_renewed_on_another_stays(start_frontend, connect):
    stub_a = connect(await start_frontend())
    stub_b = connect(await start_frontend())
    registered = await register(stub_a, node("roamer"), ttl=3)
    stream = KeepAliveStream(stub_b)
    watcher = WatchRecorder(stub_a).start()
    try:
        await watcher.wait_for_node("roamer")
        deadline = time.monotonic() + 2 * 3 + 1
        while time.monotonic() < deadline:
            answer = await stream.renew(key_of(registered.node), registered.token)
            assert answer.code == 0, answer.message
            await asyncio.sleep(1)  # the renewal period a client would use (TTL/3)
        assert "roamer" in await node_ids(stub_a)
        assert "roamer" in await node_ids(stub_b)
        assert [c.type for c in watcher.changes] == []
    finally:
        await stream.close()
        await watcher.close()


async def test_a_renewal_right_after_registering_elsewhere_is_accepted(start_frontend, connect):
    """Frontend B may not have seen the registration through its watch yet: it reads etcd."""
    stub_a = connect(await start_frontend())
    stub_b = connect(await start_frontend())
    stream = KeepAliveStream(stub_b)
    try:
        for i in range(20):
            registered = await register(stub_a, node(f"fresh{i}"), ttl=10)
            answer = await stream.renew(key_of(registered.node), registered.token)
            assert answer.code == 0, answer.message
    finally:
        await stream.close()


async def test_watchers_on_every_frontend_see_the_same_sequence(start_frontend, connect):
    stubs = [connect(await start_frontend()) for _ in range(3)]
    watchers = [WatchRecorder(stub).start() for stub in stubs]
    for watcher in watchers:
        await watcher.wait_for(lambda r: r.snapshots())
    registrations = []
    for i in range(12):  # writes spread over all frontends
        registrations.append(
            await register(stubs[i % 3], node(f"n{i}", "data", f"dc{i % 2}"), ttl=30)
        )
    for registered in registrations[::3]:
        await stubs[1].Deregister(
            pb.DeregisterRequest(key=key_of(registered.node), token=registered.token)
        )

    for watcher in watchers:
        await watcher.wait_for(lambda r: len(r.changes) == 16)
    sequences = [[(c.revision, c.type, c.id, c.reason) for c in w.changes] for w in watchers]
    assert sequences[0] == sequences[1] == sequences[2]
    assert all(not w.violations for w in watchers)
    for watcher in watchers:
        await watcher.close()


async def _evictor_pid(etcd_client, cluster: str) -> int:
    """The pid of the frontend that leads the evictor election (lowest create revision)."""
    _, kvs = await etcd_client.kv.range_prefix(
        f"/noderegistry/{cluster}/election/evictor/".encode()
    )
    leader = min(kvs, key=lambda kv: kv.create_revision)
    return int(leader.value.decode().split("-")[-2])  # frontend id: host-pid-random


async def test_killing_the_evictors_frontend_hands_eviction_to_another(
    etcd, spawn_frontend, etcd_client, cluster
):
    """1. two frontend processes; etcd's election keys say which one is the evictor.
    2. SIGKILL the evictor; on the survivor, a node registers and then stops renewing.
    3. the survivor takes over the election when the dead one's lease ends, and removes the node."""
    processes = [await spawn_frontend(etcd.endpoint) for _ in range(2)]
    await eventually(lambda: _candidates(etcd_client, cluster, 2), message="both candidates")
    leader_pid = await _evictor_pid(etcd_client, cluster)
    (leader,) = [p for p in processes if p.process.pid == leader_pid]
    (survivor,) = [p for p in processes if p is not leader]
    channel, stub = stub_for(survivor.address)
    try:
        leader.kill()
        watcher = WatchRecorder(stub).start()
        await register(stub, node("orphan"), ttl=3)
        await watcher.wait_for_node("orphan")

        # Election lease 2 s + node TTL 3 s + reaction time.
        await watcher.wait_for_node("orphan", present=False, timeout=2 + 3 + 3)
        assert watcher.changes[-1].reason == pb.REMOVAL_REASON_EXPIRED
        assert await _evictor_pid(etcd_client, cluster) == survivor.process.pid
        await watcher.close()
    finally:
        await channel.close()


async def _candidates(etcd_client, cluster: str, count: int) -> bool:
    _, kvs = await etcd_client.kv.range_prefix(
        f"/noderegistry/{cluster}/election/evictor/".encode()
    )
    return len(kvs) == count


async def test_frontend_sigterm_ends_streams_with_unavailable_and_keeps_registrations(
    etcd, spawn_frontend, start_frontend, connect
):
    doomed = await spawn_frontend(etcd.endpoint)
    survivor = connect(await start_frontend())
    channel, stub = stub_for(doomed.address)
    try:
        registered = await register(stub, node("steady"), ttl=30)
        watcher = WatchRecorder(stub).start()
        stream = KeepAliveStream(stub)
        await watcher.wait_for_node("steady")
        assert (await stream.renew(key_of(registered.node), registered.token)).code == 0

        assert await asyncio.to_thread(doomed.terminate) == 0

        await eventually(lambda: watcher.error is not None, timeout=10)
        assert watcher.error.code() == grpc.StatusCode.UNAVAILABLE
        assert "steady" in await node_ids(survivor)
        assert [c.type for c in watcher.changes] == []
        await stream.close()
        await watcher.close()
    finally:
        await channel.close()
