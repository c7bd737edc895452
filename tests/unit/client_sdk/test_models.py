"""The SDK's models: which nodes to pick for new work."""

from __future__ import annotations

from client_sdk import Node, NodeList, NodeStatus


def test_only_up_nodes_are_available_for_new_work():
    nodes = {
        status: Node(status.value.lower(), "data", "dc1", "h:1", status=status)
        for status in NodeStatus
    }
    listing = NodeList(revision=1, datacenters={"dc1": tuple(nodes.values())})
    assert listing.available == (nodes[NodeStatus.UP],)
    assert [n.available for n in nodes.values()] == [s is NodeStatus.UP for s in nodes]
    assert len(listing.nodes) == len(NodeStatus)  # every member is still listed
