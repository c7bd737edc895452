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


def added(node_id: str, datacenter: str, revision: int) -> NodeEvent:
    return NodeEvent(EventType.ADDED, node(node_id, datacenter), revision)


def test_an_older_snapshot_of_a_datacenter_is_refused_and_the_stream_skips_what_it_has():
    """Resumed on a frontend whose copy of dc2 lags (D80): 500 held, its list at 495 refused."""
    view = started()
    update = view.apply_snapshot(
        [node("f", "dc2")], 495, resync=True, states={"dc2": remote(495)}, datacenter="dc2"
    )
    assert update.events == () and update.refused == ("dc2",)
    assert ids(view) == ["a", "f", "g"] and view.remote_revisions == {"dc2": 500}
    assert view.stale and view.current().datacenter_states["dc2"].stale
    assert view.resyncs == 0
    # The lagging copy's changes up to 500 are the view's already: skipped, not applied twice.
    assert view.apply_delta([added("g", "dc2", 498)], 498, relisted=False, datacenter="dc2").refused
    assert view.apply_progress(499, stale=False, datacenter="dc2").refused == ("dc2",)
    assert view.stale and view.remote_revisions == {"dc2": 500}
    update = view.apply_delta([added("h", "dc2", 501)], 501, relisted=False, datacenter="dc2")
    assert [(e.type, e.node.id) for e in update.events] == [(EventType.ADDED, "h")]
    assert not update.refused and not view.stale and view.remote_revisions == {"dc2": 501}


def test_an_older_whole_list_keeps_each_registry_the_view_holds_further_along():
    view = started()
    update = view.apply_snapshot(
        [node("a", "dc1"), node("f", "dc2")],
        8,
        resync=True,
        states={"dc1": DatacenterState(8, 8), "dc2": remote(490)},
    )
    assert update.events == () and set(update.refused) == {"", "dc2"}
    assert ids(view) == ["a", "f", "g"]
    assert view.revision == 10 and view.remote_revisions == {"dc2": 500}
    states = view.current().datacenter_states
    assert states["dc1"].stale and states["dc2"].stale
    view.apply_progress(10, stale=False)  # the frontend's view reached what it held: in step
    assert not view.current().datacenter_states["dc1"].stale
    # A newer whole list is taken as before, with the part of dc2 that is not older.
    newer = [node("a", "dc1"), node("b", "dc1"), node("f", "dc2"), node("k", "dc2")]
    update = view.apply_snapshot(
        newer, 12, resync=True, states={"dc1": DatacenterState(12, 12), "dc2": remote(505)}
    )
    assert [(e.type, e.node.id) for e in update.events] == [
        (EventType.REMOVED, "g"),
        (EventType.ADDED, "b"),
        (EventType.ADDED, "k"),
    ]
    assert not view.stale and view.revision == 12 and view.remote_revisions == {"dc2": 505}


def test_an_older_local_list_is_refused_and_a_progress_past_it_ends_the_refusal():
    view = started()
    dc2 = [node("f", "dc2"), node("g", "dc2")]
    update = view.apply_snapshot(dc2, 7, resync=True, states={"dc2": remote(500)})
    assert update.refused == ("",) and ids(view) == ["a", "f", "g"] and view.revision == 10
    assert view.apply_progress(9, stale=False).refused == ("",)
    assert view.stale
    assert not view.apply_progress(11, stale=False).refused
    assert not view.stale and view.revision == 11


def test_a_relisted_difference_past_a_refused_list_cannot_apply_and_asks_to_resume():
    view = started()
    view.apply_snapshot([], 495, resync=True, states={"dc2": remote(495)}, datacenter="dc2")
    update = view.apply_delta(
        [NodeEvent(EventType.REMOVED, node("f", "dc2"), 502)], 502, relisted=True, datacenter="dc2"
    )
    assert update.resume and update.events == ()
    assert ids(view) == ["a", "f", "g"] and view.remote_revisions == {"dc2": 500}
