"""The HTTP API's reads (docs/design.md §11) through a real HTTP client: GetNodes as JSON, blocking
reads across frontends, one node, the audit trail and the cluster views, bad parameters, and the
same messages as the gRPC statuses."""

from __future__ import annotations

import asyncio
import re
import time

import grpc
import pytest
from noderegistry.v1 import registry_pb2 as pb

from tests.support.api import key_of, node, register
from tests.support.frontends import stub as stub_for
from tests.support.http import get as admin_get
from tests.support.http_api import EventStream, api_url, api_url_of, changes, get, node_ids
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_nodes_is_getnodes_as_json_per_datacenter_with_the_revision_in_headers(
    start_frontend, connect
):
    frontend = await start_frontend()
    stub = connect(frontend)
    data = await register(stub, node("a1", "data", "dc1", shard="3"))
    meta = await register(stub, node("m1", "meta", "dc2"))
    answer = await get(f"{api_url(frontend)}/v1/nodes")
    assert answer.status == 200
    body = answer.body
    grpc_list = await stub.GetNodes(pb.GetNodesRequest())
    assert body["revision"] == grpc_list.revision >= meta.revision
    assert answer.headers["X-Registry-Revision"] == str(body["revision"])
    assert answer.headers["X-Registry-Index"] == str(body["index"]) == str(meta.revision)
    assert [(dc["datacenter"], dc["revision"]) for dc in body["datacenters"]] == [
        (dc.datacenter, dc.revision) for dc in grpc_list.datacenters
    ]
    assert node_ids(body) == ["dc1/data/a1", "dc2/meta/m1"]
    first = body["datacenters"][0]
    assert first["stale"] is False and first["revision"] == data.revision
    assert first["nodes"][0] == {
        "datacenter": "dc1",
        "type": "data",
        "id": "a1",
        "address": "a1.example:7000",
        "status": "UP",
        "health": "UNCHECKED",
        "damped": False,
        "incarnation": 1,
        "metadata": {"shard": "3"},
    }
    # A scope: repeatable or comma-separated; its index is its own last change.
    scoped = await get(f"{api_url(frontend)}/v1/nodes?type=data&datacenter=dc1,dc9")
    assert node_ids(scoped.body) == ["dc1/data/a1"]
    assert scoped.body["index"] == data.revision
    cached = await get(f"{api_url(frontend)}/v1/nodes?type=meta&consistency=cached")
    assert node_ids(cached.body) == ["dc2/meta/m1"]


def reported(message: pb.Node, health: int) -> pb.Node:
    """The node as its owner reports it (a registration without checks: its own health)."""
    copy = pb.Node()
    copy.CopyFrom(message)
    copy.health = health
    return copy


async def test_healthy_true_lists_and_streams_only_the_healthy_nodes(start_frontend, connect):
    frontend = await start_frontend()
    stub = connect(frontend)
    await register(stub, node("ok"))
    sick = await register(stub, node("sick"))
    url = api_url(frontend)
    stream = await EventStream.open(f"{url}/v1/watch?type=data&healthy=true")
    try:
        snapshot = await stream.next_change()
        assert snapshot.name == "snapshot"
        assert node_ids(snapshot.data) == ["dc1/data/ok", "dc1/data/sick"]

        # Its owner reports it FAILING: still listed, no longer healthy.
        failing = await register(stub, reported(node("sick"), pb.HEALTH_FAILING), token=sick.token)
        delta = await stream.next_change()
        ((kind, node_id, reason),) = [
            (e["type"], e["node"]["id"], e["reason"]) for e in delta.data["events"]
        ]
        assert (kind, node_id, reason) == ("REMOVED", "sick", "UNHEALTHY")
        assert delta.id == failing.revision
        healthy = await get(f"{url}/v1/nodes?type=data&healthy=true")
        assert healthy.status == 200 and node_ids(healthy.body) == ["dc1/data/ok"]
        everything = await get(f"{url}/v1/nodes?type=data&healthy=false")
        assert node_ids(everything.body) == ["dc1/data/ok", "dc1/data/sick"]
        health = {n["id"]: n["health"] for n in everything.body["datacenters"][0]["nodes"]}
        assert health == {"ok": "UNCHECKED", "sick": "FAILING"}

        # Passing again: ADDED to the healthy-only stream and list.
        await register(stub, reported(node("sick"), pb.HEALTH_PASSING), token=sick.token)
        assert changes(await stream.next_change()) == [("ADDED", "sick")]
        again = await get(f"{url}/v1/nodes?type=data&healthy=true")
        assert node_ids(again.body) == ["dc1/data/ok", "dc1/data/sick"]
    finally:
        await stream.close()


