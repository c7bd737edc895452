"""An etcd quorum loss is noticed within about a second, not at the end of a request deadline
(issue 11, problem 4; decision D43): from then on the frontend stays ready but degraded, writes
fail at once with UNAVAILABLE, and CACHED reads say stale. A frontend out of touch with its etcd
never sends a watcher that resumes on it an older list than the watcher holds (D80).

The bounds compare against the frontend's configured etcd request deadline (a setting), not a
wall-clock constant: "noticed before one request would have timed out"."""

from __future__ import annotations

import asyncio
import time

import grpc
import grpc.aio
import pytest
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from client_sdk import EventType, NodeEvent, RegistryClient, Scope
from tests.chaos.conftest import FLEET
from tests.support.api import node, register
from tests.support.history import FederatedWatcher, read_history
from tests.support.http import get
from tests.support.ports import free_port
from tests.support.proxy import TcpProxy
from tests.support.sdk import collect, data_node, resumed_about
from tests.support.waiting import eventually

pytestmark = pytest.mark.chaos
DEADLINE_SECONDS = 5.0  # the frontend's etcd_request_timeout_seconds, set below


async def _readyz(admin: str) -> dict[str, object] | None:
    status, body = await get(f"{admin}/readyz")
    assert status == 200, body  # ready throughout: degraded is still "can serve"
    return body if body["degraded"] else None


async def _timed(call) -> tuple[float, grpc.aio.AioRpcError]:
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    return time.monotonic() - started, refused.value


@pytest.mark.timeout(120)
async def test_a_quorum_loss_fails_writes_before_their_deadline_and_marks_lists_stale(rig):
    # 1. One frontend on the 3-member cluster, a node registered, /readyz not degraded.
    # 2. Two of three members freeze (no quorum). At once, a Register: it was already on its way
    #    to etcd; it must come back UNAVAILABLE well before the etcd request deadline.
    # 3. /readyz says degraded (still 200) within the deadline, counted from the freeze.
    # 4. The next Register fails at once; a CACHED read is served, marked stale; LINEARIZABLE is
    #    refused.
    # 5. The members resume: not degraded again, and a Register succeeds.
    r = await rig(frontends=1, etcd_request_timeout_seconds=DEADLINE_SECONDS)
    (frontend,) = r.frontends
    admin = frontend.ready_line.split("admin ")[1].split(")")[0]
    async with grpc.aio.insecure_channel(frontend.address) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        await register(stub, node("n1"), ttl=60)
        assert await _readyz(admin) is None

        async def view_has_n1() -> bool:
            cached = await stub.GetNodes(pb.GetNodesRequest(consistency=pb.CONSISTENCY_CACHED))
            return {n.id for dc in cached.datacenters for n in dc.nodes} == {"n1"}

        # The frontend's view has n1 before the freeze (its watch may sit on a member frozen next,
        # with n1's event not yet delivered).
        await eventually(view_has_n1, message="the frontend's view has n1")
        frozen = r.members[:2]
        for member in frozen:
            member.pause()
        frozen_at = time.monotonic()
        try:
            elapsed, error = await _timed(register(stub, node("first"), ttl=60))
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error
            assert elapsed < DEADLINE_SECONDS, f"the first Register took {elapsed:.1f}s"

            body = await eventually(
                lambda: _readyz(admin), timeout=DEADLINE_SECONDS, message="degraded"
            )
            assert time.monotonic() - frozen_at < DEADLINE_SECONDS
            assert body["ready"] and not body["store_connected"]

            elapsed, error = await _timed(register(stub, node("second"), ttl=60))
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert "cannot reach etcd" in (error.details() or "")
            assert elapsed < DEADLINE_SECONDS / 5, f"a refused write took {elapsed:.2f}s"
            cached = await stub.GetNodes(
                pb.GetNodesRequest(consistency=pb.CONSISTENCY_CACHED), timeout=DEADLINE_SECONDS
            )
            assert cached.stale and {n.id for dc in cached.datacenters for n in dc.nodes} == {"n1"}
            _, error = await _timed(stub.GetNodes(pb.GetNodesRequest(), timeout=DEADLINE_SECONDS))
            assert error.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            for member in frozen:
                member.resume()
        await eventually(
            lambda: _not_degraded(admin), timeout=30, message="not degraded once etcd is back"
        )
        registered = await register(stub, node("after"), ttl=60)
        assert registered.node.incarnation == 1
        cached = await stub.GetNodes(pb.GetNodesRequest(consistency=pb.CONSISTENCY_CACHED))
        assert not cached.stale


async def _not_degraded(admin: str) -> bool:
    return await _readyz(admin) is None


