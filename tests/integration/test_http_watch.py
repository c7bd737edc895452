"""GET /v1/watch: WatchNodes as Server-Sent Events, resumed with Last-Event-ID exactly as
`resume_revision` (docs/design.md §11)."""

from __future__ import annotations

import pytest
from noderegistry.v1 import registry_pb2 as pb

from tests.support.api import key_of, node, register
from tests.support.http_api import EventStream, api_url, changes, node_ids
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_a_stream_is_a_snapshot_then_one_delta_per_revision_then_progress(
    start_frontend, connect
):
    frontend = await start_frontend()
    stub = connect(frontend)
    first = await register(stub, node("d1", "data"))
    stream = await EventStream.open(f"{api_url(frontend)}/v1/watch?type=data")
    try:
        snapshot = await stream.next_change()
        assert snapshot.name == "snapshot"
        assert snapshot.id == snapshot.data["revision"] >= first.revision
        assert snapshot.data["resync"] is False and snapshot.data["resync_reason"] is None
        assert node_ids(snapshot.data) == ["dc1/data/d1"]
        await register(stub, node("m1", "meta"))  # outside the scope: no delta
        second = await register(stub, node("d2", "data"))
        await stub.Deregister(pb.DeregisterRequest(key=key_of(first.node), token=first.token))
        added, removed = await stream.next_change(), await stream.next_change()
        assert (added.name, added.id, changes(added)) == (
            "delta",
            second.revision,
            [("ADDED", "d2")],
        )
        assert removed.name == "delta" and removed.id > second.revision
        assert changes(removed) == [("REMOVED", "d1")]
        assert removed.data["events"][0]["reason"] == "DEREGISTERED"
        # Idle: the heartbeat is a progress event (every watch_progress_seconds, 1 s here).
        progress = await stream.next(timeout=10)
        assert progress is not None and progress.name == "progress"
        assert progress.id >= removed.id and progress.data["stale"] is False
    finally:
        await stream.close()


async def test_resuming_after_a_disconnect_gives_exactly_the_changes_missed(
    start_frontend, connect
):
    one, two = await start_frontend(), await start_frontend()
    stub = connect(one)
    kept = await register(stub, node("kept", "data"))
    stream = await EventStream.open(f"{api_url(one)}/v1/watch?type=data")
    snapshot = await stream.next_change()
    seen = snapshot.id
    await stream.close()  # 1. the client goes away
    # 2. Changes while it is away: two in its scope, one outside.
    added = await register(stub, node("new", "data"))
    await register(stub, node("other", "meta"))
    await stub.Deregister(pb.DeregisterRequest(key=key_of(kept.node), token=kept.token))
    # 3. It resumes on the other frontend with the last id it saw: exactly what it missed.
    resumed = await EventStream.open(f"{api_url(two)}/v1/watch?type=data", last_event_id=seen)
    try:
        missed = [await resumed.next_change(), await resumed.next_change()]
        assert [(e.name, changes(e)) for e in missed] == [
            ("delta", [("ADDED", "new")]),
            ("delta", [("REMOVED", "kept")]),
        ]
        assert missed[0].id == added.revision and missed[1].id > added.revision
        # Nothing more: the next event is a heartbeat, not a change.
        heartbeat = await resumed.next(timeout=10)
        assert heartbeat is not None and heartbeat.name == "progress"
    finally:
        await resumed.close()


async def test_the_last_event_id_header_wins_over_the_parameter(start_frontend, connect):
    frontend = await start_frontend()
    stub = connect(frontend)
    first = await register(stub, node("a", "data"))
    second = await register(stub, node("b", "data"))
    url = f"{api_url(frontend)}/v1/watch?type=data&last_event_id={first.revision - 1}"
    by_parameter = await EventStream.open(url)
    by_header = await EventStream.open(url, last_event_id=first.revision)
    try:
        assert changes(await by_parameter.next_change()) == [("ADDED", "a")]
        header_event = await by_header.next_change()
        assert (header_event.id, changes(header_event)) == (second.revision, [("ADDED", "b")])
    finally:
        await by_parameter.close()
        await by_header.close()


async def test_a_revision_gone_from_the_history_resumes_with_a_resync_snapshot(
    start_frontend, connect
):
    frontend = await start_frontend(watch_history_revisions=2)
    stub = connect(frontend)
    first = await register(stub, node("n0", "data"))
    for index in range(1, 5):
        await register(stub, node(f"n{index}", "data"))
    url = f"{api_url(frontend)}/v1/watch?type=data"
    compacted = await EventStream.open(url, last_event_id=first.revision)
    ahead = await EventStream.open(url, last_event_id=first.revision + 10_000)
    try:
        snapshot = await compacted.next_change()
        assert snapshot.name == "snapshot"
        assert (snapshot.data["resync"], snapshot.data["resync_reason"]) == (True, "COMPACTED")
        assert len(node_ids(snapshot.data)) == 5
        future = await ahead.next_change()
        assert (future.name, future.data["resync_reason"]) == ("snapshot", "UNKNOWN_REVISION")
    finally:
        await compacted.close()
        await ahead.close()


async def test_streams_per_peer_are_limited_across_grpc_and_http(start_frontend, connect):
    frontend = await start_frontend(max_streams_per_peer=2)
    grpc_watch = connect(frontend).WatchNodes(pb.WatchNodesRequest())
    await grpc_watch.read()  # its snapshot: the stream is open
    stream = await EventStream.open(f"{api_url(frontend)}/v1/watch")
    refused = await EventStream.open(f"{api_url(frontend)}/v1/watch")
    try:
        assert stream.status == 200
        assert refused.status == 429
        assert refused.error["error"]["code"] == "RESOURCE_EXHAUSTED"
        assert "the limit is 2 (max_streams_per_peer)" in refused.error["error"]["message"]
    finally:
        grpc_watch.cancel()
        await stream.close()
    # Closed streams free their places.
    again = await eventually(
        lambda: _opened(f"{api_url(frontend)}/v1/watch"), message="a place again"
    )
    await again.close()


async def _opened(url: str) -> EventStream | None:
    stream = await EventStream.open(url)
    if stream.status == 200:
        return stream
    await stream.close()
    return None


async def test_a_stopping_frontend_ends_the_stream_with_an_unavailable_error_event(
    start_frontend,
):
    frontend = await start_frontend()
    stream = await EventStream.open(f"{api_url(frontend)}/v1/watch")
    try:
        await stream.next_change()
        await frontend.stop()
        event = await stream.next_change()
        assert event.name == "error"
        assert event.data["error"]["code"] == "UNAVAILABLE"
        assert "shutting down" in event.data["error"]["message"]
        assert await stream.next() is None  # then it ends
    finally:
        await stream.close()


async def test_a_bad_watch_request_is_refused_before_the_stream_starts(start_frontend):
    frontend = await start_frontend()
    for query, message in (
        ("?last_event_id=-1", "last_event_id must be a revision"),
        ("?type=BAD", "scope type 'BAD' must match"),
        ("?since=4", "unknown query parameter since: this path takes datacenter, type"),
    ):
        refused = await EventStream.open(f"{api_url(frontend)}/v1/watch{query}")
        assert refused.status == 400, query
        assert message in refused.error["error"]["message"]
