"""The watch's view logic without a network: stream steps in, the view and its events out."""

from __future__ import annotations

from client_sdk import EventType, Node, NodeEvent, NodeStatus, RemovalReason, WatchConfig
from client_sdk._view import WatchView, diff


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_view(**config: float) -> tuple[WatchView, Clock]:
    clock = Clock()
    return WatchView(WatchConfig(**config), clock), clock  # type: ignore[arg-type]


def node(node_id: str, status: NodeStatus = NodeStatus.UP) -> Node:
    return Node(node_id, "data", "dc1", f"{node_id}:1", incarnation=1, status=status)


def removed(view: WatchView, revision: int, node_id: str, reason=RemovalReason.EXPIRED):
    event = NodeEvent(EventType.REMOVED, node(node_id), revision, reason)
    return view.apply_delta([event], revision, relisted=False)


def added(view: WatchView, revision: int, node_id: str):
    event = NodeEvent(EventType.ADDED, node(node_id), revision)
    return view.apply_delta([event], revision, relisted=False)


def ids(view: WatchView) -> set[str]:
    return {n.id for n in view.current()}


def changes(update) -> list[tuple[EventType, str]]:
    return [(e.type, e.node.id) for e in update.events]


def test_the_first_snapshot_publishes_every_node_as_added():
    view, _ = make_view()
    update = view.apply_snapshot([node("b"), node("a")], 10, resync=False)
    assert changes(update) == [(EventType.ADDED, "a"), (EventType.ADDED, "b")]
    assert view.current().revision == 10 and view.revision == 10
    assert view.resyncs == 0


def test_a_resync_snapshot_publishes_only_the_difference():
    view, _ = make_view()
    view.apply_snapshot([node("a"), node("b")], 10, resync=False)
    update = view.apply_snapshot([node("a", NodeStatus.DRAINING), node("c")], 20, resync=True)
    assert changes(update) == [
        (EventType.REMOVED, "b"),
        (EventType.UPDATED, "a"),
        (EventType.ADDED, "c"),
    ]
    assert view.resyncs == 1 and view.current().revision == 20


def test_a_delta_publishes_the_streams_own_events_with_their_reasons():
    view, _ = make_view()
    view.apply_snapshot([node("a"), node("b")], 10, resync=False)
    update = removed(view, 11, "a", RemovalReason.EVICTED)
    assert [(e.type, e.node.id, e.reason) for e in update.events] == [
        (EventType.REMOVED, "a", RemovalReason.EVICTED)
    ]
    assert ids(view) == {"b"} and view.revision == 11


def test_a_relisted_delta_is_diffed_and_keeps_deregistrations_deliberate():
    view, _ = make_view()
    view.apply_snapshot([node("a"), node("b")], 10, resync=False)
    gone = NodeEvent(EventType.REMOVED, node("a"), 12, RemovalReason.DEREGISTERED)
    new = NodeEvent(EventType.ADDED, node("c"), 12)
    update = view.apply_delta([gone, new], 12, relisted=True)
    assert [(e.type, e.node.id, e.reason) for e in update.events] == [
        (EventType.REMOVED, "a", RemovalReason.DEREGISTERED),
        (EventType.ADDED, "c", RemovalReason.UNSPECIFIED),
    ]


def test_progress_moves_the_revision_and_carries_the_frontends_staleness():
    view, _ = make_view()
    view.apply_snapshot([node("a")], 10, resync=False)
    assert view.apply_progress(15, stale=True).events == ()
    assert view.revision == 15 and view.stale and view.current().stale
    view.apply_progress(12, stale=True)
    assert view.revision == 15  # progress never moves it back
    added(view, 16, "b")  # a change can only come from etcd: no longer stale
    assert not view.stale


def test_progress_carries_the_frontends_age_until_a_change_arrives():
    view, _ = make_view()
    view.apply_snapshot([node("a")], 10, resync=False)
    view.apply_progress(11, stale=True, age_seconds=4.5)
    assert (view.current().stale, view.current().cache_age_seconds) == (True, 4.5)
    view.apply_progress(11, stale=True, age_seconds=5.5)
    assert view.current().cache_age_seconds == 5.5
    added(view, 12, "b")
    assert (view.current().stale, view.current().cache_age_seconds) == (False, 0.0)


