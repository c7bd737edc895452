"""Faults on one side at a time (docs/reliability.md): L3, L7, W5, W6, O3, O4, E2."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from noderegistry.v1 import registry_pb2 as pb

from client_sdk import Node, RegistrationState, RegistryClient
from registry_service.store._etcdpb.rpc_pb2 import TxnRequest
from registry_service.store.etcd_client.kv import delete_op
from tests.chaos.conftest import FLEET
from tests.support.api import (
    KeepAliveStream,
    WatchRecorder,
    key_of,
    node,
    register,
    register_through_outage,
)
from tests.support.frontends import FrontendProcess
from tests.support.frontends import stub as stub_for
from tests.support.http import get, metric
from tests.support.proxy import TcpProxy
from tests.support.waiting import eventually

pytestmark = pytest.mark.chaos


async def test_l3_a_registration_lost_while_paused_is_never_silent(start_frontend, connect):
    """The node process is SIGSTOPped past its TTL; the registry removes it. When it wakes, its
    renewal gets NOT_FOUND, it re-registers (callback) with a higher incarnation, and watchers
    see REMOVED then ADDED, never the old incarnation revived."""
    frontend = await start_frontend()
    recorder = WatchRecorder(connect(frontend)).start()
    script = Path(__file__).with_name("node_process.py")
    process = subprocess.Popen(
        [sys.executable, str(script), "paused", frontend.address],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    try:
        assert await asyncio.to_thread(process.stdout.readline) == "registered 1\n"
        process.send_signal(signal.SIGSTOP)
        await recorder.wait_for(
            lambda r: any(c.type == pb.EVENT_TYPE_REMOVED for c in r.changes),
            timeout=15,
            message="REMOVED while paused",
        )
        process.send_signal(signal.SIGCONT)
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 20)
        assert line == "registered 2\n"
        await recorder.wait_for(lambda r: len(r.changes) == 3, message="ADDED again")
        assert [(c.type, c.incarnation) for c in recorder.changes] == [
            (pb.EVENT_TYPE_ADDED, 1),
            (pb.EVENT_TYPE_REMOVED, 1),
            (pb.EVENT_TYPE_ADDED, 2),
        ]
        assert recorder.changes[1].reason == pb.REMOVAL_REASON_EXPIRED
        assert not recorder.violations
    finally:
        process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait()
        process.stdout.close()
        await recorder.close()


async def test_l7_a_silent_datacenter_loses_at_most_its_budget(start_frontend, connect):
    """Every node of dc1 reaches the registry through one link, which is cut past the TTL: the
    budget removes at most max(2, 15%), the rest turn SUSPECT with the alarm raised; when the
    link returns, the suspects renew and are UP again with their incarnation."""
    frontend = await start_frontend(
        eviction_budget_ratio=0.15,
        eviction_budget_minimum=2,
        eviction_window_seconds=600.0,
        self_preservation_min_members=0,
    )
    admin = f"http://127.0.0.1:{frontend.admin.port}"
    recorder = WatchRecorder(connect(frontend)).start()
    host, port = frontend.address.rsplit(":", 1)
    link = TcpProxy(host, int(port))
    await link.start()
    try:
        async with RegistryClient(link.endpoint, config=FLEET) as client:
            fleet = [
                await client.register(
                    Node(id=f"n{i}", type="data", datacenter="dc1", address=f"10.0.0.{i}:1"),
                    ttl_seconds=3,
                )
                for i in range(10)
            ]
            await recorder.wait_for(lambda r: len(r.nodes) == 10)
            link.blackhole()
            await recorder.wait_for(
                lambda r: sum(n.status == pb.NODE_STATUS_SUSPECT for n in r.nodes.values()) == 8,
                timeout=20,
                message="8 suspects",
            )
            assert len(recorder.nodes) == 8
            assert await metric(admin, "noderegistry_self_preservation", datacenter="dc1") == 1
            link.restore()
            await eventually(
                lambda: all(r.state is RegistrationState.ACTIVE for r in fleet), timeout=30
            )
            await recorder.wait_for(
                lambda r: (
                    len(r.nodes) == 10
                    and all(n.status == pb.NODE_STATUS_UP for n in r.nodes.values())
                ),
                timeout=30,
                message="all UP again",
            )
            incarnations = sorted(r.incarnation for r in fleet)
            assert incarnations == [1] * 8 + [2] * 2  # the two evicted registered anew
            removed = [c for c in recorder.changes if c.type == pb.EVENT_TYPE_REMOVED]
            assert len(removed) == 2
            for registration in fleet:
                await registration.close()
    finally:
        await link.close()
        await recorder.close()


@pytest.mark.timeout(120)
async def test_w5_the_etcd_member_behind_the_watch_isolated(etcd_cluster, start_frontend, connect):
    """The member serving the frontend's watch is frozen (SIGSTOP: isolated, not dead): the
    frontend notices within 10 s, resumes on another member and its watcher misses nothing."""
    frontend = await start_frontend(
        tuple(m.endpoint for m in etcd_cluster), etcd_watch_stale_seconds=6.0
    )
    stub = connect(frontend)
    recorder = WatchRecorder(stub).start()
    await recorder.wait_for(lambda r: r.snapshots())
    (behind,) = [m for m in etcd_cluster if m.endpoint == frontend.client.connection.endpoint]
    behind.pause()
    try:
        await eventually(
            lambda: (
                frontend.client.connection.endpoint != behind.endpoint
                and frontend.client.watcher.connected
            ),
            timeout=10,
            message="watch moved to another member within 10 s",
        )
        # As a client does while a member is frozen: an UNAVAILABLE Register (its lease grant
        # landed on the frozen member) is sent again with the same idempotency key.
        registered = [
            await register_through_outage(stub, node(f"w{i}"))
            for i in range(5)
            if await eventually(lambda: frontend.client.watcher.connected)
        ]
        await recorder.wait_for(lambda r: len(r.changes) == 5, timeout=20)
        assert [(c.revision, c.id) for c in recorder.changes] == [
            (r.revision, r.node.id) for r in registered
        ]
        assert not recorder.violations
    finally:
        behind.resume()
        await recorder.close()


async def test_w6_a_subscriber_that_stops_reading_slows_no_one(start_frontend, connect):
    """One subscriber opens a stream and never reads: the others get every change, in order,
    without a resync; the stuck one's backlog stays bounded (it is collapsed into a resync)."""
    frontend = await start_frontend(watch_queue_messages=50)
    stub = connect(frontend)
    # No flow-control window growth: the stuck stream's buffers fill after a few messages.
    stuck_channel = grpc.aio.insecure_channel(
        frontend.address, options=[("grpc.http2.bdp_probe", 0)]
    )
    stuck = pb_stub(stuck_channel).WatchNodes(pb.WatchNodesRequest())
    readers = [WatchRecorder(stub).start() for _ in range(3)]
    await eventually(lambda: len(frontend.hub.subscriptions) == 4, message="4 subscribers")
    latencies: list[float] = []
    padding = {f"pad{k}": "p" * 1000 for k in range(15)}  # about 15 KB per event
    for i in range(300):
        started = asyncio.get_running_loop().time()
        await register(stub, node(f"x{i}", **padding), ttl=60)
        await readers[0].wait_for_node(f"x{i}")
        latencies.append(asyncio.get_running_loop().time() - started)
    for reader in readers:
        await reader.wait_for(lambda r: len(r.changes) == 300, timeout=20)
        assert not reader.violations and len(reader.snapshots()) == 1
    (stuck_one,) = [
        s for s in frontend.hub.subscriptions if s.sent_revision < frontend.hub.revision
    ]
    assert stuck_one.resync_pending and stuck_one.backlog <= 50  # bounded, collapsed
    latencies.sort()
    print(f"W6: register -> reader p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f} ms")
    stuck.cancel()
    await stuck_channel.close()
    for reader in readers:
        await reader.close()


