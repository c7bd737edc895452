"""Registrations of one client session share one etcd lease per TTL (D73, L12, L13), against real
etcd: one etcd renewal per client and tick, a Register in a known session is one etcd
transaction, a client's first Registers sent at once open the lease once, the session is found
in etcd by another frontend, a Deregister leaves the lease to the others, `detach()` moves a node
to a lease of its own, the session is the unit of liveness, and a lapsed session lease comes back
as one, having lost at most the eviction budget."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from noderegistry.v1 import registry_pb2 as pb

from client_sdk import ClientConfig, Node, RegistrationState, RegistryClient
from registry_service.store.etcd_client import EtcdClient, EtcdConfig
from tests.support.api import WatchRecorder, key_of, node, register
from tests.support.etcd_metrics import metric as etcd_metric
from tests.support.http import metric
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
FAST = ClientConfig(call_timeout_seconds=5, retry_initial_seconds=0.05, retry_max_seconds=0.5)


def data_node(node_id: str) -> Node:
    return Node(id=node_id, type="data", datacenter="dc1", address="10.0.0.1:7000")


async def member_leases(etcd_client: Any, cluster: str) -> dict[str, int]:
    """Each member record's lease, by node id."""
    _, kvs = await etcd_client.kv.range_prefix(f"/noderegistry/{cluster}/members/".encode())
    return {json.loads(kv.value)["id"]: int(json.loads(kv.value)["lease"], 16) for kv in kvs}


async def session_keys(etcd_client: Any, cluster: str) -> dict[str, int]:
    """Each session key (`<session>/<ttl>`) and the lease it lives on."""
    prefix = f"/noderegistry/{cluster}/sessions/".encode()
    _, kvs = await etcd_client.kv.range_prefix(prefix)
    return {kv.key[len(prefix) :].decode(): int(kv.lease) for kv in kvs}


def etcd_calls(endpoint: str, method: str) -> float:
    return etcd_metric(endpoint, "grpc_server_handled_total", grpc_method=method)


async def test_a_clients_registrations_share_one_lease_and_one_etcd_renewal_per_tick(
    own_etcd, start_frontend, etcd_client, cluster
):
    frontend = await start_frontend(own_etcd.endpoint, keepalive_coalesce_seconds=0)
    etcd = EtcdClient(EtcdConfig(endpoints=(own_etcd.endpoint,)))
    try:
        async with RegistryClient(frontend.address, config=FAST) as client:
            first = await client.register(data_node("s0"), ttl_seconds=3)
            grants = etcd_calls(own_etcd.endpoint, "LeaseGrant")
            txns = etcd_calls(own_etcd.endpoint, "Txn")
            others = [await client.register(data_node(f"s{i}"), ttl_seconds=3) for i in range(1, 8)]
            # In a known session, a Register is one etcd transaction and no lease.
            assert etcd_calls(own_etcd.endpoint, "LeaseGrant") == grants
            assert etcd_calls(own_etcd.endpoint, "Txn") - txns == 7
            leases = await member_leases(etcd, cluster)
            assert len(set(leases.values())) == 1
            (lease,) = set(leases.values())
            assert list((await session_keys(etcd, cluster)).values()) == [lease]
            # Renewed together: one etcd keepalive per tick for the eight of them.
            renewer = frontend.client.renewer
            sent, renewed = renewer.requests_sent, await _ok_renewals(frontend)

            async def three_ticks() -> bool:
                return await _ok_renewals(frontend) >= renewed + 3 * 8

            await eventually(three_ticks, timeout=15, message="three rounds of renewals")
            ticks = (await _ok_renewals(frontend) - renewed) / 8
            assert renewer.requests_sent - sent <= ticks + 1  # one per tick, not one per node
            assert all(r.reregistrations == 0 for r in [first, *others])
    finally:
        await etcd.close()