def test_losses_within_the_window_add_up_to_a_hold():
    view, clock = make_view()
    view.apply_snapshot([node(i) for i in "abcdef"], 10, resync=False)
    updates = []
    for revision, node_id in zip((11, 12, 13), "abc", strict=True):
        clock.now += 1
        updates.append(removed(view, revision, node_id))
    # a and b fit the budget (3 of 6 is the limit); c would reach it: held back.
    assert ids(view) == set("cdef")
    assert view.stale and view.current().revision == 12
    assert view.revision == 13
    assert [u.held for u in updates[:2]] == [None, None]
    assert updates[2].events == () and view.shrinks_held == 1
    held = updates[2].held
    assert held is not None and (held.known, held.remaining, held.revision) == (6, 3, 13)


def test_losses_spread_wider_than_the_window_are_not_suspicious():
    view, clock = make_view(shrink_window_seconds=5)
    view.apply_snapshot([node(i) for i in "abcdef"], 10, resync=False)
    for revision, node_id in zip((11, 12, 13, 14), "abcd", strict=True):
        clock.now += 10
        removed(view, revision, node_id)
    assert ids(view) == set("ef") and not view.stale


def test_deregistrations_are_never_held_back():
    view, _ = make_view()
    view.apply_snapshot([node(i) for i in "abcdef"], 10, resync=False)
    for revision, node_id in zip(range(11, 16), "abcde", strict=True):
        removed(view, revision, node_id, RemovalReason.DEREGISTERED)
    assert ids(view) == {"f"} and not view.stale and view.shrinks_held == 0


def test_an_empty_resync_snapshot_is_held_and_released_when_nodes_return():
    view, _ = make_view()
    view.apply_snapshot([node(i) for i in "abcd"], 10, resync=False)
    held = view.apply_snapshot([], 20, resync=True)
    assert ids(view) == set("abcd") and view.stale
    assert held.held is not None and (held.held.known, held.held.remaining) == (4, 0)
    back = view.apply_snapshot([node(i) for i in "abcd"], 30, resync=True)
    assert ids(view) == set("abcd") and not view.stale
    assert back.events == () and back.held is None
    assert view.current().revision == 30


def test_a_held_shrink_is_accepted_after_the_hold_with_diffed_events():
    view, clock = make_view(shrink_hold_seconds=60)
    view.apply_snapshot([node(i) for i in "abcd"], 10, resync=False)
    view.apply_snapshot([node("a")], 20, resync=True)
    assert view.stale
    clock.now += 59
    assert view.apply_progress(21, stale=False).events == () and view.stale
    clock.now += 2
    accepted = view.apply_progress(22, stale=False)
    assert ids(view) == {"a"} and not view.stale
    assert changes(accepted) == [
        (EventType.REMOVED, "b"),
        (EventType.REMOVED, "c"),
        (EventType.REMOVED, "d"),
    ]
    assert all(e.reason is RemovalReason.UNSPECIFIED for e in accepted.events)
    assert view.current().revision == 22


def test_small_clusters_lose_nodes_normally():
    view, _ = make_view()
    view.apply_snapshot([node("a"), node("b")], 10, resync=False)
    removed(view, 11, "a")
    removed(view, 12, "b")
    assert ids(view) == set() and not view.stale
    added(view, 13, "c")
    assert ids(view) == {"c"}


def test_diff_lists_removals_first_then_additions_and_updates_in_key_order():
    old = {n.key: n for n in (node("a"), node("b"), node("c"))}
    new = {n.key: n for n in (node("d"), node("a", NodeStatus.DRAINING), node("c"))}
    assert [(e.type, e.node.id) for e in diff(old, new, 7)] == [
        (EventType.REMOVED, "b"),
        (EventType.UPDATED, "a"),
        (EventType.ADDED, "d"),
    ]
    assert diff(old, dict(old), 7) == []