async def test_a_blocking_read_returns_once_another_frontend_registers_in_its_scope(
    start_frontend, connect
):
    reader, writer = await start_frontend(), await start_frontend()
    first = await get(f"{api_url(reader)}/v1/nodes?type=data")
    index = first.body["index"]
    # 1. A read that would wait 100 s for a data node to change after `index`.
    read = asyncio.create_task(get(f"{api_url(reader)}/v1/nodes?type=data&index={index}&wait=100s"))
    await eventually(lambda: reader.api.waiting == 1, message="the read waits")
    # 2. A change outside its scope, seen by the reading frontend, does not answer it.
    meta = await register(connect(writer), node("m1", "meta"))
    await eventually(lambda: reader.hub.revision >= meta.revision, message="meta seen")
    # 3. A data node registered on the other frontend answers it, long before the wait ends.
    added = await register(connect(writer), node("d1", "data"))
    started = time.monotonic()
    async with asyncio.timeout(20):
        answer = await read
    assert time.monotonic() - started < 20
    assert answer.status == 200
    assert answer.body["index"] == added.revision > index
    assert answer.headers["X-Registry-Index"] == str(added.revision)
    assert node_ids(answer.body) == ["dc1/data/d1"]
    assert reader.api.waiting == 0


async def test_a_client_that_goes_away_ends_its_blocking_read(start_frontend):
    frontend = await start_frontend()
    read = asyncio.create_task(get(f"{api_url(frontend)}/v1/nodes?index=1&wait=100s"))
    await eventually(lambda: frontend.api.waiting == 1, message="the read waits")
    read.cancel()  # the client closes its connection
    await eventually(lambda: frontend.api.waiting == 0, message="the frontend stopped waiting")


async def test_a_wait_that_ends_unchanged_answers_200_with_the_same_index(start_frontend, connect):
    frontend = await start_frontend()
    stub = connect(frontend)
    await register(stub, node("d1", "data"))
    index = (await get(f"{api_url(frontend)}/v1/nodes?type=data")).body["index"]
    await register(stub, node("m1", "meta"))  # another scope moves the revision, not the index
    started = time.monotonic()
    answer = await get(f"{api_url(frontend)}/v1/nodes?type=data&index={index}&wait=1500ms")
    assert time.monotonic() - started >= 1.5
    assert answer.status == 200
    assert answer.body["index"] == index
    assert answer.headers["X-Registry-Index"] == str(index)
    assert answer.body["revision"] > index
    assert node_ids(answer.body) == ["dc1/data/d1"]


async def test_the_wait_is_cut_to_http_max_wait_seconds_and_an_index_from_elsewhere_resets(
    start_frontend, connect
):
    frontend = await start_frontend(http_max_wait_seconds=1.0)
    await register(connect(frontend), node("d1", "data"))
    current = (await get(f"{api_url(frontend)}/v1/nodes")).body["index"]
    async with asyncio.timeout(30):  # uncut, it would wait 600 s
        answer = await get(f"{api_url(frontend)}/v1/nodes?index=999999999&wait=10m")
    # An index this scope never reached waits out the wait and answers the real one: the
    # client sees it go backwards and resets (Consul's rule).
    assert answer.status == 200
    assert answer.body["index"] == current < 999999999


async def test_an_empty_scope_has_index_1_so_a_client_that_sends_it_back_blocks(start_frontend):
    frontend = await start_frontend()
    answer = await get(f"{api_url(frontend)}/v1/nodes?type=nothing-here")
    assert answer.body["index"] == 1 and answer.body["datacenters"] == []
    started = time.monotonic()
    again = await get(f"{api_url(frontend)}/v1/nodes?type=nothing-here&index=1&wait=1s")
    assert time.monotonic() - started >= 1.0
    assert again.body["index"] == 1


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?index=soon", "index must be a revision, a whole number >= 0; got 'soon'"),
        ("?wait=10s", "wait needs an index: ?index=R&wait=30s blocks until a change"),
        ("?index=5&wait=a-while", "wait must be a duration such as 30s, 500ms or 2m"),
        ("?consistency=eventual", "consistency must be linearizable (the default"),
        ("?datacentre=dc1", "unknown query parameter datacentre: this path takes datacenter"),
        ("?index=1&index=2", "give index once, not 2 times"),
        ("?healthy=maybe", "healthy must be true or false; got 'maybe'"),
    ],
)
async def test_bad_parameters_are_400_with_a_message_naming_them(start_frontend, query, message):
    frontend = await start_frontend()
    answer = await get(f"{api_url(frontend)}/v1/nodes{query}")
    assert answer.status == 400
    assert answer.body["error"]["code"] == "INVALID_ARGUMENT"
    assert message in answer.body["error"]["message"]


