"""WatchNodes: snapshot, ordered deltas, exact resume, explicit resync; gRPC on real etcd."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from noderegistry.v1 import registry_pb2 as pb

from registry_service.store.etcd_client import EtcdClient, EtcdConfig
from tests.support.api import (
    WatchRecorder,
    key_of,
    node,
    node_ids,
    register,
    register_through_outage,
)
from tests.support.proxy import TcpProxy

pytestmark = pytest.mark.integration


async def _deregister(stub, registered: pb.RegisterResponse) -> int:
    response = await stub.Deregister(
        pb.DeregisterRequest(key=key_of(registered.node), token=registered.token)
    )
    return response.revision


async def test_snapshot_then_one_delta_per_change_in_revision_order(start_frontend, connect):
    stub = connect(await start_frontend())
    existing = await register(stub, node("before"))
    watcher = WatchRecorder(stub).start()
    await watcher.wait_for(lambda r: r.snapshots())
    assert set(watcher.nodes) == {"before"}
    assert watcher.snapshots()[0].revision >= existing.revision

    # 1. three registrations, 2. an update, 3. a deregistration: five revisions.
    a = await register(stub, node("a"))
    b = await register(stub, node("b"))
    c = await register(stub, node("c"))
    updated = await register(stub, node("a", zone="z"), token=a.token)
    removed_at = await _deregister(stub, b)
    expected = [
        (a.revision, pb.EVENT_TYPE_ADDED, "a"),
        (b.revision, pb.EVENT_TYPE_ADDED, "b"),
        (c.revision, pb.EVENT_TYPE_ADDED, "c"),
        (updated.revision, pb.EVENT_TYPE_UPDATED, "a"),
        (removed_at, pb.EVENT_TYPE_REMOVED, "b"),
    ]

    await watcher.wait_for(lambda r: len(r.changes) == 5)
    assert [(ch.revision, ch.type, ch.id) for ch in watcher.changes] == expected
    assert watcher.kinds()[:6] == ["snapshot"] + ["delta"] * 5
    assert not watcher.violations
    await watcher.close()


async def test_idle_stream_gets_progress_at_the_current_revision(start_frontend, connect):
    stub = connect(await start_frontend(watch_progress_seconds=0.2))
    registered = await register(stub, node("p"))
    watcher = WatchRecorder(stub).start()
    await watcher.wait_for(lambda r: "progress" in r.kinds())
    progress = [m.progress for m in watcher.messages if m.WhichOneof("message") == "progress"]
    assert progress[0].revision >= registered.revision
    assert not watcher.violations
    await watcher.close()


async def test_scope_filters_snapshot_and_deltas(start_frontend, connect):
    stub = connect(await start_frontend())
    watcher = WatchRecorder(stub, scope=pb.Scope(datacenters=["dc2"], types=["session"])).start()
    await watcher.wait_for(lambda r: r.snapshots())
    await register(stub, node("d1", "data", "dc2"))
    await register(stub, node("s1", "session", "dc1"))
    await register(stub, node("s2", "session", "dc2"))
    await watcher.wait_for_node("s2")
    assert set(watcher.nodes) == {"s2"}
    assert [c.id for c in watcher.changes] == ["s2"]
    await watcher.close()


async def test_resume_gives_exactly_the_missed_changes(start_frontend, connect):
    stub = connect(await start_frontend())
    first = WatchRecorder(stub).start()
    seen = await register(stub, node("seen"))
    await first.wait_for_node("seen")
    resume_from = first.revision
    await first.close()

    missed = [await register(stub, node(f"m{i}")) for i in range(3)]
    gone = await _deregister(stub, seen)

    resumed = WatchRecorder(stub, resume_revision=resume_from, nodes=dict(first.nodes)).start()
    await resumed.wait_for(lambda r: len(r.changes) == 4)
    assert resumed.snapshots() == []
    assert [(c.revision, c.id) for c in resumed.changes] == [
        *((m.revision, m.node.id) for m in missed),
        (gone, "seen"),
    ]
    assert not resumed.violations
    await resumed.close()


async def test_resume_from_beyond_the_history_gets_a_resync_snapshot(start_frontend, connect):
    stub = connect(await start_frontend(watch_history_revisions=2))
    old = await register(stub, node("old"))
    for i in range(4):
        await register(stub, node(f"n{i}"))

    watcher = WatchRecorder(stub, resume_revision=old.revision).start()
    await watcher.wait_for(lambda r: r.snapshots())
    (snapshot,) = watcher.snapshots()
    assert snapshot.resync
    assert snapshot.resync_reason == pb.RESYNC_REASON_COMPACTED
    assert set(watcher.nodes) == {"old", "n0", "n1", "n2", "n3"}
    await watcher.close()


async def test_resume_from_a_revision_etcd_never_had_gets_a_resync_snapshot(
    start_frontend, connect
):
    stub = connect(await start_frontend())
    await register(stub, node("x"))
    watcher = WatchRecorder(stub, resume_revision=10**9).start()
    await watcher.wait_for(lambda r: r.snapshots())
    assert watcher.snapshots()[0].resync_reason == pb.RESYNC_REASON_UNKNOWN_REVISION
    assert "x" in watcher.nodes
    await watcher.close()


async def test_etcd_restart_mid_stream_leaves_no_gap_and_no_duplicate(
    own_etcd, start_frontend, connect
):
    stub = connect(await start_frontend(own_etcd.endpoint))
    watcher = WatchRecorder(stub).start()
    before = [await register(stub, node(f"b{i}"), ttl=60) for i in range(3)]
    await watcher.wait_for(lambda r: len(r.changes) == 3)

    own_etcd.stop()
    own_etcd.start()
    await asyncio.to_thread(own_etcd.wait_ready)
    after = [await register_through_outage(stub, node(f"a{i}")) for i in range(3)]

    await watcher.wait_for(lambda r: len(r.changes) >= 6, timeout=30)
    assert [(c.revision, c.id) for c in watcher.changes] == [
        (r.revision, r.node.id) for r in before + after
    ]
    assert watcher.error is None
    assert not watcher.violations
    await watcher.close()


async def test_compaction_while_the_watch_is_away_relists_and_sends_the_difference(
    own_etcd, start_frontend, connect
):
    """1. frontend A reaches etcd through a proxy, B directly; a subscriber watches A.
    2. the proxy is cut; through B one node leaves, another joins; etcd compacts its history.
    3. the proxy is restored: A's watch cannot resume (compacted), so A re-reads everything and
       its subscriber gets the net difference in one delta flagged relisted."""
    proxy = TcpProxy("127.0.0.1", own_etcd.client_port)
    await proxy.start()
    frontend_a = await start_frontend(proxy.endpoint, etcd_watch_stale_seconds=2.0)
    stub_a = connect(frontend_a)
    stub_b = connect(await start_frontend(own_etcd.endpoint))
    staying = await register(stub_b, node("staying"), ttl=60)
    leaving = await register(stub_b, node("leaving"), ttl=60)
    watcher = WatchRecorder(stub_a).start()
    await watcher.wait_for(lambda r: set(r.nodes) == {"staying", "leaving"})

    proxy.sever()
    await _deregister(stub_b, leaving)
    joined = await register(stub_b, node("joined"), ttl=60)
    direct = EtcdClient(EtcdConfig(endpoints=(own_etcd.endpoint,)))
    try:
        await direct.kv.compact(await direct.kv.current_revision(b"/"))
    finally:
        await direct.close()
    proxy.restore()

    await watcher.wait_for(lambda r: set(r.nodes) == {"staying", "joined"}, timeout=30)
    relisted = [
        m.delta for m in watcher.messages if m.WhichOneof("message") == "delta" and m.delta.relisted
    ]
    assert len(relisted) == 1
    assert sorted((e.type, e.node.id) for e in relisted[0].events) == [
        (pb.EVENT_TYPE_ADDED, "joined"),
        (pb.EVENT_TYPE_REMOVED, "leaving"),
    ]
    assert relisted[0].revision >= joined.revision
    assert not watcher.violations
    assert await node_ids(stub_a) == {staying.node.id, "joined"}
    await watcher.close()
    await proxy.close()


async def test_a_subscriber_that_stops_reading_gets_a_resync_and_slows_no_one(
    start_frontend, connect
):
    frontend = await start_frontend(watch_queue_messages=4)
    stub = connect(frontend)
    slow_channel = grpc.aio.insecure_channel(
        frontend.address, options=[("grpc.http2.bdp_probe", 0)]
    )
    slow = slow_channel.unary_stream  # noqa: F841 (documentation: a raw, unread stream)
    from noderegistry.v1 import registry_pb2_grpc

    slow_call = registry_pb2_grpc.RegistryStub(slow_channel).WatchNodes(pb.WatchNodesRequest())
    await slow_call.read()  # the snapshot; then it stops reading
    fast = WatchRecorder(stub).start()
    big = {f"k{i}": "v" * 1000 for i in range(15)}  # ~15 KB per event fills the HTTP/2 window
    registered = [await register(stub, node(f"n{i}", **big)) for i in range(60)]

    await fast.wait_for(lambda r: len(r.nodes) == 60, timeout=30)
    assert not fast.violations and not fast.snapshots()[1:]
    subscription = next(s for s in frontend.hub.subscriptions if s.resyncs or s.backlog)
    assert subscription.backlog <= 4

    # Reading again, the slow subscriber gets a resync snapshot with everything, then goes on.
    kinds = []
    nodes: set[str] = set()
    while len(nodes) < 60:
        message = await asyncio.wait_for(slow_call.read(), 10)
        kinds.append(message.WhichOneof("message"))
        if kinds[-1] == "snapshot":
            assert message.snapshot.resync_reason == pb.RESYNC_REASON_SLOW_CONSUMER
            nodes = {n.id for dc in message.snapshot.datacenters for n in dc.nodes}
        elif kinds[-1] == "delta":
            nodes |= {e.node.id for e in message.delta.events}
    assert "snapshot" in kinds
    assert nodes == {r.node.id for r in registered}
    slow_call.cancel()
    await slow_channel.close()
    await fast.close()
