"""Nodes, registrations, events, scopes and watch messages: pure data, no I/O (client input is
checked by validation.py)."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from registry_service.selectors import EVERYTHING, Selector


class NodeStatus(enum.Enum):
    """A member's state for its clients: UP, DRAINING (winding down), or set aside by the registry
    (SUSPECT) or an operator (OUT_OF_SERVICE)."""

    UP = "UP"
    DRAINING = "DRAINING"
    SUSPECT = "SUSPECT"  # set by the evictor only
    OUT_OF_SERVICE = "OUT_OF_SERVICE"  # set by an operator only (maintenance)


# Statuses an owner may register with; the others are the registry's or an operator's to set.
OWNER_STATUSES = frozenset({NodeStatus.UP, NodeStatus.DRAINING})


class Health(enum.Enum):
    """A node's health as the registry publishes it (docs/design.md §13)."""

    UNCHECKED = "UNCHECKED"  # no check runs and none is reported: healthy while it renews
    PASSING = "PASSING"
    FAILING = "FAILING"  # listed, but not offered for new work


class CheckKind(enum.Enum):
    """How a registry-run check probes a node."""

    GRPC = "GRPC"  # grpc.health.v1 Check of a service: SERVING passes
    HTTP = "HTTP"  # GET a path: a 2xx answer passes
    TCP = "TCP"  # a TCP connect passes


# What a check gets for a field its registration leaves 0 (the proto's zero values).
CHECK_DEFAULT_INTERVAL_SECONDS = 10.0
CHECK_DEFAULT_TIMEOUT_SECONDS = 2.0
CHECK_DEFAULT_FAILURES = 3
CHECK_DEFAULT_PASSES = 2


@dataclass(frozen=True, slots=True)
class Check:
    """A check the registry runs against a node, at the node's host on `port` (0: its port).

    A probe passes or fails; `failures_before_failing` consecutive failures turn the check
    FAILING, `passes_before_passing` consecutive passes turn it PASSING again.
    """

    kind: CheckKind
    service: str = ""  # gRPC: the service asked for ("": the whole server)
    path: str = "/"  # HTTP: the path asked for
    port: int = 0
    interval_seconds: float = CHECK_DEFAULT_INTERVAL_SECONDS
    timeout_seconds: float = CHECK_DEFAULT_TIMEOUT_SECONDS
    failures_before_failing: int = CHECK_DEFAULT_FAILURES
    passes_before_passing: int = CHECK_DEFAULT_PASSES


@dataclass(frozen=True, slots=True)
class FlapRecord:
    """What flap damping remembers of a node (docs/design.md §13), beside its member record so
    that it outlives a registration: the penalty as of `at` (wall clock; it decays from there),
    and the node's latest health before damping (what it is published as once released)."""

    penalty: float
    at: float
    health: Health


class EventType(enum.Enum):
    """What happened to a node in a scope, as a watcher sees it."""

    ADDED = "ADDED"
    UPDATED = "UPDATED"
    REMOVED = "REMOVED"


class RemovalReason(enum.Enum):
    """Why a node left: its owner, its lease, an operator, or outside the registry."""

    UNSPECIFIED = "UNSPECIFIED"
    DEREGISTERED = "DEREGISTERED"
    EXPIRED = "EXPIRED"
    EVICTED = "EVICTED"
    UNHEALTHY = "UNHEALTHY"  # still a member, no longer healthy: healthy-only scopes only


class AuditCause(enum.Enum):
    """Why a membership transition happened; recorded with each one (docs/reliability.md)."""

    REGISTERED = "REGISTERED"
    UPDATED = "UPDATED"
    DEREGISTERED = "DEREGISTERED"
    EXPIRED = "EXPIRED"  # stopped renewing; removed by the evictor within the budget
    REPLACED = "REPLACED"  # expired, then the id registered anew before the evictor removed it
    SUSPECTED = "SUSPECTED"  # stopped renewing beyond the eviction budget: held as SUSPECT
    RESTORED = "RESTORED"  # a suspect renewed or re-registered: UP again
    BUDGET_RELEASED = "BUDGET_RELEASED"  # a suspect removed once the budget allowed it
    CEILING = "CEILING"  # a suspect removed after the hard ceiling
    OPERATOR_EVICTED = "OPERATOR_EVICTED"
    OPERATOR_RESTORED = "OPERATOR_RESTORED"
    OPERATOR_OUT_OF_SERVICE = "OPERATOR_OUT_OF_SERVICE"  # an operator's maintenance override
    OPERATOR_DRAINING = "OPERATOR_DRAINING"  # an operator's drain override
    OPERATOR_CLEARED = "OPERATOR_CLEARED"  # the override is gone: the owner's status again
    HEALTH_FAILING = "HEALTH_FAILING"  # its checks (or its owner's report) turned it FAILING
    HEALTH_PASSING = "HEALTH_PASSING"  # healthy again
    DAMPED = "DAMPED"  # flapped too often: held FAILING until its penalty decays
    UNDAMPED = "UNDAMPED"  # the penalty decayed: published as its health again

    @property
    def transition(self) -> str:
        """The membership transition this cause makes, as logged: registered, updated,
        deregistered, expired, suspected, restored or evicted."""
        return _TRANSITIONS[self]