def pb_stub(channel: grpc.aio.Channel):
    from noderegistry.v1 import registry_pb2_grpc

    return registry_pb2_grpc.RegistryStub(channel)


@pytest.mark.timeout(120)
async def test_o3_register_retried_after_a_crash_between_commit_and_reply(
    etcd, spawn_frontend, start_frontend, connect
):
    """The first frontend dies right after etcd commits the registration (failpoint), before it
    answers. The client retries with the same idempotency key on another frontend and gets the
    same registration: same incarnation, same token, one ADDED."""
    os.environ["REGISTRY_FAILPOINTS"] = "register.after_commit=exit"
    try:
        doomed: FrontendProcess = await spawn_frontend(etcd.endpoint)
    finally:
        del os.environ["REGISTRY_FAILPOINTS"]
    survivor = connect(await start_frontend())
    recorder = WatchRecorder(survivor).start()
    channel, doomed_stub = stub_for(doomed.address)
    request = pb.RegisterRequest(node=node("crash"), ttl_seconds=30, idempotency_key="once")
    with pytest.raises(grpc.aio.AioRpcError) as lost:
        await doomed_stub.Register(request, timeout=10)
    assert lost.value.code() == grpc.StatusCode.UNAVAILABLE  # the outcome is unknown to it
    await channel.close()
    await recorder.wait_for_node("crash")  # ... but it committed
    retried = await survivor.Register(request)
    again = await survivor.Register(request)
    assert retried.node.incarnation == again.node.incarnation == 1
    assert retried.token == again.token
    keepalive = KeepAliveStream(survivor)
    assert (await keepalive.renew(key_of(retried.node), retried.token)).code == 0
    await keepalive.close()
    assert [c.type for c in recorder.changes] == [pb.EVENT_TYPE_ADDED]
    await recorder.close()


