"""A scope's label selector on the way to a subscriber: snapshots and deltas cut to it."""

from __future__ import annotations

from registry_service.domain import DeltaMessage, EventType, Node, NodeEvent, Scope
from registry_service.selectors import parse_selector

ZONE_A = Scope(types=frozenset({"data"}), selector=parse_selector("zone=a"))


def data(node_id: str, **metadata: str) -> Node:
    return Node(node_id, "data", "dc1", "10.0.0.1:80", metadata)


def cut(event: NodeEvent) -> tuple[EventType, str] | None:
    result = ZONE_A.cut(event)
    return None if result is None else (result.type, result.node.id)


def test_additions_and_removals_pass_when_the_node_matches():
    assert cut(NodeEvent(EventType.ADDED, data("n", zone="a"))) == (EventType.ADDED, "n")
    assert cut(NodeEvent(EventType.ADDED, data("n", zone="b"))) is None
    assert cut(NodeEvent(EventType.REMOVED, data("n", zone="a"))) == (EventType.REMOVED, "n")
    assert cut(NodeEvent(EventType.REMOVED, data("n", zone="b"))) is None


def test_an_update_across_the_selector_is_an_addition_or_a_removal():
    a, b = data("n", zone="a"), data("n", zone="b")
    assert cut(NodeEvent(EventType.UPDATED, a, previous=a)) == (EventType.UPDATED, "n")
    assert cut(NodeEvent(EventType.UPDATED, a, previous=b)) == (EventType.ADDED, "n")
    assert cut(NodeEvent(EventType.UPDATED, b, previous=a)) == (EventType.REMOVED, "n")
    assert cut(NodeEvent(EventType.UPDATED, b, previous=b)) is None


def test_an_update_whose_previous_node_is_unknown_removes_a_node_that_left():
    assert cut(NodeEvent(EventType.UPDATED, data("n", zone="b"))) == (EventType.REMOVED, "n")
    assert cut(NodeEvent(EventType.UPDATED, data("n", zone="a"))) == (EventType.UPDATED, "n")


def test_a_delta_is_shared_whole_when_the_selector_takes_all_of_it():
    message = DeltaMessage(7, (NodeEvent(EventType.ADDED, data("n", zone="a")),))
    assert message.within(ZONE_A) is message
    mixed = DeltaMessage(
        8,
        (
            NodeEvent(EventType.ADDED, data("x", zone="a")),
            NodeEvent(EventType.ADDED, data("y", zone="b")),
            NodeEvent(EventType.UPDATED, data("z", zone="b"), previous=data("z", zone="a")),
        ),
    )
    cut_message = mixed.within(ZONE_A)
    assert cut_message is not None
    assert [(e.type, e.node.id) for e in cut_message.events] == [
        (EventType.ADDED, "x"),
        (EventType.REMOVED, "z"),
    ]
    assert DeltaMessage(9, (NodeEvent(EventType.ADDED, data("y")),)).within(ZONE_A) is None


def test_scopes_with_the_same_selector_are_equal():
    assert Scope(selector=parse_selector("a=1,b=2")) == Scope(selector=parse_selector("b=2,a=1"))
    assert Scope(selector=parse_selector("a=1")) != Scope()