_TRANSITIONS = {
    AuditCause.REGISTERED: "registered",
    AuditCause.UPDATED: "updated",
    AuditCause.DEREGISTERED: "deregistered",
    AuditCause.EXPIRED: "expired",
    AuditCause.REPLACED: "expired",
    AuditCause.SUSPECTED: "suspected",
    AuditCause.RESTORED: "restored",
    AuditCause.BUDGET_RELEASED: "expired",
    AuditCause.CEILING: "expired",
    AuditCause.OPERATOR_EVICTED: "evicted",
    AuditCause.OPERATOR_RESTORED: "restored",
    AuditCause.OPERATOR_OUT_OF_SERVICE: "updated",
    AuditCause.OPERATOR_DRAINING: "updated",
    AuditCause.OPERATOR_CLEARED: "updated",
    AuditCause.HEALTH_FAILING: "updated",
    AuditCause.HEALTH_PASSING: "updated",
    AuditCause.DAMPED: "updated",
    AuditCause.UNDAMPED: "updated",
}


class ChangeStage(enum.Enum):
    """The stages of a change's way from etcd to a subscriber, each timed in seconds
    (`noderegistry_change_stage_seconds{stage}`, docs/decisions.md D33)."""

    COMMIT_TO_RECEIVED = "commit_to_received"  # the writing frontend sent the txn -> watch event
    RECEIVED_TO_QUEUED = "received_to_queued"  # watch event -> in every subscriber's queue
    QUEUED_TO_WRITTEN = "queued_to_written"  # queued -> written to one subscriber's stream
    WRITTEN_TO_ACKED = "written_to_acked"  # written -> the subscriber acknowledged it (AckWatch)


class Consistency(enum.Enum):
    """How fresh a read must be: through etcd (LINEARIZABLE) or the frontend's cache."""

    LINEARIZABLE = "LINEARIZABLE"
    CACHED = "CACHED"


class NodeKey(NamedTuple):
    """What names a node: an id is unique within its datacenter and type.

    A NamedTuple, not a dataclass: keys are hashed and compared on every change in every view,
    and a tuple's hash and equality run in C (docs/performance.md).
    """

    datacenter: str
    type: str
    id: str

    @property
    def path(self) -> str:
        """`datacenter/type/id`: how the node is named in keys, logs and messages."""
        return f"{self.datacenter}/{self.type}/{self.id}"

    def __str__(self) -> str:
        return self.path


@dataclass(frozen=True, slots=True)
class Node:
    """One member as clients see it; `incarnation` rises each time its id registers anew."""

    id: str
    type: str
    datacenter: str
    address: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    incarnation: int = 0
    status: NodeStatus = NodeStatus.UP
    health: Health = Health.UNCHECKED
    damped: bool = False  # held FAILING by flap damping (set by the registry only)

    @property
    def key(self) -> NodeKey:
        """The key that names this node (its datacenter, type and id)."""
        return NodeKey(self.datacenter, self.type, self.id)

    @property
    def healthy(self) -> bool:
        """Whether to offer it for new work: UP, and no failing check (damped counts failing)."""
        return self.status is NodeStatus.UP and self.health is not Health.FAILING


@dataclass(frozen=True, slots=True)
class Override:
    """An operator's status for a live node (maintenance: OUT_OF_SERVICE, or DRAINING).

    While it is set the node's status is `status`, whatever the owner renews or updates;
    `owner_status` is what the owner last asked for, its status again once the operator clears
    the override. `by` is the operator's identity (a token's name, a certificate's, an address).
    """

    status: NodeStatus
    owner_status: NodeStatus
    by: str
    at: float


def owner_view(node: Node, override: Override | None) -> tuple[Node, Override | None]:
    """The node as stored when its owner asks for `node` (status included): an operator's
    override keeps its status and remembers the owner's."""
    if override is None:
        return node, None
    return (
        dataclasses.replace(node, status=override.status),
        dataclasses.replace(override, owner_status=node.status),
    )


