"""The SDK's Picker: available nodes only, nearest zone first, in proportion to weight."""

from __future__ import annotations

import collections
import random

from client_sdk import Health, Node, NodeStatus, Picker


def node(
    node_id: str, datacenter: str = "dc1", status: NodeStatus = NodeStatus.UP, **metadata: str
) -> Node:
    return Node(node_id, "data", datacenter, "10.0.0.1:80", metadata, status=status)


def shares(picker: Picker, picks: int = 4000) -> collections.Counter[str]:
    return collections.Counter(
        chosen.id for _ in range(picks) if (chosen := picker.pick()) is not None
    )


def test_only_available_nodes_are_picked():
    nodes = [
        node("up"),
        node("draining", status=NodeStatus.DRAINING),
        node("suspect", status=NodeStatus.SUSPECT),
        node("maintenance", status=NodeStatus.OUT_OF_SERVICE),
        # UP but failing its health check (or damped, which is published FAILING).
        Node("failing", "data", "dc1", "10.0.0.2:80", health=Health.FAILING),
        Node("damped", "data", "dc1", "10.0.0.3:80", health=Health.FAILING, damped=True),
    ]
    assert set(shares(Picker(lambda: nodes, rng=random.Random(1)), 200)) == {"up"}
    assert Picker(lambda: nodes[1:]).pick() is None
    assert Picker(list).pick() is None


def test_picks_follow_the_weights():
    nodes = [node("heavy", weight="3"), node("light", weight="1"), node("bad", weight="x")]
    counted = shares(Picker(lambda: nodes, rng=random.Random(7)), 5000)
    assert 0.55 <= counted["heavy"] / 5000 <= 0.65  # 3/5
    assert 0.15 <= counted["light"] / 5000 <= 0.25  # 1/5, and "x" weighs 1 too
    assert 0.15 <= counted["bad"] / 5000 <= 0.25


def test_the_callers_zone_then_datacenter_come_first():
    nodes = [node("a1", zone="a"), node("b1", zone="b"), node("far", "dc2", zone="a")]
    picker = Picker(lambda: nodes, zone="a", datacenter="dc1", rng=random.Random(3))
    assert set(shares(picker, 200)) == {"a1"}
    nodes[0] = node("a1", zone="a", status=NodeStatus.DRAINING)
    assert set(shares(picker, 200)) == {"b1"}  # its datacenter, another zone
    nodes[1] = node("b1", zone="b", status=NodeStatus.DRAINING)
    assert set(shares(picker, 200)) == {"far"}  # another datacenter, last
    assert set(shares(Picker(lambda: nodes, rng=random.Random(3)), 200)) == {"far"}


def test_a_zone_without_a_datacenter_prefers_the_zone_anywhere():
    nodes = [node("a-dc2", "dc2", zone="a"), node("b-dc1", zone="b")]
    assert set(shares(Picker(lambda: nodes, zone="a", rng=random.Random(5)), 200)) == {"a-dc2"}
