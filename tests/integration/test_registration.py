"""Register, KeepAlive, Deregister and expiry, through the gRPC API against a real etcd."""

from __future__ import annotations

import asyncio
import json
import time

import grpc
import pytest
from noderegistry.v1 import registry_pb2 as pb

from tests.support.api import KeepAliveStream, WatchRecorder, key_of, node, node_ids, register

pytestmark = pytest.mark.integration


async def test_registered_node_is_listed_by_get_nodes(start_frontend, connect):
    stub = connect(await start_frontend())
    response = await register(stub, node("d1", role="primary"), ttl=10)

    assert response.node.incarnation == 1
    assert response.ttl_seconds == 10
    assert response.token
    listed = await stub.GetNodes(pb.GetNodesRequest())
    assert [dc.datacenter for dc in listed.datacenters] == ["dc1"]
    (stored,) = listed.datacenters[0].nodes
    assert (stored.id, stored.address, dict(stored.metadata)) == (
        "d1",
        "d1.example:7000",
        {"role": "primary"},
    )
    assert stored.status == pb.NODE_STATUS_UP
    assert listed.revision >= response.revision


async def test_zero_ttl_gets_the_default_and_the_granted_ttl_is_echoed(start_frontend, connect):
    stub = connect(await start_frontend(ttl_default_seconds=7))
    response = await register(stub, node("d1"), ttl=0)
    assert response.ttl_seconds == 7


async def test_keepalive_keeps_a_node_past_three_ttls(start_frontend, connect):
    stub = connect(await start_frontend())
    registered = await register(stub, node("kept"), ttl=3)
    stream = KeepAliveStream(stub)
    watcher = WatchRecorder(stub).start()
    await watcher.wait_for_node("kept")
    try:
        deadline = time.monotonic() + 3 * 3 + 1
        renewals = 0
        while time.monotonic() < deadline:
            answer = await stream.renew(key_of(registered.node), registered.token)
            assert answer.code == 0, answer.message
            assert 1 <= answer.ttl_seconds <= 3
            renewals += 1
            await asyncio.sleep(1)  # the renewal period a client would use (TTL/3)
        assert renewals >= 9
        assert "kept" in await node_ids(stub)
        assert [c.type for c in watcher.changes] == []  # no REMOVED, no re-ADDED
    finally:
        await stream.close()
        await watcher.close()


async def test_node_that_stops_renewing_is_removed_as_expired(start_frontend, connect):
    frontend = await start_frontend()
    stub = connect(frontend)
    watcher = WatchRecorder(stub).start()
    other = await register(stub, node("other"), ttl=30)
    await register(stub, node("silent"), ttl=3)
    await watcher.wait_for_node("silent")

    # The promise: gone from every watcher and from GetNodes within TTL + 2 s of the last renewal.
    await watcher.wait_for_node("silent", present=False, timeout=3 + 2)
    removed = [c for c in watcher.changes if c.type == pb.EVENT_TYPE_REMOVED]
    assert [(c.id, c.reason) for c in removed] == [("silent", pb.REMOVAL_REASON_EXPIRED)]
    assert await node_ids(stub) == {other.node.id}
    assert not watcher.violations
    await watcher.close()


async def test_deregister_removes_at_once_with_reason(start_frontend, connect):
    stub = connect(await start_frontend())
    watcher = WatchRecorder(stub).start()
    registered = await register(stub, node("leaving"), ttl=60)
    await watcher.wait_for_node("leaving")

    await stub.Deregister(pb.DeregisterRequest(key=key_of(registered.node), token=registered.token))

    assert "leaving" not in await node_ids(stub)
    await watcher.wait_for_node("leaving", present=False, timeout=5)
    assert watcher.changes[-1].reason == pb.REMOVAL_REASON_DEREGISTERED
    await watcher.close()


async def test_reregister_after_expiry_gets_the_next_incarnation(start_frontend, connect):
    stub = connect(await start_frontend())
    watcher = WatchRecorder(stub).start()
    first = await register(stub, node("phoenix"), ttl=3)
    await watcher.wait_for_node("phoenix")
    await watcher.wait_for_node("phoenix", present=False, timeout=10)

    second = await register(stub, node("phoenix"), ttl=3)

    assert second.node.incarnation == first.node.incarnation + 1
    assert second.token != first.token
    await watcher.wait_for_node("phoenix")
    assert [(c.type, c.incarnation) for c in watcher.changes] == [
        (pb.EVENT_TYPE_ADDED, 1),
        (pb.EVENT_TYPE_REMOVED, 1),
        (pb.EVENT_TYPE_ADDED, 2),
    ]
    await watcher.close()