@dataclass(frozen=True, slots=True)
class Registration:
    """A node plus what proves and keeps its registration: the etcd lease and the token's hash.

    The token itself is never stored. `sealed_token` is the token XOR a key derived from the
    idempotency key, so that a retried Register (same idempotency key) can return the same token.
    """

    node: Node
    lease_id: int
    ttl_seconds: int
    token_hash: str
    idempotency_hash: str = ""
    sealed_token: str = ""
    suspect_since: float = 0.0  # wall-clock time it became SUSPECT (shared by every frontend)
    override: Override | None = None  # an operator's status, kept while it is set
    # The client session whose shared lease it rides on (D73); empty: a lease of its own.
    session: str = ""
    checks: tuple[Check, ...] = ()  # what the registry probes (docs/design.md §13)
    # Damped (node.damped): the wall-clock time its penalty was expected to decay to the reuse
    # threshold when damping began; whoever probes the node looks again then.
    damped_until: float = 0.0


@dataclass(frozen=True, slots=True)
class Identity:
    """What outlives a registration: the last incarnation of a node id, and how it last left."""

    incarnation: int
    removal_reason: RemovalReason | None = None
    # An operator evicted the node and holds its id out until then (wall clock; 0: no hold).
    hold_until: float = 0.0
    held_by: str = ""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One recorded membership transition: what happened to which incarnation, when, and why."""

    key: NodeKey
    cause: AuditCause
    incarnation: int
    time: float
    frontend: str
    revision: int = 0
    detail: str = ""
    operator: str = ""  # who acted, for operator causes (a token's or certificate's name, an IP)


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """One change of one node, as a watch delivers it."""

    type: EventType
    node: Node
    reason: RemovalReason = RemovalReason.UNSPECIFIED
    # For UPDATED: the node as it was before, when known (the local etcd's changes), so that a
    # scope with a label selector or healthy-only sees a node that left it as REMOVED, and one
    # that entered it as ADDED (Scope.cut).
    previous: Node | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Scope:
    """Which nodes a caller wants; an empty set means all. `selector` is a label selector on
    the nodes' metadata (selectors.py; the empty one takes every node). `healthy_only`: only
    nodes that are healthy (Node.healthy): one leaving that state is REMOVED (UNHEALTHY) from
    the scope's view, and ADDED when it comes back."""

    datacenters: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    selector: Selector = EVERYTHING
    healthy_only: bool = False

    def matches(self, key: NodeKey) -> bool:
        """Whether the key's datacenter and type are in the scope (selector and health aside)."""
        return (not self.datacenters or key.datacenter in self.datacenters) and (
            not self.types or key.type in self.types
        )

    def takes(self, node: Node) -> bool:
        """Whether the node is in the scope: its datacenter, type, metadata and health."""
        return self.matches(node.key) and self.passes(node)

    @property
    def everything(self) -> bool:
        """It takes every node and every event as it is."""
        return not self.datacenters and not self.types and not self.filters

    @property
    def filters(self) -> bool:
        """It holds some nodes of its datacenters and types and not others."""
        return bool(self.selector) or self.healthy_only

    def passes(self, node: Node) -> bool:
        """Whether the node passes the scope's filters (its selector, its health if asked)."""
        return self.selector.matches(node.metadata) and (not self.healthy_only or node.healthy)

    def cut(self, event: NodeEvent) -> NodeEvent | None:
        """What a subscriber of this scope sees of an event in its datacenters and types: with a
        selector or healthy-only, an update that takes a node out of it is a removal (UNHEALTHY
        when its health took it out), one that brings it in an addition, and events of nodes it
        never held are dropped. An update whose previous node is unknown (a followed
        datacenter's) is a removal when the node no longer passes: the subscriber may have
        held it."""
        if not self.filters:
            return event
        now = self.passes(event.node)
        if event.type is not EventType.UPDATED:
            return event if now else None
        before = event.previous is None or self.passes(event.previous)
        if now and before:
            return event
        if now:
            return NodeEvent(EventType.ADDED, event.node)
        if before:
            return NodeEvent(EventType.REMOVED, event.node, self._removal_reason(event.node))
        return None

    def _removal_reason(self, node: Node) -> RemovalReason:
        """Why a node that stopped passing left: its health, unless its metadata did it."""
        if self.healthy_only and not node.healthy and self.selector.matches(node.metadata):
            return RemovalReason.UNHEALTHY
        return RemovalReason.UNSPECIFIED