async def test_a_bad_scope_or_key_has_the_grpc_status_code_and_message(start_frontend, connect):
    frontend = await start_frontend()
    stub = connect(frontend)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetNodes(pb.GetNodesRequest(scope=pb.Scope(types=["Data"])))
    answer = await get(f"{api_url(frontend)}/v1/nodes?type=Data")
    assert answer.status == 400
    assert answer.body["error"] == {
        "code": refused.value.code().name,
        "message": refused.value.details(),
    }
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Deregister(
            pb.DeregisterRequest(key=pb.NodeKey(datacenter="dc1", type="data", id="Bad!"))
        )
    one = await get(f"{api_url(frontend)}/v1/nodes/dc1/data/Bad!")
    assert one.status == 400
    assert one.body["error"]["message"] == refused.value.details()


async def test_one_node_and_404_once_it_left_with_its_audit_trail(start_frontend, connect):
    frontend = await start_frontend()
    stub = connect(frontend)
    registered = await register(stub, node("n1", "data"))
    one = await get(f"{api_url(frontend)}/v1/nodes/dc1/data/n1")
    assert one.status == 200
    assert one.body["node"]["id"] == "n1" and one.body["node"]["status"] == "UP"
    assert one.body["revision"] >= registered.revision
    await stub.Deregister(pb.DeregisterRequest(key=key_of(registered.node), token=registered.token))
    gone = await get(f"{api_url(frontend)}/v1/nodes/dc1/data/n1")
    assert gone.status == 404
    assert gone.body["error"]["code"] == "NOT_FOUND"
    assert "/v1/audit/dc1/data/n1" in gone.body["error"]["message"]
    trail = await get(f"{api_url(frontend)}/v1/audit/dc1/data/n1")
    assert trail.status == 200
    assert [entry["cause"] for entry in trail.body["entries"]] == ["REGISTERED", "DEREGISTERED"]
    unknown = await get(f"{api_url(frontend)}/v1/no/such/path")
    assert unknown.status == 404 and unknown.body["error"]["code"] == "NOT_FOUND"


async def test_the_cluster_views_list_suspects_and_every_frontends_subscribers(
    start_frontend, connect
):
    one, two = await start_frontend(), await start_frontend()
    await register(connect(one), node("d1", "data", "dc1"))
    suspects = await get(f"{api_url(one)}/v1/cluster/suspects")
    assert suspects.status == 200
    assert suspects.body == {
        "self_preservation": False,
        "datacenters": [
            {"datacenter": "dc1", "members": 1, "suspects": 0, "self_preservation": False}
        ],
        "suspects": [],
    }
    stream = await EventStream.open(f"{api_url(two)}/v1/watch?type=data")
    try:
        await stream.next_change()
        answer = await eventually(
            lambda: _subscribers(one),
            message="the event stream on the other frontend, asked through this one",
        )
        (subscriber,) = answer
        assert subscriber["peer"].startswith("ipv4:127.0.0.1:")
        assert subscriber["scope"] == {"datacenters": [], "types": ["data"]}
    finally:
        await stream.close()


async def _subscribers(frontend) -> list[dict]:
    answer = await get(f"{api_url(frontend)}/v1/cluster/convergence")
    assert answer.status == 200
    return answer.body["subscribers"]


async def test_the_workers_of_a_host_share_the_http_port_and_streams_spread_over_them(
    etcd, spawn_frontend
):
    supervisor = await spawn_frontend(etcd.endpoint, workers=2)
    api = api_url_of(supervisor.ready_line)
    assert not api.endswith(":0")  # the supervisor claimed a port for both workers
    admin = re.search(r"admin (http://\S+)\)", supervisor.ready_line).group(1)
    streams: list[EventStream] = []

    async def on_both_workers() -> bool:
        stream = await EventStream.open(f"{api}/v1/watch?type=data")  # a connection of its own
        streams.append(stream)
        await stream.next_change()
        _, listed = await admin_get(f"{admin}/admin/subscribers")
        return {s["worker"] for s in listed["subscribers"]} == {"0", "1"}

    try:
        await eventually(on_both_workers, timeout=30, message="streams on both workers")
        channel, stub = stub_for(supervisor.address)
        added = await register(stub, node("w1", "data"))
        await channel.close()
        for stream in streams:  # whichever worker serves it
            delta = await stream.next_change()
            assert (delta.id, changes(delta)) == (added.revision, [("ADDED", "w1")])
        answer = await get(f"{api}/v1/nodes?type=data")
        assert answer.body["index"] == added.revision
    finally:
        for stream in streams:
            await stream.close()
