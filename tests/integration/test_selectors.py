"""Label selectors in every scope a client gives: GetNodes and WatchNodes over gRPC, the HTTP
API's `?selector=`, and the SDK's `Scope(selector=...)`; a shard or a zone followed alone."""

from __future__ import annotations

import urllib.parse

import grpc
import pytest
from noderegistry.v1 import registry_pb2 as pb

from client_sdk import InvalidArgumentError, Node, RegistryClient, Scope
from tests.support.api import WatchRecorder, node, register
from tests.support.http_api import EventStream, api_url, get, node_ids
from tests.support.sdk import FAST
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

ZONE_A = pb.Scope(types=["data"], selector="zone=a,!canary")


async def test_getnodes_and_watchnodes_take_a_selector(start_frontend, connect):
    frontend = await start_frontend()
    stub = connect(frontend)
    a1 = await register(stub, node("a1", zone="a"))
    b1 = await register(stub, node("b1", zone="b"))
    await register(stub, node("a-canary", zone="a", canary="yes"))
    listed = await stub.GetNodes(pb.GetNodesRequest(scope=ZONE_A))
    assert [n.id for dc in listed.datacenters for n in dc.nodes] == ["a1"]

    watcher = WatchRecorder(stub, scope=ZONE_A).start()
    await watcher.wait_for(lambda r: r.snapshots())
    assert set(watcher.nodes) == {"a1"}
    # 1. a node moving into the selector is ADDED, 2. one moving out is REMOVED, 3. a change
    # outside it is not sent.
    await register(stub, node("b2", zone="b"))
    await register(stub, node("b1", zone="a"), token=b1.token)
    await register(stub, node("a1", zone="c"), token=a1.token)
    await watcher.wait_for(lambda r: len(r.changes) == 2)
    assert [(c.type, c.id) for c in watcher.changes] == [
        (pb.EVENT_TYPE_ADDED, "b1"),
        (pb.EVENT_TYPE_REMOVED, "a1"),
    ]
    assert set(watcher.nodes) == {"b1"}
    assert not watcher.violations  # no REMOVED of a node it never had, no ADDED twice
    await watcher.close()


async def test_a_malformed_or_oversized_selector_is_invalid_argument(start_frontend, connect):
    frontend = await start_frontend(selector_max_bytes=32)
    stub = connect(frontend)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetNodes(pb.GetNodesRequest(scope=pb.Scope(selector="zone in (a")))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ends where ',' or ')' was expected" in (raised.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        oversized = pb.Scope(selector="zone notin (" + "a," * 20 + "b)")
        await stub.GetNodes(pb.GetNodesRequest(scope=oversized))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "selector_max_bytes" in (raised.value.details() or "")


async def test_the_http_api_takes_a_selector(start_frontend, connect):
    frontend = await start_frontend()
    stub = connect(frontend)
    await register(stub, node("a1", zone="a"))
    await register(stub, node("b1", zone="b"))
    query = urllib.parse.urlencode({"type": "data", "selector": "zone in (a)"})
    answer = await get(f"{api_url(frontend)}/v1/nodes?{query}")
    assert answer.status == 200 and node_ids(answer.body) == ["dc1/data/a1"]

    stream = await EventStream.open(f"{api_url(frontend)}/v1/watch?{query}")
    snapshot = await stream.next()
    assert snapshot is not None and node_ids(snapshot.data) == ["dc1/data/a1"]
    await register(stub, node("a2", zone="a"))
    await register(stub, node("b2", zone="b"))
    change = await stream.next_change()
    assert [e["node"]["id"] for e in change.data["events"]] == ["a2"]
    await stream.close()

    bad = await get(f"{api_url(frontend)}/v1/nodes?selector=zone%3D(")
    assert bad.status == 400 and "character" in bad.body["error"]["message"]


async def test_the_sdk_follows_only_its_shard(start_frontend):
    frontend = await start_frontend()
    async with RegistryClient(frontend.address, config=FAST) as client:
        for node_id, shard in (("s1", "1"), ("s2", "2"), ("s3", "1")):
            await client.register(Node(node_id, "data", "dc1", "10.0.0.1:80", {"shard": shard}))
        shard_one = Scope.of(types="data", selector="shard=1")
        listed = await client.get_nodes(shard_one)
        assert sorted(n.id for n in listed.nodes) == ["s1", "s3"]
        async with await client.watch_nodes(shard_one) as watch:
            assert sorted(n.id for n in watch.current().nodes) == ["s1", "s3"]
            await client.register(Node("s4", "data", "dc1", "10.0.0.1:80", {"shard": "1"}))
            await eventually(
                lambda: sorted(n.id for n in watch.current().nodes) == ["s1", "s3", "s4"],
                message="s4 joins the shard",
            )
        with pytest.raises(InvalidArgumentError, match="expected"):
            await client.get_nodes(Scope.of(selector="shard in (1"))
