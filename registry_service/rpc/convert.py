"""Translation between noderegistry.v1 messages and domain objects; nothing else."""

from __future__ import annotations

from noderegistry.v1 import registry_pb2 as pb

from registry_service.domain import (
    Check,
    CheckKind,
    Consistency,
    DatacenterNodes,
    DeltaMessage,
    EventType,
    Health,
    Node,
    NodeEvent,
    NodeKey,
    NodeList,
    NodeStatus,
    ProgressMessage,
    RemovalReason,
    ResyncReason,
    Scope,
    SnapshotMessage,
    WatchMessage,
    WatchResume,
)
from registry_service.errors import InvalidArgumentError
from registry_service.validation import selector_of

_STATUS_TO_PB = {
    NodeStatus.UP: pb.NODE_STATUS_UP,
    NodeStatus.DRAINING: pb.NODE_STATUS_DRAINING,
    NodeStatus.SUSPECT: pb.NODE_STATUS_SUSPECT,
    NodeStatus.OUT_OF_SERVICE: pb.NODE_STATUS_OUT_OF_SERVICE,
}
_STATUS_FROM_PB = {value: key for key, value in _STATUS_TO_PB.items()}
_STATUS_FROM_PB[pb.NODE_STATUS_UNSPECIFIED] = NodeStatus.UP
_EVENT_TO_PB = {
    EventType.ADDED: pb.EVENT_TYPE_ADDED,
    EventType.UPDATED: pb.EVENT_TYPE_UPDATED,
    EventType.REMOVED: pb.EVENT_TYPE_REMOVED,
}
_REASON_TO_PB = {
    RemovalReason.UNSPECIFIED: pb.REMOVAL_REASON_UNSPECIFIED,
    RemovalReason.DEREGISTERED: pb.REMOVAL_REASON_DEREGISTERED,
    RemovalReason.EXPIRED: pb.REMOVAL_REASON_EXPIRED,
    RemovalReason.EVICTED: pb.REMOVAL_REASON_EVICTED,
    RemovalReason.UNHEALTHY: pb.REMOVAL_REASON_UNHEALTHY,
}
_HEALTH_TO_PB = {
    Health.UNCHECKED: pb.HEALTH_UNSPECIFIED,
    Health.PASSING: pb.HEALTH_PASSING,
    Health.FAILING: pb.HEALTH_FAILING,
}
_HEALTH_FROM_PB = {value: key for key, value in _HEALTH_TO_PB.items()}
_CHECK_KIND_FROM_PB = {
    pb.CHECK_KIND_GRPC: CheckKind.GRPC,
    pb.CHECK_KIND_HTTP: CheckKind.HTTP,
    pb.CHECK_KIND_TCP: CheckKind.TCP,
}
_RESYNC_TO_PB = {
    None: pb.RESYNC_REASON_UNSPECIFIED,
    ResyncReason.COMPACTED: pb.RESYNC_REASON_COMPACTED,
    ResyncReason.UNKNOWN_REVISION: pb.RESYNC_REASON_UNKNOWN_REVISION,
    ResyncReason.SLOW_CONSUMER: pb.RESYNC_REASON_SLOW_CONSUMER,
    ResyncReason.PUSH_RESUMED: pb.RESYNC_REASON_PUSH_RESUMED,
    ResyncReason.UNCONFIRMED: pb.RESYNC_REASON_UNCONFIRMED,
}


def node_from_pb(message: pb.Node) -> Node:
    """A node as its owner sent it (no incarnation: the registry assigns it); an unknown status is
    INVALID_ARGUMENT."""
    status = _STATUS_FROM_PB.get(message.status)
    if status is None:
        raise InvalidArgumentError(f"status {message.status} is not a known NodeStatus")
    health = _HEALTH_FROM_PB.get(message.health)
    if health is None:
        raise InvalidArgumentError(
            f"health {message.health} is not a known Health (PASSING 1, FAILING 2)"
        )
    return Node(
        id=message.id,
        type=message.type,
        datacenter=message.datacenter,
        address=message.address,
        metadata=dict(message.metadata),
        status=status,
        health=health,
    )