async def test_a_clients_first_registers_sent_at_once_open_one_lease(
    own_etcd, start_frontend, cluster
):
    """A client that starts registers its nodes at once (a fleet's restart): the first Register
    of the session grants its lease, the others wait for it in the frontend and are one etcd
    transaction each. Before, each granted a lease, and all but one lost the race for the
    session's key and went round again."""
    frontend = await start_frontend(own_etcd.endpoint)
    await eventually(lambda: frontend.evictor.status.leader, message="it leads eviction")
    etcd = EtcdClient(EtcdConfig(endpoints=(own_etcd.endpoint,)))
    try:
        async with (
            RegistryClient(frontend.address, config=FAST) as other,
            RegistryClient(frontend.address, config=FAST) as client,
        ):
            await other.register(data_node("other"), ttl_seconds=3)  # the audit's lease too
            grants = etcd_calls(own_etcd.endpoint, "LeaseGrant")
            txns = etcd_calls(own_etcd.endpoint, "Txn")
            ids = [f"b{i}" for i in range(24)]
            await asyncio.gather(*(client.register(data_node(i), ttl_seconds=3) for i in ids))
            assert etcd_calls(own_etcd.endpoint, "LeaseGrant") - grants == 1
            assert etcd_calls(own_etcd.endpoint, "Txn") - txns == len(ids)
            leases = await member_leases(etcd, cluster)
            assert len({leases[i] for i in ids}) == 1 and leases["other"] != leases["b0"]
    finally:
        await etcd.close()


async def _ok_renewals(frontend: Any) -> float:
    admin = f"http://127.0.0.1:{frontend.admin.port}"
    return await metric(admin, "noderegistry_keepalives_total", result="OK")


async def test_a_deregister_leaves_the_lease_to_the_sessions_other_registrations(
    start_frontend, etcd_client, cluster
):
    frontend = await start_frontend()
    async with RegistryClient(frontend.address, config=FAST) as client:
        leaving = await client.register(data_node("leaving"), ttl_seconds=3)
        staying = await client.register(data_node("staying"), ttl_seconds=3)
        (lease,) = set((await member_leases(etcd_client, cluster)).values())
        await leaving.close()
        assert set(await member_leases(etcd_client, cluster)) == {"staying"}
        assert await etcd_client.lease.time_to_live(lease) > 0
        # Six renewals later (two TTLs) the one left is still renewed, on the same lease.
        renewed = await _ok_renewals(frontend)

        async def two_ttls_renewed() -> bool:
            return await _ok_renewals(frontend) >= renewed + 6

        await eventually(two_ttls_renewed, timeout=15, message="two TTLs of renewals")
        assert (staying.incarnation, staying.reregistrations) == (1, 0)
        assert set((await member_leases(etcd_client, cluster)).values()) == {lease}
        assert await etcd_client.lease.time_to_live(lease) > 0


async def test_detach_moves_a_node_to_its_own_lease_and_its_ttl_ends_it_alone(
    start_frontend, etcd_client, cluster
):
    frontend = await start_frontend()
    async with RegistryClient(frontend.address, config=FAST) as client:
        detached = await client.register(data_node("detached"), ttl_seconds=3)
        kept = await client.register(data_node("kept"), ttl_seconds=3)
        shared = (await member_leases(etcd_client, cluster))["kept"]
        token = await detached.detach()
        assert token
        leases = await member_leases(etcd_client, cluster)
        assert leases["detached"] != shared and leases["kept"] == shared

        async def detached_gone() -> bool:
            return "detached" not in await member_leases(etcd_client, cluster)

        await eventually(detached_gone, timeout=15, message="the detached node expired")
        assert (kept.incarnation, kept.reregistrations) == (1, 0)
        assert "kept" in await member_leases(etcd_client, cluster)


async def test_a_session_spans_frontends_its_lease_found_in_etcd(
    start_frontend, etcd_client, cluster
):
    first, second = await start_frontend(), await start_frontend()
    async with RegistryClient([first.address, second.address], config=FAST) as client:
        await client.register(data_node("on-first"), ttl_seconds=3)
        # The client fails over (as when its frontend dies): the next Register goes to the
        # second frontend, which has never seen the session.
        client._transport.fail_over(first.address)
        await client.register(data_node("on-second"), ttl_seconds=3)
        leases = await member_leases(etcd_client, cluster)
        assert leases["on-first"] == leases["on-second"]
        assert len(await session_keys(etcd_client, cluster)) == 1


async def test_a_lapsed_session_lease_comes_back_as_one_lease_for_all_its_registrations(
    start_frontend, etcd_client, cluster
):
    """Held members (the evictor only reports) whose session lease was revoked: their renewals
    restore them UP on one new lease for the session, not one lease each (D20, D73)."""
    frontend = await start_frontend(evictor_dry_run=True)
    async with RegistryClient(frontend.address, config=FAST) as client:
        registrations = [await client.register(data_node(f"l{i}"), ttl_seconds=3) for i in range(4)]
        (old,) = set((await member_leases(etcd_client, cluster)).values())
        await etcd_client.lease.revoke(old)

        async def moved() -> bool:
            leases = set((await member_leases(etcd_client, cluster)).values())
            return len(leases) == 1 and old not in leases

        await eventually(moved, timeout=15, message="restored on one new lease")
        assert all(r.incarnation == 1 and r.reregistrations == 0 for r in registrations)
        (new,) = set((await member_leases(etcd_client, cluster)).values())
        assert list((await session_keys(etcd_client, cluster)).values()) == [new]


