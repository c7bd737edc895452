"""The HTTP API of a federated frontend (docs/design.md §10, §11): a followed datacenter is
listed in its own registry's revisions, and an event stream with datacenter revisions resumes a
vector Last-Event-ID exactly, per datacenter."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.api import node, register
from tests.support.http_api import EventStream, api_url, changes, get
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_a_followed_datacenter_is_listed_in_its_own_registrys_revisions(two_datacenters):
    dc1, dc2 = two_datacenters.dc1, two_datacenters.dc2
    here = await register(two_datacenters.stub(dc1), node("a1", "data", "dc1"))
    there = await register(two_datacenters.stub(dc2), node("b1", "data", "dc2"))

    async def listed():
        body = (await get(f"{api_url(dc1)}/v1/nodes?type=data")).body
        by_name = {dc["datacenter"]: dc for dc in body["datacenters"]}
        return by_name if "dc2" in by_name and by_name["dc2"]["nodes"] else None

    datacenters = await eventually(listed, message="dc2 followed into dc1's list")
    assert datacenters["dc1"]["remote"] is False and datacenters["dc1"]["revision"] == here.revision
    assert datacenters["dc2"]["remote"] is True
    assert datacenters["dc2"]["revision"] == there.revision  # dc2's etcd's, not dc1's
    assert datacenters["dc2"]["complete_revision"] >= there.revision
    assert datacenters["dc2"]["stale"] is False
    assert [n["id"] for n in datacenters["dc2"]["nodes"]] == ["b1"]


async def test_a_vector_last_event_id_resumes_each_datacenter_exactly(two_datacenters):
    dc1, dc2 = two_datacenters.dc1, two_datacenters.dc2
    stub1, stub2 = two_datacenters.stub(dc1), two_datacenters.stub(dc2)
    await register(stub2, node("b1", "data", "dc2"))
    url = f"{api_url(dc1)}/v1/watch?type=data&datacenter_revisions=true"

    async def followed() -> EventStream | None:
        stream = await EventStream.open(url)
        snapshot = await stream.next_change()
        if "b1" in str(snapshot.data):
            return stream
        await stream.close()
        return None

    stream = await eventually(followed, message="a snapshot that has dc2's b1")
    try:
        # 1. A change in each datacenter: each delta names its registry, the id both.
        local = await register(stub1, node("a1", "data", "dc1"))
        remote = await register(stub2, node("b2", "data", "dc2"))
        seen = [await stream.next_change(), await stream.next_change()]
        by_datacenter = {event.data["datacenter"]: event for event in seen}
        assert changes(by_datacenter[None]) == [("ADDED", "a1")]
        assert by_datacenter[None].data["revision"] == local.revision
        assert changes(by_datacenter["dc2"]) == [("ADDED", "b2")]
        assert by_datacenter["dc2"].data["revision"] == remote.revision
        last = seen[-1].raw_id
        assert last == f"{local.revision},dc2={remote.revision}"
    finally:
        await stream.close()
    # 2. Away: one change in each datacenter.
    missed_local = await register(stub1, node("a2", "data", "dc1"))
    missed_remote = await register(stub2, node("b3", "data", "dc2"))
    resumed = await EventStream.open(url, last_event_id=last)
    try:
        got = [await resumed.next_change(), await resumed.next_change()]
        assert sorted((e.data["datacenter"] or "", changes(e)[0][1]) for e in got) == [
            ("", "a2"),
            ("dc2", "b3"),
        ]
        assert {e.data["revision"] for e in got} == {missed_local.revision, missed_remote.revision}
        assert all(e.name == "delta" for e in got)  # no snapshot: nothing resent
    finally:
        await resumed.close()


async def test_a_stream_without_datacenter_revisions_carries_only_this_registry(two_datacenters):
    dc1, dc2 = two_datacenters.dc1, two_datacenters.dc2
    stream = await EventStream.open(f"{api_url(dc1)}/v1/watch?type=data")
    try:
        snapshot = await stream.next_change()
        assert all(not dc["remote"] for dc in snapshot.data["datacenters"])
        await register(two_datacenters.stub(dc2), node("b9", "data", "dc2"))
        local = await register(two_datacenters.stub(dc1), node("a9", "data", "dc1"))
        event = await stream.next_change()
        assert (event.id, changes(event)) == (local.revision, [("ADDED", "a9")])
    finally:
        await stream.close()


async def test_a_blocking_read_wakes_for_a_followed_datacenter_with_a_vector_index(
    two_datacenters,
):
    dc1, dc2 = two_datacenters.dc1, two_datacenters.dc2
    await register(two_datacenters.stub(dc2), node("b1", "data", "dc2"))
    url = f"{api_url(dc1)}/v1/nodes?type=data"

    async def followed():
        answer = await get(url)
        return answer.body if "dc2=0" not in str(answer.body["index"]) else None

    first = await eventually(followed, message="dc2's list reached dc1")
    index = first["index"]
    assert isinstance(index, str) and index.count(",dc2=") == 1  # a vector: this etcd, dc2's
    read = asyncio.create_task(get(f"{url}&index={index}&wait=100s"))
    await eventually(lambda: dc1.api.waiting == 1, message="the read waits")
    added = await register(two_datacenters.stub(dc2), node("b2", "data", "dc2"))
    async with asyncio.timeout(20):  # the wait was 100 s
        answer = await read
    assert answer.body["index"] == f"{index.split(',')[0]},dc2={added.revision}"
    assert answer.headers["X-Registry-Index"] == answer.body["index"]
    dc2_list = next(dc for dc in answer.body["datacenters"] if dc["datacenter"] == "dc2")
    assert [n["id"] for n in dc2_list["nodes"]] == ["b1", "b2"]
