"""Two datacenters, each with its own etcd and frontend (in-process): writes go to the node's own
datacenter, each frontend serves the other read-only in that datacenter's own revisions
(docs/design.md §10). Faults (a cut WAN link, a resumed vector): tests/chaos/test_federation.py.
"""

from __future__ import annotations

import grpc
import grpc.aio
import pytest
from noderegistry.v1 import registry_pb2 as pb

from client_sdk import Node as SdkNode
from client_sdk import RegistryClient, Scope
from registry_service.domain import NodeKey
from tests.support.api import KeepAliveStream, WatchRecorder, key_of, node, register
from tests.support.http import post
from tests.support.sdk import FAST
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_a_write_for_another_datacenter_is_refused_naming_it(two_datacenters):
    stub = two_datacenters.stub(two_datacenters.dc1)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await register(stub, node("far", datacenter="dc2"))
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    message = refused.value.details()
    assert "datacenter dc2" in message and two_datacenters.dc2.address in message

    registered = await register(
        two_datacenters.stub(two_datacenters.dc2), node("far", "data", "dc2")
    )
    stream = KeepAliveStream(stub)
    try:
        answer = await stream.renew(key_of(registered.node), registered.token)
        assert answer.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
        assert "dc2" in answer.message
    finally:
        await stream.close()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Deregister(pb.DeregisterRequest(key=key_of(registered.node), token="x"))
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION


async def test_the_sdk_registers_each_node_with_its_own_datacenter(two_datacenters):
    dc1, dc2 = two_datacenters.dc1, two_datacenters.dc2
    targets = {"dc1": [dc1.address], "dc2": [dc2.address]}
    async with RegistryClient(targets, config=FAST) as client:
        near = await client.register(SdkNode("near", "data", "dc1", "near.example:1"))
        far = await client.register(SdkNode("far", "data", "dc2", "far.example:1"))
        assert near.incarnation == far.incarnation == 1
        # Each lives in its own datacenter's etcd; each frontend lists the other's read-only.
        near_key, far_key = NodeKey("dc1", "data", "near"), NodeKey("dc2", "data", "far")
        await eventually(lambda: dc1.hub.view.registration(near_key), message="near in dc1")
        await eventually(lambda: dc2.hub.view.registration(far_key), message="far in dc2")
        assert dc1.hub.view.registration(far_key) is None
        assert dc2.hub.view.registration(near_key) is None
        await eventually(lambda: len(dc1.remotes.datacenters["dc2"]) == 1, message="dc2 followed")
        listed = await client.get_nodes()
        assert {n.id for n in listed} == {"near", "far"}
        remote = listed.datacenter_states["dc2"]
        assert remote.remote and not remote.stale
        assert remote.revision == dc1.remotes.datacenters["dc2"].revision > 0
        assert not listed.datacenter_states["dc1"].remote
        assert listed.datacenter_states["dc1"].revision == listed.revision


async def test_a_remote_datacenter_carries_its_own_registrys_revision(two_datacenters):
    dc1, dc2 = two_datacenters.dc1, two_datacenters.dc2
    await register(two_datacenters.stub(dc2), node("far", "data", "dc2"))
    await eventually(lambda: len(dc1.remotes.datacenters["dc2"]) == 1, message="followed")
    await eventually(
        lambda: dc1.remotes.datacenters["dc2"].revision == dc2.hub.revision,
        message="dc2's revision reached",
    )
    response = await two_datacenters.stub(dc1).GetNodes(
        pb.GetNodesRequest(consistency=pb.CONSISTENCY_CACHED)
    )
    (remote,) = [dc for dc in response.datacenters if dc.datacenter == "dc2"]
    assert remote.remote and not remote.stale
    assert remote.complete_revision == dc2.hub.revision
    assert response.revision == dc1.hub.revision  # the local etcd's, as before


async def test_an_older_watcher_sees_only_the_local_etcd(two_datacenters):
    """Without datacenter_revisions a stream carries one registry's revisions, as before."""
    dc1, dc2 = two_datacenters.dc1, two_datacenters.dc2
    await register(two_datacenters.stub(dc2), node("far", "data", "dc2"))
    await eventually(lambda: len(dc1.remotes.datacenters["dc2"]) == 1, message="followed")
    old = WatchRecorder(two_datacenters.stub(dc1)).start()
    try:
        await register(two_datacenters.stub(dc1), node("near"))
        await register(two_datacenters.stub(dc2), node("far2", "data", "dc2"))
        await old.wait_for_node("near")
        await eventually(lambda: len(dc1.remotes.datacenters["dc2"]) == 2, message="far2")
        await old.wait_for(lambda r: r.revision >= dc1.hub.revision)
        assert set(old.nodes) == {"near"}
        assert not old.violations
        assert all(
            not m.delta.datacenter for m in old.messages if m.WhichOneof("message") == "delta"
        )
    finally:
        await old.close()


async def test_a_watch_sees_both_datacenters_each_in_its_own_revisions(two_datacenters):
    dc1, dc2 = two_datacenters.dc1, two_datacenters.dc2
    async with RegistryClient(dc1.address, config=FAST) as client:
        watch = await client.watch_nodes(Scope())
        await register(two_datacenters.stub(dc2), node("far", "data", "dc2"))
        await register(two_datacenters.stub(dc1), node("near"))
        seen = await watch.wait_for(lambda nodes: len(nodes) == 2, timeout=10)
        assert {n.datacenter for n in seen} == {"dc1", "dc2"}
        assert watch.revision == dc1.hub.revision
        await eventually(lambda: watch.revisions.get("dc2") == dc2.hub.revision, message="dc2")
        assert not watch.stale


async def test_an_operator_acts_on_another_datacenters_node_through_that_datacenter(
    two_datacenters,
):
    dc1, dc2 = two_datacenters.dc1, two_datacenters.dc2
    await register(two_datacenters.stub(dc2), node("far", "data", "dc2"))
    await eventually(lambda: len(dc1.remotes.datacenters["dc2"]) == 1, message="followed")
    url = f"http://127.0.0.1:{dc1.admin.port}/admin/nodes/dc2/data/far/maintenance"
    status, body = await post(url, {"reason": "disk"})
    assert status == 409 and body["error"]["code"] == "FAILED_PRECONDITION"
    assert "datacenter dc2" in body["error"]["message"]
    assert dc2.address in body["error"]["message"]
    status, _ = await post(url.replace(str(dc1.admin.port), str(dc2.admin.port)), {})
    assert status == 200
