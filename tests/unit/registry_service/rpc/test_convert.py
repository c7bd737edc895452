"""Every domain enum value has a wire value (a missing one would fail a live stream), and the
per-datacenter fields reach the SDK."""

from client_sdk import _convert as sdk_convert
from registry_service.domain import (
    DatacenterNodes,
    EventType,
    Node,
    NodeList,
    NodeStatus,
    RemovalReason,
    ResyncReason,
)
from registry_service.rpc import convert


def test_every_domain_enum_maps_to_the_wire():
    assert set(convert._STATUS_TO_PB) == set(NodeStatus)
    assert set(convert._EVENT_TO_PB) == set(EventType)
    assert set(convert._REASON_TO_PB) == set(RemovalReason)
    assert set(convert._RESYNC_TO_PB) == {None, *ResyncReason}


def test_per_datacenter_fields_cross_the_wire_into_the_sdk():
    """Federation: what the frontend says of each datacenter is what the SDK's list shows."""
    nodes = NodeList(
        10,
        (
            DatacenterNodes("dc1", 9, (Node("a", "data", "dc1", "a:1"),), complete_revision=10),
            DatacenterNodes(
                "dc2", 480, (), remote=True, complete_revision=500, stale=True, age_seconds=7.5
            ),
        ),
    )
    listed = sdk_convert.node_list_from_pb(convert.node_list_to_pb(nodes))
    local, remote = listed.datacenter_states["dc1"], listed.datacenter_states["dc2"]
    assert (local.revision, local.changed_revision, local.remote, local.stale) == (
        10,
        9,
        False,
        False,
    )
    assert (remote.revision, remote.changed_revision, remote.remote) == (500, 480, True)
    assert remote.stale and remote.age_seconds == 7.5
    assert listed.stale  # one datacenter's list may be out of date
    assert listed.datacenters["dc2"] == ()
