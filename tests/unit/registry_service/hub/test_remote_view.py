"""A followed datacenter's view without a network: what the follower feeds in, what the hub fans
out, and how a subscriber's vector resumes it (hub/remote_view.py)."""

from __future__ import annotations

import asyncio
import dataclasses

from registry_service.domain import (
    DatacenterNodes,
    DeltaMessage,
    EventType,
    Health,
    Node,
    NodeEvent,
    NodeList,
    ProgressMessage,
    RemovalReason,
    ResyncReason,
    Scope,
    SnapshotMessage,
    WatchMessage,
)
from registry_service.hub.remote_view import RemoteDatacenter, RemoteViews, net_difference


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def node(node_id: str, datacenter: str = "dc2", node_type: str = "data", **meta: str) -> Node:
    return Node(node_id, node_type, datacenter, f"{node_id}:1", meta, 1)


def added(node_id: str, node_type: str = "data") -> NodeEvent:
    return NodeEvent(EventType.ADDED, node(node_id, node_type=node_type))


def removed(node_id: str) -> NodeEvent:
    return NodeEvent(EventType.REMOVED, node(node_id))


def loaded(
    *node_ids: str, revision: int = 50, history: int = 100
) -> tuple[RemoteDatacenter, Clock]:
    clock = Clock()
    remote = RemoteDatacenter("dc2", history, clock)
    remote.load([node(i) for i in node_ids], revision, revision)
    return remote, clock


def ids(message: WatchMessage) -> list[str]:
    if isinstance(message, SnapshotMessage):
        return [n.id for dc in message.nodes.datacenters for n in dc.nodes]
    assert isinstance(message, DeltaMessage)
    return [f"{e.type.value}:{e.node.id}" for e in message.events]


def test_the_first_list_goes_out_as_a_snapshot_of_that_datacenter_alone():
    remote = RemoteDatacenter("dc2", 100, Clock())
    assert remote.stale and remote.revision == 0
    message = remote.load([node("a"), node("b")], 50, 40)
    assert isinstance(message, SnapshotMessage)
    assert message.datacenter == "dc2" and message.revision == 50
    (entry,) = message.nodes.datacenters
    assert entry.remote and entry.complete_revision == 50 and entry.revision == 40
    assert ids(message) == ["a", "b"]
    assert not remote.stale


def test_a_later_full_list_goes_out_as_one_relisted_net_difference():
    remote, _ = loaded("a", "b")
    changed = node("b", zone="z")
    message = remote.load([changed, node("c")], 80, 79)
    assert isinstance(message, DeltaMessage)
    assert message.relisted and message.datacenter == "dc2" and message.revision == 80
    assert ids(message) == ["REMOVED:a", "UPDATED:b", "ADDED:c"]
    assert remote.relists == 1
    # Resumes from before the relist can no longer be served exactly: a resync of dc2 alone.
    (resync,) = remote.resume(60, Scope())
    assert isinstance(resync, SnapshotMessage) and resync.resync_reason is ResyncReason.COMPACTED


def test_an_identical_full_list_still_says_the_revisions_between_are_gone():
    remote, _ = loaded("a")
    message = remote.load([node("a")], 60, 50)
    assert isinstance(message, DeltaMessage) and message.relisted and message.events == ()
    assert remote.revision == 60
    assert message.within(Scope(types=frozenset({"session"}))) is not None


def test_deltas_pass_once_in_revision_order():
    remote, _ = loaded("a")
    first = remote.delta([added("b")], 51, relisted=False)
    assert first is not None and first.datacenter == "dc2" and ids(first) == ["ADDED:b"]
    assert remote.delta([added("b")], 51, relisted=False) is None  # a resumed stream's repeat
    assert remote.delta([removed("a")], 49, relisted=False) is None
    assert remote.revision == 51
    assert [n.id for n in remote.entry(Scope()).nodes] == ["a", "b"]