def checks_from_pb(messages: list[pb.Check]) -> list[Check]:
    """The checks of a RegisterRequest; their limits are validation's (validate_checks)."""
    checks = []
    for index, message in enumerate(messages):
        kind = _CHECK_KIND_FROM_PB.get(message.kind)
        if kind is None:
            raise InvalidArgumentError(
                f"checks[{index}].kind {message.kind} is not GRPC (1), HTTP (2) or TCP (3)"
            )
        checks.append(
            Check(
                kind=kind,
                service=message.service,
                path=message.path or "/",
                port=message.port,
                interval_seconds=message.interval_seconds,
                timeout_seconds=message.timeout_seconds,
                failures_before_failing=message.failures_before_failing,
                passes_before_passing=message.passes_before_passing,
            )
        )
    return checks


def node_to_pb(node: Node) -> pb.Node:
    """A node as clients receive it."""
    return pb.Node(
        id=node.id,
        type=node.type,
        datacenter=node.datacenter,
        address=node.address,
        metadata=node.metadata,
        incarnation=node.incarnation,
        status=_STATUS_TO_PB[node.status],
        health=_HEALTH_TO_PB[node.health],
        damped=node.damped,
    )


def key_from_pb(message: pb.NodeKey) -> NodeKey:
    """The node key a request names."""
    return NodeKey(message.datacenter, message.type, message.id)


def scope_from_pb(message: pb.Scope, *, healthy_only: bool = False) -> Scope:
    """The scope a request names (`healthy_only`: its healthy-only flag, which GetNodes and
    WatchNodes carry beside the scope); a malformed selector is INVALID_ARGUMENT."""
    return Scope(
        frozenset(message.datacenters),
        frozenset(message.types),
        selector_of(message.selector),
        healthy_only,
    )


def resume_from_pb(message: pb.WatchNodesRequest) -> WatchResume:
    """Where a WatchNodes request resumes: the local revision, and per datacenter when federated."""
    return WatchResume(
        message.resume_revision, dict(message.resume_revisions), message.datacenter_revisions
    )


def consistency_from_pb(value: int) -> Consistency:
    """The read consistency asked for; unset means LINEARIZABLE."""
    if value in (pb.CONSISTENCY_UNSPECIFIED, pb.CONSISTENCY_LINEARIZABLE):
        return Consistency.LINEARIZABLE
    if value == pb.CONSISTENCY_CACHED:
        return Consistency.CACHED
    raise InvalidArgumentError(f"consistency {value} is not LINEARIZABLE (1) or CACHED (2)")


def datacenters_to_pb(datacenters: tuple[DatacenterNodes, ...]) -> list[pb.DatacenterNodes]:
    """Per-datacenter lists as the wire carries them (GetNodes and snapshots alike)."""
    return [
        pb.DatacenterNodes(
            datacenter=dc.datacenter,
            revision=dc.revision,
            nodes=[node_to_pb(node) for node in dc.nodes],
            remote=dc.remote,
            complete_revision=dc.complete_revision,
            stale=dc.stale,
            age_seconds=dc.age_seconds,
        )
        for dc in datacenters
    ]


def node_list_to_pb(nodes: NodeList) -> pb.GetNodesResponse:
    """A GetNodes answer."""
    return pb.GetNodesResponse(
        revision=nodes.revision,
        datacenters=datacenters_to_pb(nodes.datacenters),
        cache_age_seconds=nodes.age_seconds,
        stale=nodes.stale,
    )


def event_to_pb(event: NodeEvent) -> pb.NodeEvent:
    """One node event; a removal's reason only on REMOVED."""
    return pb.NodeEvent(
        type=_EVENT_TO_PB[event.type],
        node=node_to_pb(event.node),
        reason=_REASON_TO_PB[event.reason] if event.type is EventType.REMOVED else 0,
    )


def watch_message_to_pb(message: WatchMessage) -> pb.WatchNodesResponse:
    """A snapshot, delta or progress as one WatchNodes response."""
    if isinstance(message, SnapshotMessage):
        return pb.WatchNodesResponse(
            snapshot=pb.Snapshot(
                revision=message.revision,
                datacenters=datacenters_to_pb(message.nodes.datacenters),
                resync=message.resync_reason is not None,
                resync_reason=_RESYNC_TO_PB[message.resync_reason],
                datacenter=message.datacenter,
            )
        )
    if isinstance(message, DeltaMessage):
        return pb.WatchNodesResponse(
            delta=pb.Delta(
                revision=message.revision,
                events=[event_to_pb(event) for event in message.events],
                relisted=message.relisted,
                datacenter=message.datacenter,
            )
        )
    assert isinstance(message, ProgressMessage)
    return pb.WatchNodesResponse(
        progress=pb.Progress(
            revision=message.revision,
            stale=message.stale,
            age_seconds=message.age_seconds,
            datacenter=message.datacenter,
        )
    )