async def test_lease_revoked_behind_its_back_then_reregistered_is_removed_then_added(
    start_frontend, connect, etcd_client, cluster
):
    """The live key vanishes (lease revoked in etcd) and the node re-registers at once: whether
    the evictor or the new Register removes the stale record, watchers see the old incarnation
    REMOVED (EXPIRED) and then the new one ADDED, never the old one revived."""
    stub = connect(await start_frontend())
    watcher = WatchRecorder(stub).start()
    first = await register(stub, node("quick"), ttl=60)
    await watcher.wait_for_node("quick")
    _, kvs = await etcd_client.kv.range_prefix(
        f"/noderegistry/{cluster}/members/dc1/data/quick".encode()
    )
    await etcd_client.lease.revoke(int(json.loads(kvs[0].value)["lease"], 16))

    second = await register(stub, node("quick"), ttl=60)

    assert second.node.incarnation == first.node.incarnation + 1
    await watcher.wait_for(lambda r: len(r.changes) == 3)
    assert [(c.type, c.incarnation, c.reason) for c in watcher.changes] == [
        (pb.EVENT_TYPE_ADDED, 1, 0),
        (pb.EVENT_TYPE_REMOVED, 1, pb.REMOVAL_REASON_EXPIRED),
        (pb.EVENT_TYPE_ADDED, 2, 0),
    ]
    await watcher.close()


async def test_retry_with_the_same_idempotency_key_returns_the_same_registration(
    start_frontend, connect
):
    stub = connect(await start_frontend())
    first = await register(stub, node("retry"), ttl=10, idempotency_key="attempt-1")
    again = await register(stub, node("retry"), ttl=10, idempotency_key="attempt-1")

    assert again.token == first.token
    assert again.node.incarnation == first.node.incarnation
    assert again.revision == first.revision


async def test_another_owner_gets_already_exists_and_changes_nothing(
    start_frontend, connect, etcd_client
):
    stub = connect(await start_frontend())
    await register(stub, node("taken"), ttl=10)
    revision = await etcd_client.kv.current_revision(b"/")

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await register(stub, node("taken"), ttl=10)

    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "another owner" in raised.value.details()
    assert await etcd_client.kv.current_revision(b"/") == revision


async def test_owner_updates_address_metadata_and_status_with_its_token(start_frontend, connect):
    stub = connect(await start_frontend())
    watcher = WatchRecorder(stub).start()
    first = await register(stub, node("moving"), ttl=10)
    await watcher.wait_for_node("moving")
    changed = node("moving", zone="b")
    changed.address = "10.0.0.9:7001"
    changed.status = pb.NODE_STATUS_DRAINING

    updated = await register(stub, changed, ttl=20, token=first.token)

    assert updated.node.incarnation == first.node.incarnation
    assert updated.ttl_seconds == 20
    assert updated.token == first.token
    await watcher.wait_for(lambda r: r.nodes["moving"].status == pb.NODE_STATUS_DRAINING)
    seen = watcher.nodes["moving"]
    assert (seen.address, dict(seen.metadata)) == ("10.0.0.9:7001", {"zone": "b"})
    assert watcher.changes[-1].type == pb.EVENT_TYPE_UPDATED
    stream = KeepAliveStream(stub)
    try:  # the registration now lives on a new lease with the new TTL
        renewed = await stream.renew(key_of(first.node), first.token)
        assert (renewed.code, renewed.ttl_seconds) == (0, 20)
    finally:
        await stream.close()
    await watcher.close()


async def test_racing_registers_of_one_id_have_exactly_one_winner(start_frontend, connect):
    stub_a = connect(await start_frontend())
    stub_b = connect(await start_frontend())
    results = await asyncio.gather(
        *(register(stub, node("contested"), ttl=10) for stub in (stub_a, stub_b) * 4),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, pb.RegisterResponse)]
    losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(winners) == 1
    assert {e.code() for e in losers} == {grpc.StatusCode.ALREADY_EXISTS}


async def test_wrong_or_foreign_tokens_get_not_found_and_change_nothing(
    start_frontend, connect, etcd_client
):
    stub = connect(await start_frontend())
    mine = await register(stub, node("mine"), ttl=10)
    theirs = await register(stub, node("theirs"), ttl=10)
    revision = await etcd_client.kv.current_revision(b"/")
    stream = KeepAliveStream(stub)
    try:
        for token in ("", "guess", theirs.token):
            answer = await stream.renew(key_of(mine.node), token)
            assert answer.code == grpc.StatusCode.NOT_FOUND.value[0]
            assert "register again" in answer.message
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.Deregister(pb.DeregisterRequest(key=key_of(mine.node), token=token))
            assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await stream.close()
    assert await etcd_client.kv.current_revision(b"/") == revision
    assert await node_ids(stub) == {"mine", "theirs"}


async def test_a_write_whose_audit_lease_was_revoked_gets_a_new_one_and_goes_through(
    start_frontend, connect, etcd_client, cluster
):
    """etcd answers "lease not found" (LeaseNotFoundError) for the audit lease the write carries:
    the transaction did not apply, so the store takes a new audit lease and writes again."""
    stub = connect(await start_frontend())
    await register(stub, node("first"))
    _, audit = await etcd_client.kv.range_prefix(f"/noderegistry/{cluster}/audit/".encode())
    await etcd_client.lease.revoke(audit[0].lease)

    second = await register(stub, node("second"))

    _, audit = await etcd_client.kv.range_prefix(f"/noderegistry/{cluster}/audit/".encode())
    assert [json.loads(kv.value)["cause"] for kv in audit] == ["REGISTERED"]
    assert audit[0].mod_revision == second.revision