async def test_o4_replays_of_an_older_incarnation_change_nothing(
    start_frontend, connect, etcd_client, cluster
):
    stub = connect(await start_frontend())
    old_request = pb.RegisterRequest(node=node("replayed"), ttl_seconds=30, idempotency_key="old")
    old = await stub.Register(old_request)
    await stub.Deregister(pb.DeregisterRequest(key=key_of(old.node), token=old.token))
    new = await register(stub, node("replayed"), ttl=30, idempotency_key="new")
    assert new.node.incarnation == 2
    before = await etcd_client.kv.current_revision(f"/noderegistry/{cluster}/".encode())

    with pytest.raises(grpc.aio.AioRpcError) as replayed:
        await stub.Register(old_request)
    assert replayed.value.code() == grpc.StatusCode.ALREADY_EXISTS
    keepalive = KeepAliveStream(stub)
    assert (
        await keepalive.renew(key_of(old.node), old.token)
    ).code == grpc.StatusCode.NOT_FOUND.value[0]
    await keepalive.close()
    with pytest.raises(grpc.aio.AioRpcError) as removal:
        await stub.Deregister(pb.DeregisterRequest(key=key_of(old.node), token=old.token))
    assert removal.value.code() == grpc.StatusCode.NOT_FOUND
    update = pb.RegisterRequest(
        node=node("replayed", role="hijack"), ttl_seconds=30, token=old.token
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Register(update)
    assert await etcd_client.kv.current_revision(f"/noderegistry/{cluster}/".encode()) == before
    nodes = await stub.GetNodes(pb.GetNodesRequest())
    (stored,) = [n for dc in nodes.datacenters for n in dc.nodes]
    assert stored.incarnation == 2 and "role" not in stored.metadata


async def _evictor(admin: str) -> dict[str, object]:
    status, body = await get(f"{admin}/admin/evictor")
    assert status == 200, body
    return body


def _admin(frontend: FrontendProcess) -> str:
    return frontend.ready_line.split("admin ")[1].split(")")[0]


async def _election_keys(rig_client, cluster: str) -> list:
    _, kvs = await rig_client.kv.range_prefix(f"/noderegistry/{cluster}/election/evictor/".encode())
    return sorted(kvs, key=lambda kv: kv.create_revision)


async def test_e2_a_deposed_evictor_knows_at_once_and_another_takes_over(rig, record_property):
    """E2 (issue 22, item 9; D84).
    1. two frontends on the three members, their election leases of 30 s renewed every 10 s (so
       that the renewals alone could take up to 10 s to tell); one of them leads eviction;
    2. its election lease is revoked (etcd deletes its key): within 3 s it says it no longer
       leads, and the other one does;
    3. a node that stops renewing is removed (EXPIRED) by the new leader; the deposed one
       removes nothing;
    4. the new leader's key is deleted while its lease lives on: it steps down at once too,
       stands again on a new lease, and one of the two leads again."""
    r = await rig(frontends=2, evictor_lease_ttl_seconds=30)
    admins = {f.address: _admin(f) for f in r.frontends}

    async def leaders() -> list[str]:
        return [a for a, admin in admins.items() if (await _evictor(admin))["leader"]]

    await eventually(lambda: _one(leaders()), timeout=30, message="one evictor")
    (first,) = await leaders()
    (second,) = [a for a in admins if a != first]
    leading_key = (await _election_keys(r.client, r.cluster))[0]

    await r.client.lease.revoke(leading_key.lease)
    revoked_at = time.monotonic()
    await eventually(
        lambda: _leads_alone(leaders(), second), timeout=3, message="handed over at once"
    )
    record_property("handed_over_after_revoke_seconds", time.monotonic() - revoked_at)

    channel, stub = stub_for(second)
    try:
        watcher = WatchRecorder(stub).start()
        await register(stub, node("orphan"), ttl=3)  # never renewed
        await watcher.wait_for_node("orphan")
        await watcher.wait_for_node("orphan", present=False, timeout=15)
        assert watcher.changes[-1].reason == pb.REMOVAL_REASON_EXPIRED
        await watcher.close()
    finally:
        await channel.close()
    assert (await _evictor(admins[second]))["removed"] == {"EXPIRED": 1}
    assert (await _evictor(admins[first]))["removed"] == {}, "the deposed one removed nothing"

    new_key = (await _election_keys(r.client, r.cluster))[0]  # the new leader's
    assert new_key.key != leading_key.key
    await r.client.kv.txn(TxnRequest(success=[delete_op(new_key.key)]))
    deleted_at = time.monotonic()
    await eventually(lambda: _steps_down(admins[second]), timeout=3, message="stepped down at once")
    record_property("stepped_down_after_key_deleted_seconds", time.monotonic() - deleted_at)
    await eventually(lambda: _one(leaders()), timeout=30, message="one evictor again")
    keys = await _election_keys(r.client, r.cluster)
    assert len(keys) == 2 and new_key.key not in {kv.key for kv in keys}


async def _one(leaders) -> bool:
    return len(await leaders) == 1


async def _leads_alone(leaders, address: str) -> bool:
    return await leaders == [address]


async def _steps_down(admin: str) -> bool:
    return not (await _evictor(admin))["leader"]