@pytest.mark.timeout(180)
async def test_a_watch_resumed_on_a_frontend_that_lags_its_etcd_never_steps_back(
    rig, spawn_frontend
):
    """Issue 22, item 1, this datacenter's own etcd (D80).
    1. frontend A on the three members; frontend B reaches them through proxies;
    2. six nodes; an SDK watch (A, then B) sees them on A;
    3. B's proxies are blackholed (B cannot reach etcd: its view lags); three more nodes
       register through A and the watch sees them;
    4. A is SIGKILLed: the watch resumes on B from a revision B's view has not reached. It keeps
       all nine nodes at its revision, marked stale, never B's older list; a raw stream resumed
       on B from that revision is sent nothing older either;
    5. B's proxies heal: the watch turns fresh, a node registered through B arrives, and no node
       was ever removed or added twice (long TTLs: B cannot renew them while it is cut off);
       the raw stream's deltas are exactly etcd's after its revision."""
    r = await rig(frontends=1)
    (first,) = r.frontends
    proxies = [TcpProxy("127.0.0.1", member.client_port) for member in r.members]
    for proxy in proxies:
        await proxy.start()
    lagging = await spawn_frontend(
        ",".join(proxy.endpoint for proxy in proxies), listen=f"127.0.0.1:{free_port()}"
    )
    events: list[NodeEvent] = []
    raw: FederatedWatcher | None = None
    try:
        async with (
            RegistryClient([first.address, lagging.address], config=FLEET) as writer,
            RegistryClient([first.address, lagging.address], config=FLEET) as watcher,
        ):
            for i in range(6):
                await writer.register(data_node(f"n{i}"), ttl_seconds=120)
            watch = await watcher.watch_nodes(Scope())
            await watch.wait_for(lambda nodes: len(nodes) == 6, timeout=15)
            stream, steps = watch.events(), watch.steps()
            collecting = asyncio.create_task(collect(stream, events))

            for proxy in proxies:
                proxy.blackhole()
            for i in range(3):
                await writer.register(data_node(f"x{i}"), ttl_seconds=120)
            await watch.wait_for(lambda nodes: len(nodes) == 9, timeout=15)
            held = watch.revision

            first.kill()
            await resumed_about(steps, "")
            assert len(watch.current()) == 9, "no node vanished"
            assert watch.revision >= held, "the revision never went back"
            assert watch.current().stale, "B's view lags its etcd: shown stale"
            raw = FederatedWatcher(lagging.address, held).start()
            await eventually(lambda: raw.messages, timeout=60, message="raw stream on B")
            assert [m for m in raw.messages if m.WhichOneof("message") == "snapshot"] == []
            assert min(raw.revisions.values()) >= held, "nothing older sent"

            for proxy in proxies:
                proxy.restore()
            await watch.wait_for(lambda nodes: not nodes.stale, timeout=30)
            await writer.register(data_node("y"), ttl_seconds=120)  # through B, A is gone
            await watch.wait_for(lambda nodes: len(nodes) == 10, timeout=30)
            until = await r.client.kv.current_revision(f"/noderegistry/{r.cluster}/".encode())
            await eventually(lambda: raw.revisions.get("", 0) >= until, timeout=30)
            steps.close()
            stream.close()
            await collecting
    finally:
        if raw is not None:
            await raw.close()
        for proxy in proxies:
            await proxy.close()
    assert [e for e in events if e.type is EventType.REMOVED] == []
    added = [e.node.id for e in events if e.type is EventType.ADDED]
    assert sorted(added) == ["x0", "x1", "x2", "y"], "each added once"
    history = await read_history(r.client, r.cluster, until)
    got = [
        (pb.EventType.Name(e.type).removeprefix("EVENT_TYPE_"), e.node.id)
        for m in raw.messages
        if m.WhichOneof("message") == "delta" and m.delta.revision <= until
        for e in m.delta.events
    ]
    assert got == [(c.kind, c.node_id) for c in history.after(held, until)] == [("ADDED", "y")]


@pytest.mark.timeout(120)
async def test_a_frontend_turning_stale_or_fresh_tells_its_watchers_at_once(rig, record_property):
    """Issue 22, item 4 (D81).
    1. one frontend on the three members, idle progress only every 60 s (so that no idle
       progress can be what brings the news); an SDK watch sees one node, fresh;
    2. two of three members freeze: the watch shows stale as soon as the frontend notices
       (its quorum probe, about 1.75 s), not with the next idle progress;
    3. they resume: the watch shows fresh again as soon as the frontend is back."""
    r = await rig(frontends=1, watch_progress_seconds=60.0)
    async with RegistryClient(r.targets, config=FLEET) as client:
        await client.register(data_node("n1"), ttl_seconds=120)
        watch = await client.watch_nodes(Scope())
        await watch.wait_for(lambda nodes: len(nodes) == 1 and not nodes.stale, timeout=15)
        frozen = r.members[:2]
        for member in frozen:
            member.pause()
        frozen_at = time.monotonic()
        try:
            nodes = await watch.wait_for(lambda nodes: nodes.stale, timeout=15)
            record_property("stale_at_watcher_after_seconds", time.monotonic() - frozen_at)
            assert [n.id for n in nodes] == ["n1"]
        finally:
            for member in frozen:
                member.resume()
        resumed_at = time.monotonic()
        await watch.wait_for(lambda nodes: not nodes.stale, timeout=30)
        record_property("fresh_at_watcher_after_seconds", time.monotonic() - resumed_at)