async def test_the_unit_of_liveness_in_a_session_is_the_session(start_frontend, connect):
    """L2 per node holds for registrations on leases of their own. Two registrations of one
    session (a raw client: the SDK never stops renewing one node of a session while others go
    on) ride on one lease: the one left silent stays while the other renews it, and both are
    REMOVED (EXPIRED) within TTL + 2 s once neither renews."""
    frontend = await start_frontend()
    stub = connect(frontend)
    watcher = WatchRecorder(stub).start()
    renewed = await register(stub, node("renewed"), ttl=3, session="raw-session")
    silent = await register(stub, node("silent"), ttl=3, session="raw-session")
    assert renewed.session_lease and silent.session_lease
    await watcher.wait_for_node("silent")
    call = stub.KeepAlive()
    for _ in range(6):  # two TTLs of renewals of `renewed` only, at TTL/3
        await call.write(pb.KeepAliveRequest(key=key_of(renewed.node), token=renewed.token))
        assert (await asyncio.wait_for(call.read(), 10)).code == 0
        await asyncio.sleep(1)  # the client's renewal interval (TTL/3), not a wait for a state
    assert "silent" in watcher.nodes  # renewed with its session's lease
    await call.done_writing()
    await watcher.wait_for_node("silent", present=False, timeout=3 + 2)
    await watcher.wait_for_node("renewed", present=False, timeout=3 + 2)
    removed = [c for c in watcher.changes if c.type == pb.EVENT_TYPE_REMOVED]
    assert sorted((c.id, c.reason) for c in removed) == [
        ("renewed", pb.REMOVAL_REASON_EXPIRED),
        ("silent", pb.REMOVAL_REASON_EXPIRED),
    ]
    await watcher.close()


async def test_a_lapsed_session_loses_at_most_the_eviction_budget_and_the_rest_come_back(
    start_frontend, connect, etcd_client, cluster
):
    """L12: the blast radius of a shared lease. When a client session's lease lapses (here
    revoked; in life its renewals missed etcd for a whole TTL), every registration of the
    session with that TTL expires at once. The eviction budget bounds the removals (two per
    window here); the others are held SUSPECT and come back UP, first incarnation, on one new
    lease of the session at its next renewals; the removed ones are registered anew by the SDK."""
    frontend = await start_frontend(
        eviction_budget_ratio=0.0,
        eviction_budget_minimum=2,
        eviction_budget_type_minimum=2,
        eviction_window_seconds=600.0,
        evictor_reconcile_seconds=0.3,
    )
    stub = connect(frontend)
    watcher = WatchRecorder(stub).start()
    async with RegistryClient(frontend.address, config=FAST) as client:
        registrations = [
            await client.register(data_node(f"p{i}"), ttl_seconds=3) for i in range(10)
        ]
        (old,) = set((await member_leases(etcd_client, cluster)).values())
        await etcd_client.lease.revoke(old)

        async def all_back() -> bool:
            leases = set((await member_leases(etcd_client, cluster)).values())
            active = all(r.state is RegistrationState.ACTIVE for r in registrations)
            # A removed node's registration is ACTIVE until the SDK hears NOT_FOUND at its next
            # renewal: it is back once registered anew.
            removed = {c.id for c in watcher.changes if c.type == pb.EVENT_TYPE_REMOVED}
            anew = all(r.incarnation > 1 for r in registrations if r.node.id in removed)
            return active and anew and len(leases) == 1 and old not in leases

        await eventually(all_back, timeout=30, message="the session back on one new lease")
        removed = [c.id for c in watcher.changes if c.type == pb.EVENT_TYPE_REMOVED]
        anew = sorted(r.node.id for r in registrations if r.incarnation > 1)
        print(f"removed {removed}, registered anew {anew}")  # printed, not asserted
        assert len(removed) <= 2  # the budget: never the whole session
        assert sorted(removed) == anew  # each removed one registered anew, the rest restored
        assert len(registrations) - len(anew) >= 8
    await watcher.close()
