"""GetNodes: LINEARIZABLE reflects every write completed before it; CACHED answers at once."""

from __future__ import annotations

import pytest
from noderegistry.v1 import registry_pb2 as pb

from tests.support.api import node, node_ids, register

pytestmark = pytest.mark.integration


async def test_linearizable_read_on_one_frontend_sees_writes_made_through_another(
    start_frontend, connect
):
    writer = connect(await start_frontend())
    reader = connect(await start_frontend())
    for i in range(30):
        registered = await register(writer, node(f"n{i}"))
        listed = await reader.GetNodes(pb.GetNodesRequest(consistency=pb.CONSISTENCY_LINEARIZABLE))
        assert listed.revision >= registered.revision
        assert f"n{i}" in {n.id for dc in listed.datacenters for n in dc.nodes}


async def test_linearizable_read_after_writes_outside_the_prefix_still_answers(
    start_frontend, connect, etcd_client
):
    """etcd's revision moves through another application's keys, which the frontend does not
    watch: the frontend's barrier write brings its view to (at least) that revision."""
    stub = connect(await start_frontend())
    await register(stub, node("mine"))
    for i in range(5):
        put = await etcd_client.kv.put(f"/another-app/key{i}".encode(), b"x")
    listed = await stub.GetNodes(pb.GetNodesRequest())
    assert listed.revision >= put.header.revision
    assert {n.id for dc in listed.datacenters for n in dc.nodes} == {"mine"}


async def test_cached_read_reports_revision_and_age(start_frontend, connect):
    stub = connect(await start_frontend())
    registered = await register(stub, node("c1"))
    assert "c1" in await node_ids(stub)  # linearizable: the view has it now
    cached = await stub.GetNodes(pb.GetNodesRequest(consistency=pb.CONSISTENCY_CACHED))
    assert cached.revision >= registered.revision
    assert 0 <= cached.cache_age_seconds < 60
    assert "c1" in {n.id for dc in cached.datacenters for n in dc.nodes}


async def test_lists_are_grouped_per_datacenter_with_their_own_revision(start_frontend, connect):
    stub = connect(await start_frontend())
    a1 = await register(stub, node("a1", "data", "dc-a"))
    b1 = await register(stub, node("b1", "data", "dc-b"))
    b2 = await register(stub, node("b2", "session", "dc-b"))
    listed = await stub.GetNodes(pb.GetNodesRequest())
    per_dc = {dc.datacenter: dc for dc in listed.datacenters}
    assert sorted(per_dc) == ["dc-a", "dc-b"]
    assert per_dc["dc-a"].revision == a1.revision
    assert per_dc["dc-b"].revision == b2.revision > b1.revision
    assert [n.id for n in per_dc["dc-b"].nodes] == ["b1", "b2"]
    scoped = await stub.GetNodes(pb.GetNodesRequest(scope=pb.Scope(types=["session"])))
    assert [(dc.datacenter, [n.id for n in dc.nodes]) for dc in scoped.datacenters] == [
        ("dc-b", ["b2"])
    ]
