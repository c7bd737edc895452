"""Every domain enum value has a wire value (a missing one would fail a live stream)."""

from registry_service.domain import EventType, NodeStatus, RemovalReason, ResyncReason
from registry_service.rpc import convert


def test_every_domain_enum_maps_to_the_wire():
    assert set(convert._STATUS_TO_PB) == set(NodeStatus)
    assert set(convert._EVENT_TO_PB) == set(EventType)
    assert set(convert._REASON_TO_PB) == set(RemovalReason)
    assert set(convert._RESYNC_TO_PB) == {None, *ResyncReason}
