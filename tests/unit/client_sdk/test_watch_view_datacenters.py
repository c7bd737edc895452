"""The SDK's view of several datacenters, each in its own registry's revisions (federation):
the vector it resumes from, per-datacenter snapshots, and remote lists never emptied."""

from __future__ import annotations

from client_sdk import DatacenterState, EventType, Node, NodeEvent, RemovalReason, WatchConfig
from client_sdk._view import WatchView
from tests.unit.client_sdk.test_watch_view import Clock


def node(node_id: str, datacenter: str) -> Node:
    return Node(node_id, "data", datacenter, f"{node_id}:1", incarnation=1)


def remote(revision: int, stale: bool = False) -> DatacenterState:
    return DatacenterState(revision, revision, remote=True, stale=stale)


def started() -> WatchView:
    """dc1 local at revision 10; dc2 remote at its revision 500."""
    view = WatchView(WatchConfig(), Clock())
    view.apply_snapshot(
        [node("a", "dc1"), node("f", "dc2"), node("g", "dc2")],
        10,
        resync=False,
        states={"dc1": DatacenterState(10, 9), "dc2": remote(500)},
    )
    return view


def ids(view: WatchView) -> list[str]:
    return sorted(n.id for n in view.current())


def test_each_registry_keeps_its_own_revision():
    view = started()
    assert view.revision == 10 and view.remote_revisions == {"dc2": 500}
    event = NodeEvent(EventType.ADDED, node("h", "dc2"), 501)
    view.apply_delta([event], 501, relisted=False, datacenter="dc2")
    assert view.revision == 10 and view.remote_revisions == {"dc2": 501}
    view.apply_delta([NodeEvent(EventType.ADDED, node("b", "dc1"), 11)], 11, relisted=False)
    view.apply_progress(520, stale=False, datacenter="dc2")
    assert view.revision == 11 and view.remote_revisions == {"dc2": 520}
    states = view.current().datacenter_states
    assert states["dc1"] == DatacenterState(11, 11)
    assert states["dc2"].revision == 520 and states["dc2"].changed_revision == 501


def test_a_stale_remote_marks_the_view_stale_and_keeps_its_nodes():
    view = started()
    update = view.apply_progress(500, stale=True, age_seconds=12.0, datacenter="dc2")
    assert update.events == ()
    current = view.current()
    assert current.stale and view.stale
    assert current.datacenter_states["dc2"].stale
    assert current.datacenter_states["dc2"].age_seconds == 12.0
    assert not current.datacenter_states["dc1"].stale
    assert ids(view) == ["a", "f", "g"]
    view.apply_progress(501, stale=False, datacenter="dc2")
    assert not view.stale
    assert view.shrinks_held == 0  # a stale remote loses nothing: the guard has nothing to hold


def test_a_snapshot_of_one_datacenter_replaces_only_that_datacenters_nodes():
    view = started()
    update = view.apply_snapshot(
        [node("g", "dc2"), node("k", "dc2")],
        600,
        resync=True,
        states={"dc2": remote(600)},
        datacenter="dc2",
    )
    assert [(e.type, e.node.id) for e in update.events] == [
        (EventType.REMOVED, "f"),
        (EventType.ADDED, "k"),
    ]
    assert ids(view) == ["a", "g", "k"]
    assert view.revision == 10 and view.remote_revisions == {"dc2": 600}


def test_a_full_snapshot_keeps_a_remote_datacenter_the_frontend_has_not_reached():
    """A resync from a frontend whose follower has no list of dc2 yet: never emptied."""
    view = started()
    update = view.apply_snapshot(
        [node("a", "dc1"), node("b", "dc1")],
        20,
        resync=True,
        states={"dc1": DatacenterState(20, 20), "dc2": remote(0, stale=True)},
    )
    assert [(e.type, e.node.id) for e in update.events] == [(EventType.ADDED, "b")]
    assert ids(view) == ["a", "b", "f", "g"]
    assert view.remote_revisions == {"dc2": 500}
    assert view.current().datacenter_states["dc2"].stale


def test_a_relisted_remote_delta_is_applied_as_a_net_difference():
    view = started()
    gone = NodeEvent(EventType.REMOVED, node("f", "dc2"), 700)
    update = view.apply_delta([gone], 700, relisted=True, datacenter="dc2")
    assert [(e.type, e.node.id, e.reason) for e in update.events] == [
        (EventType.REMOVED, "f", RemovalReason.UNSPECIFIED)
    ]
    assert view.remote_revisions == {"dc2": 700}


def test_the_first_snapshot_without_federation_fields_still_works():
    """An older frontend: no states at all; the local revision is the snapshot's."""
    view = WatchView(WatchConfig(), Clock())
    view.apply_snapshot([node("a", "dc1")], 10, resync=False)
    assert view.revision == 10 and view.remote_revisions == {}
    assert view.current().datacenter_states["dc1"].revision == 10