def test_a_delta_before_any_list_is_dropped():
    remote = RemoteDatacenter("dc2", 100, Clock())
    assert remote.delta([added("a")], 5, relisted=False) is None
    assert len(remote) == 0


def test_events_of_other_datacenters_are_not_applied():
    remote, _ = loaded("a")
    message = remote.delta(
        [added("b"), NodeEvent(EventType.ADDED, node("x", "dc9"))], 51, relisted=False
    )
    assert message is not None and ids(message) == ["ADDED:b"]


def test_a_broken_link_keeps_the_list_stale_and_ageing_never_emptied():
    remote, clock = loaded("a", "b")
    remote.interrupted()
    clock.now += 30
    entry = remote.entry(Scope())
    assert entry.stale and [n.id for n in entry.nodes] == ["a", "b"]
    assert entry.age_seconds == 30
    remote.progress(50, stale=False, age_seconds=0.5)
    assert not remote.stale and remote.age_seconds() == 0.5


def test_the_remote_frontend_losing_its_etcd_shows_as_stale_until_a_change():
    remote, _ = loaded("a")
    remote.progress(55, stale=True, age_seconds=4.0)
    assert remote.stale and remote.revision == 55
    remote.delta([added("b")], 56, relisted=False)
    assert not remote.stale


def test_resume_gives_exactly_the_changes_after_the_vectors_revision():
    remote, _ = loaded("a")
    remote.delta([added("b")], 51, relisted=False)
    remote.delta([added("c", "session")], 52, relisted=False)
    remote.delta([removed("a")], 53, relisted=False)
    assert [ids(m) for m in remote.resume(51, Scope())] == [["ADDED:c"], ["REMOVED:a"]]
    sessions = remote.resume(51, Scope(types=frozenset({"session"})))
    assert [ids(m) for m in sessions] == [["ADDED:c"]]
    assert remote.resume(53, Scope()) == []


def test_resume_decisions_when_the_history_cannot_serve():
    remote, _ = loaded("a", history=2)
    for revision, name in ((51, "b"), (52, "c"), (53, "d")):
        remote.delta([added(name)], revision, relisted=False)
    (compacted,) = remote.resume(50, Scope())
    assert isinstance(compacted, SnapshotMessage)
    assert compacted.resync_reason is ResyncReason.COMPACTED and compacted.datacenter == "dc2"
    (ahead,) = remote.resume(99, Scope())  # further along than this copy: never older (D80)
    assert isinstance(ahead, ProgressMessage) and ahead.datacenter == "dc2"
    assert (ahead.revision, ahead.stale) == (99, True)
    (fresh,) = remote.resume(0, Scope())
    assert isinstance(fresh, SnapshotMessage) and fresh.resync_reason is None
    assert ids(fresh) == ["a", "b", "c", "d"]


def test_a_datacenter_not_reached_yet_leaves_the_subscriber_its_own_list():
    remote = RemoteDatacenter("dc2", 100, Clock())
    (held,) = remote.resume(70, Scope())
    assert isinstance(held, ProgressMessage) and (held.revision, held.stale) == (70, True)
    assert remote.behind(70) and not remote.behind(0)
    assert remote.resume(0, Scope()) == []
    entry = remote.entry(Scope())
    assert entry.complete_revision == 0 and entry.stale and entry.nodes == ()


def test_a_vector_ahead_of_the_copy_is_held_and_left_out_of_whole_lists():
    views = RemoteViews(["dc2", "dc3"], 100, Clock())
    views.load("dc2", [node("a")], 70, 70)
    views.load("dc3", [node("c", "dc3")], 40, 40)
    assert views.ahead(Scope(), {"dc2": 75, "dc3": 40}) == {"dc2": 75}
    assert views.ahead(Scope(frozenset({"dc3"})), {"dc2": 75}) == {}
    merged = views.merged(NodeList(9, ()), Scope(), {"dc2": 75})
    held, dc3 = merged.datacenters
    assert (held.datacenter, held.complete_revision, held.stale, held.nodes) == ("dc2", 0, True, ())
    assert (dc3.datacenter, dc3.complete_revision, [n.id for n in dc3.nodes]) == ("dc3", 40, ["c"])
    caught_up = views.merged(NodeList(9, ()), Scope(), {"dc2": 70})
    assert caught_up.datacenters[0].complete_revision == 70


