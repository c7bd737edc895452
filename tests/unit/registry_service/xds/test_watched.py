"""An EDS resource's nodes and version, kept from its subscription's messages."""

from __future__ import annotations

from registry_service.domain import (
    DatacenterNodes,
    DeltaMessage,
    EventType,
    Node,
    NodeEvent,
    NodeList,
    ProgressMessage,
    SnapshotMessage,
)
from registry_service.xds.watched import NodeSet


def data(node_id: str, datacenter: str = "dc1") -> Node:
    return Node(node_id, "data", datacenter, "10.0.0.1:80")


def snapshot(revision: int, *entries: DatacenterNodes) -> SnapshotMessage:
    return SnapshotMessage(NodeList(revision, entries))


def test_the_version_is_the_revision_it_is_complete_up_to():
    nodes = NodeSet()
    assert nodes.apply(snapshot(10, DatacenterNodes("dc1", 9, (data("a"),))))
    assert nodes.version == "10" and set(nodes.nodes) == {data("a").key}
    assert nodes.apply(DeltaMessage(12, (NodeEvent(EventType.ADDED, data("b")),)))
    assert nodes.version == "12"
    assert nodes.apply(DeltaMessage(13, (NodeEvent(EventType.REMOVED, data("a")),)))
    assert set(nodes.nodes) == {data("b").key}
    # Progress moves no version: a version moves with content only.
    assert not nodes.apply(ProgressMessage(20))
    assert nodes.version == "13"


def test_followed_datacenters_make_a_version_vector():
    nodes = NodeSet()
    nodes.apply(
        snapshot(
            10,
            DatacenterNodes("dc1", 9, (data("a"),), complete_revision=10),
            DatacenterNodes("dc2", 400, (data("r", "dc2"),), remote=True, complete_revision=455),
        )
    )
    assert nodes.version == "10,dc2=455"
    nodes.apply(
        DeltaMessage(456, (NodeEvent(EventType.ADDED, data("s", "dc2")),), datacenter="dc2")
    )
    assert nodes.version == "10,dc2=456" and len(nodes.nodes) == 3
    # A datacenter's own list replaces only its part.
    alone = SnapshotMessage(
        NodeList(500, (DatacenterNodes("dc2", 500, (data("t", "dc2"),), remote=True),)),
        datacenter="dc2",
    )
    nodes.apply(alone)
    assert nodes.version == "10,dc2=500"
    assert {key.id for key in nodes.nodes} == {"a", "t"}


def test_a_remote_datacenter_not_reached_yet_keeps_what_was_held():
    nodes = NodeSet()
    nodes.apply(
        snapshot(
            10, DatacenterNodes("dc2", 1, (data("r", "dc2"),), remote=True, complete_revision=5)
        )
    )
    nodes.apply(snapshot(11, DatacenterNodes("dc2", 0, (), remote=True, complete_revision=0)))
    assert {key.id for key in nodes.nodes} == {"r"} and nodes.version == "11,dc2=5"
