"""Generated messages <-> SDK models; the only module besides the transport that sees protobuf."""

from __future__ import annotations

from noderegistry.v1 import registry_pb2 as pb

from client_sdk._checks import Check, CheckKind
from client_sdk._models import (
    Consistency,
    DatacenterState,
    EventType,
    Health,
    Node,
    NodeEvent,
    NodeKey,
    NodeList,
    NodeStatus,
    RemovalReason,
    Scope,
)

_STATUS_TO_PB = {
    NodeStatus.UP: pb.NODE_STATUS_UP,
    NodeStatus.DRAINING: pb.NODE_STATUS_DRAINING,
    NodeStatus.SUSPECT: pb.NODE_STATUS_SUSPECT,
    NodeStatus.OUT_OF_SERVICE: pb.NODE_STATUS_OUT_OF_SERVICE,
}
_STATUS_FROM_PB = {v: k for k, v in _STATUS_TO_PB.items()}
_EVENT_FROM_PB = {
    pb.EVENT_TYPE_ADDED: EventType.ADDED,
    pb.EVENT_TYPE_UPDATED: EventType.UPDATED,
    pb.EVENT_TYPE_REMOVED: EventType.REMOVED,
}
_REASON_FROM_PB = {
    pb.REMOVAL_REASON_UNSPECIFIED: RemovalReason.UNSPECIFIED,
    pb.REMOVAL_REASON_DEREGISTERED: RemovalReason.DEREGISTERED,
    pb.REMOVAL_REASON_EXPIRED: RemovalReason.EXPIRED,
    pb.REMOVAL_REASON_EVICTED: RemovalReason.EVICTED,
    pb.REMOVAL_REASON_UNHEALTHY: RemovalReason.UNHEALTHY,
}
_HEALTH_TO_PB = {
    Health.UNCHECKED: pb.HEALTH_UNSPECIFIED,
    Health.PASSING: pb.HEALTH_PASSING,
    Health.FAILING: pb.HEALTH_FAILING,
}
_HEALTH_FROM_PB = {v: k for k, v in _HEALTH_TO_PB.items()}
_CHECK_KIND_TO_PB = {
    CheckKind.GRPC: pb.CHECK_KIND_GRPC,
    CheckKind.HTTP: pb.CHECK_KIND_HTTP,
    CheckKind.TCP: pb.CHECK_KIND_TCP,
}
_CONSISTENCY_TO_PB = {
    Consistency.LINEARIZABLE: pb.CONSISTENCY_LINEARIZABLE,
    Consistency.CACHED: pb.CONSISTENCY_CACHED,
}


def node_to_pb(node: Node) -> pb.Node:
    return pb.Node(
        id=node.id,
        type=node.type,
        datacenter=node.datacenter,
        address=node.address,
        metadata=dict(node.metadata),
        status=_STATUS_TO_PB[node.status],
        health=_HEALTH_TO_PB[node.health],
    )


def check_to_pb(check: Check) -> pb.Check:
    return pb.Check(
        kind=_CHECK_KIND_TO_PB[check.kind],
        service=check.service,
        path=check.path,
        port=check.port,
        interval_seconds=check.interval_seconds,
        timeout_seconds=check.timeout_seconds,
        failures_before_failing=check.failures_before_failing,
        passes_before_passing=check.passes_before_passing,
    )


def node_from_pb(message: pb.Node) -> Node:
    return Node(
        id=message.id,
        type=message.type,
        datacenter=message.datacenter,
        address=message.address,
        metadata=dict(message.metadata),
        incarnation=message.incarnation,
        status=_STATUS_FROM_PB.get(message.status, NodeStatus.UP),
        health=_HEALTH_FROM_PB.get(message.health, Health.UNCHECKED),
        damped=message.damped,
    )


def key_to_pb(key: NodeKey) -> pb.NodeKey:
    return pb.NodeKey(datacenter=key.datacenter, type=key.type, id=key.id)


def scope_to_pb(scope: Scope) -> pb.Scope:
    return pb.Scope(
        datacenters=sorted(scope.datacenters), types=sorted(scope.types), selector=scope.selector
    )


def consistency_to_pb(consistency: Consistency) -> int:
    return int(_CONSISTENCY_TO_PB[consistency])


def datacenters_from_pb(datacenters: list[pb.DatacenterNodes]) -> dict[str, tuple[Node, ...]]:
    return {dc.datacenter: tuple(node_from_pb(n) for n in dc.nodes) for dc in datacenters}


def datacenter_states_from_pb(
    datacenters: list[pb.DatacenterNodes], revision: int
) -> dict[str, DatacenterState]:
    """Each datacenter's state.

    `revision` completes the frontend's own datacenters (an older frontend sends no
    complete_revision).
    """
    return {
        dc.datacenter: DatacenterState(
            revision=dc.complete_revision if dc.remote else dc.complete_revision or revision,
            changed_revision=dc.revision,
            remote=dc.remote,
            stale=dc.stale,
            age_seconds=dc.age_seconds,
        )
        for dc in datacenters
    }


def node_list_from_pb(message: pb.GetNodesResponse) -> NodeList:
    datacenters = list(message.datacenters)
    states = datacenter_states_from_pb(datacenters, message.revision)
    return NodeList(
        revision=message.revision,
        datacenters=datacenters_from_pb(datacenters),
        cache_age_seconds=message.cache_age_seconds,
        stale=message.stale or any(state.stale for state in states.values()),
        datacenter_states=states,
    )


def snapshot_nodes(snapshot: pb.Snapshot) -> list[Node]:
    return [node_from_pb(n) for dc in snapshot.datacenters for n in dc.nodes]


def snapshot_states(snapshot: pb.Snapshot) -> dict[str, DatacenterState]:
    return datacenter_states_from_pb(list(snapshot.datacenters), snapshot.revision)


def event_from_pb(message: pb.NodeEvent, revision: int) -> NodeEvent:
    return NodeEvent(
        type=_EVENT_FROM_PB[message.type],
        node=node_from_pb(message.node),
        revision=revision,
        reason=_REASON_FROM_PB.get(message.reason, RemovalReason.UNSPECIFIED),
    )