def test_net_difference_removes_then_adds_and_updates():
    old = {n.key: n for n in (node("a"), node("b"))}
    new = {n.key: n for n in (node("b", zone="z"), node("c"))}
    events = [(e.type.value, e.node.id) for e in net_difference(old, new)]
    assert events == [("REMOVED", "a"), ("UPDATED", "b"), ("ADDED", "c")]


def test_the_merged_list_serves_a_followed_datacenter_from_its_own_registry_only():
    sent: list[WatchMessage] = []
    views = RemoteViews(["dc2"], 100, Clock())
    views.listen(sent.append)
    views.load("dc2", [node("far")], 70, 70)
    stale_local_copy = DatacenterNodes("dc2", 5, (node("old"),), complete_revision=9)
    local = NodeList(
        9,
        (DatacenterNodes("dc1", 8, (node("near", "dc1"),), complete_revision=9), stale_local_copy),
    )
    merged = views.merged(local, Scope())
    assert [(dc.datacenter, dc.remote, [n.id for n in dc.nodes]) for dc in merged.datacenters] == [
        ("dc1", False, ["near"]),
        ("dc2", True, ["far"]),
    ]
    assert merged.revision == 9
    only_dc1 = views.merged(NodeList(9, local.datacenters[:1]), Scope(frozenset({"dc1"})))
    assert [dc.datacenter for dc in only_dc1.datacenters] == ["dc1"]


def test_turning_stale_or_fresh_is_announced_at_once():
    sent: list[WatchMessage] = []
    views = RemoteViews(["dc2"], 100, Clock())
    views.listen(sent.append)
    views.load("dc2", [node("a")], 70, 70)
    first, fresh = sent  # the first list, and it turned fresh (for scopes the list skips)
    assert isinstance(first, SnapshotMessage)
    assert isinstance(fresh, ProgressMessage) and not fresh.stale
    views.interrupted("dc2")
    assert isinstance(sent[-1], ProgressMessage) and sent[-1].stale
    assert sent[-1].datacenter == "dc2" and sent[-1].revision == 70
    count = len(sent)
    views.interrupted("dc2")
    assert len(sent) == count  # no change, nothing said
    views.progress("dc2", 71, False, 0.0)
    assert isinstance(sent[-1], ProgressMessage) and not sent[-1].stale


async def test_catch_up_waits_for_a_follower_behind_the_vector():
    views = RemoteViews(["dc2", "dc3"], 100, Clock())
    views.load("dc2", [node("a")], 70, 70)
    waiting = asyncio.create_task(views.catch_up({"dc2": 72, "dc3": 9}, timeout=5))
    await asyncio.sleep(0)
    assert not waiting.done()
    views.delta("dc2", [added("b")], 72, False)
    await asyncio.wait_for(waiting, 1)  # dc3 not reached yet: nothing to wait for there
    await views.catch_up({"dc2": 99}, timeout=0.01)  # gives up; the resume decides (resync)


def test_a_followed_datacenters_node_that_fails_leaves_a_healthy_only_scope():
    remote, _ = loaded("a", "b")
    failing = dataclasses.replace(node("a"), health=Health.FAILING)
    # The stream says UPDATED without the node before: the view knows it, and adds it.
    delta = remote.delta([NodeEvent(EventType.UPDATED, failing)], 51, relisted=False)
    assert delta is not None and delta.events[0].previous == node("a")
    healthy = Scope(healthy_only=True)
    (gone,) = delta.within(healthy).events
    assert (gone.type, gone.reason) == (EventType.REMOVED, RemovalReason.UNHEALTHY)
    assert ids(remote.snapshot(healthy)) == ["b"]
    assert ids(remote.snapshot(Scope())) == ["a", "b"]