@dataclass(frozen=True, slots=True)
class Limits:
    """Every bound on client input (docs/design.md §1); built from Settings."""

    id_max_length: int = 63
    type_max_length: int = 31
    datacenter_max_length: int = 63
    metadata_max_entries: int = 64
    metadata_key_max_bytes: int = 128
    metadata_value_max_bytes: int = 1024
    metadata_max_total_bytes: int = 16 * 1024
    ttl_min_seconds: int = 3
    ttl_max_seconds: int = 3600
    ttl_default_seconds: int = 10
    selector_max_bytes: int = 1024
    health_checks_max_per_node: int = 4
    health_check_min_interval_seconds: float = 1.0
    health_check_max_timeout_seconds: float = 10.0


class ResyncReason(enum.Enum):
    """Why a watch gets a fresh snapshot in place of the deltas it missed."""

    COMPACTED = "COMPACTED"
    UNKNOWN_REVISION = "UNKNOWN_REVISION"
    SLOW_CONSUMER = "SLOW_CONSUMER"
    PUSH_RESUMED = "PUSH_RESUMED"
    UNCONFIRMED = "UNCONFIRMED"


@dataclass(frozen=True, slots=True)
class WatchResume:
    """Where a watch resumes: `revision` in the local etcd's revisions (0: from a snapshot), and,
    for a `federated` subscriber (one that keeps a revision per datacenter), `revisions` per
    followed remote datacenter in that datacenter's registry's revisions."""

    revision: int = 0
    revisions: Mapping[str, int] = field(default_factory=dict)
    federated: bool = False


@dataclass(frozen=True, slots=True)
class DatacenterNodes:
    """One datacenter's nodes. `revision` (its last change) and `complete_revision` (what its
    list is complete up to) are in its registry's revisions: this frontend's etcd, or for a
    `remote` datacenter (federation, docs/design.md §10) that datacenter's own etcd; one not
    reached yet has `complete_revision` 0."""

    datacenter: str
    revision: int
    nodes: tuple[Node, ...]
    remote: bool = False
    complete_revision: int = 0
    stale: bool = False
    age_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class NodeList:
    """The nodes of a scope at `revision`, per datacenter; `age_seconds` since etcd last spoke."""

    revision: int
    datacenters: tuple[DatacenterNodes, ...]
    age_seconds: float = 0.0
    stale: bool = False  # the frontend cannot reach etcd; this is the last list it knew


@dataclass(frozen=True, slots=True)
class SnapshotMessage:
    """The whole scope; or, with `datacenter`, one remote datacenter's list alone (its revision
    is that datacenter's registry's), replacing only what the subscriber had of it."""

    nodes: NodeList
    resync_reason: ResyncReason | None = None
    datacenter: str = ""

    @property
    def revision(self) -> int:
        """The revision the snapshot's list is complete up to."""
        return self.nodes.revision


@dataclass(frozen=True, slots=True)
class DeltaMessage:
    """The changes of one revision (or, `relisted`, the net changes of a re-read)."""

    revision: int
    events: tuple[NodeEvent, ...]
    relisted: bool = False
    received_at: float = 0.0  # monotonic time the frontend got the change from etcd
    queued_at: float = 0.0  # monotonic time the hub handed it to the subscribers' queues
    datacenter: str = ""  # the remote datacenter whose revision this is; "" for the local etcd

    def within(self, scope: Scope) -> DeltaMessage | None:
        """What a subscription with this scope receives of it: the message itself when the scope
        takes every event (so that it is serialized once for all, rpc/servicer.WireCache), a
        smaller copy when it takes some (each event as the scope sees it, Scope.cut), None when
        it takes none. A relisted delta always goes (a jump to its revision, even when no event
        of it is in the scope)."""
        if not self.events:
            return self if self.relisted else None
        if scope.everything:
            return self
        events = tuple(
            cut
            for event in self.events
            if scope.matches(event.node.key) and (cut := scope.cut(event)) is not None
        )
        if not events:
            return dataclasses.replace(self, events=()) if self.relisted else None
        if len(events) == len(self.events) and all(
            a is b for a, b in zip(events, self.events, strict=True)
        ):
            return self
        return dataclasses.replace(self, events=events)


@dataclass(frozen=True, slots=True)
class ProgressMessage:
    """Nothing in scope changed up to `revision`; `stale` while etcd is out of reach."""

    revision: int
    stale: bool = False
    age_seconds: float = 0.0
    datacenter: str = ""  # the remote datacenter it is about; "" for the local etcd


WatchMessage = SnapshotMessage | DeltaMessage | ProgressMessage
