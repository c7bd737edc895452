"""NodeWatch's view logic without a network: stream messages in, view and events out."""

from __future__ import annotations

import asyncio

from noderegistry.v1 import registry_pb2 as pb

from client_sdk import ClientConfig, EventType, RemovalReason, Scope, WatchConfig
from client_sdk._transport import Transport
from client_sdk._watch import NodeWatch


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_watch(**config: float) -> tuple[NodeWatch, Clock]:
    clock = Clock()
    watch = NodeWatch(
        Transport("127.0.0.1:1", ClientConfig()), Scope(), WatchConfig(**config), clock
    )
    return watch, clock


def pb_node(node_id: str) -> pb.Node:
    return pb.Node(
        id=node_id,
        type="data",
        datacenter="dc1",
        address=f"{node_id}:1",
        incarnation=1,
        status=pb.NODE_STATUS_UP,
    )


def snapshot(revision: int, *ids: str, resync: bool = False) -> pb.WatchNodesResponse:
    return pb.WatchNodesResponse(
        snapshot=pb.Snapshot(
            revision=revision,
            resync=resync,
            datacenters=[pb.DatacenterNodes(datacenter="dc1", nodes=[pb_node(i) for i in ids])],
        )
    )


def removed(revision: int, node_id: str, reason: int = pb.REMOVAL_REASON_EXPIRED):
    return pb.WatchNodesResponse(
        delta=pb.Delta(
            revision=revision,
            events=[pb.NodeEvent(type=pb.EVENT_TYPE_REMOVED, node=pb_node(node_id), reason=reason)],
        )
    )


def added(revision: int, node_id: str):
    return pb.WatchNodesResponse(
        delta=pb.Delta(
            revision=revision,
            events=[pb.NodeEvent(type=pb.EVENT_TYPE_ADDED, node=pb_node(node_id))],
        )
    )


def ids(watch: NodeWatch) -> set[str]:
    return {n.id for n in watch.current()}


def test_losses_within_the_window_add_up_to_a_hold():
    watch, clock = make_watch()
    watch._apply(snapshot(10, *"abcdef"))
    for revision, node_id in zip((11, 12, 13), "abc", strict=True):
        clock.now += 1
        watch._apply(removed(revision, node_id))
    # a and b fit the budget (3 of 6 is the limit); c would reach it: held back.
    assert ids(watch) == set("cdef")
    assert watch.stale and watch.current().revision == 12
    assert watch.revision == 13


def test_losses_spread_wider_than_the_window_are_not_suspicious():
    watch, clock = make_watch(shrink_window_seconds=5)
    watch._apply(snapshot(10, *"abcdef"))
    for revision, node_id in zip((11, 12, 13, 14), "abcd", strict=True):
        clock.now += 10
        watch._apply(removed(revision, node_id))
    assert ids(watch) == set("ef") and not watch.stale


def test_deregistrations_are_never_held_back():
    watch, _ = make_watch()
    watch._apply(snapshot(10, *"abcdef"))
    for revision, node_id in zip(range(11, 16), "abcde", strict=True):
        watch._apply(removed(revision, node_id, pb.REMOVAL_REASON_DEREGISTERED))
    assert ids(watch) == {"f"} and not watch.stale


def test_an_empty_resync_snapshot_is_held_and_released_when_nodes_return():
    watch, _ = make_watch()
    reports = []
    watch._config = WatchConfig(on_suspicious_shrink=reports.append)
    watch._apply(snapshot(10, *"abcd"))
    watch._apply(snapshot(20, resync=True))
    assert ids(watch) == set("abcd") and watch.stale
    assert (reports[0].known, reports[0].remaining) == (4, 0)
    watch._apply(snapshot(30, *"abcd", resync=True))
    assert ids(watch) == set("abcd") and not watch.stale
    assert watch.current().revision == 30


def test_a_held_shrink_is_accepted_after_the_hold_with_diffed_events():
    watch, clock = make_watch(shrink_hold_seconds=60)
    events = watch.events()
    watch._apply(snapshot(10, *"abcd"))
    watch._apply(snapshot(20, "a", resync=True))
    assert watch.stale
    clock.now += 61
    watch._apply(pb.WatchNodesResponse(progress=pb.Progress(revision=21)))
    assert ids(watch) == {"a"} and not watch.stale

    async def drain() -> list:
        out = []
        while not events._queue.empty():
            item = events._queue.get_nowait()
            if hasattr(item, "type"):
                out.append(item)
        return out

    got = asyncio.run(drain())
    assert [(e.type, e.node.id) for e in got][-3:] == [
        (EventType.REMOVED, "b"),
        (EventType.REMOVED, "c"),
        (EventType.REMOVED, "d"),
    ]
    assert all(e.reason is RemovalReason.UNSPECIFIED for e in got if e.type is EventType.REMOVED)


def test_small_clusters_lose_nodes_normally():
    watch, _ = make_watch()
    watch._apply(snapshot(10, "a", "b"))
    watch._apply(removed(11, "a"))
    watch._apply(removed(12, "b"))
    assert ids(watch) == set() and not watch.stale
    watch._apply(added(13, "c"))
    assert ids(watch) == {"c"}
