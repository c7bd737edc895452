"""The SDK's own types: plain frozen dataclasses and enums, never generated protobuf classes."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field


class NodeStatus(enum.Enum):
    """Whether a node should get new work; only UP nodes should (`NodeList.available`).

    Attributes:
        UP: serving.
        DRAINING: leaving; asks clients to stop sending it new work (set by its owner or an
            operator).
        SUSPECT: stopped renewing and held by the registry's eviction budget instead of removed
            (set by the registry only).
        OUT_OF_SERVICE: in maintenance (set and cleared by an operator, kept while the owner
            renews).
    """

    UP = "UP"
    DRAINING = "DRAINING"
    SUSPECT = "SUSPECT"
    OUT_OF_SERVICE = "OUT_OF_SERVICE"


class Health(enum.Enum):
    """A node's health as the registry publishes it.

    It comes from the checks the registry runs, or from the node's own report (such as
    `noderegistry register --check`'s).

    Attributes:
        UNCHECKED: no check runs and none is reported: healthy while it renews.
        PASSING: its checks pass.
        FAILING: a check fails, or flap damping holds it (`Node.damped`): still a member,
            listed, but not offered for new work (`Node.available` is False).
    """

    UNCHECKED = "UNCHECKED"
    PASSING = "PASSING"
    FAILING = "FAILING"


class EventType(enum.Enum):
    """What happened to a node in a `NodeEvent`.

    Attributes:
        ADDED: it joined the scope (registered, or registered anew with the next incarnation).
        UPDATED: its address, metadata or status changed (same incarnation).
        REMOVED: it left; `NodeEvent.reason` says why.
    """

    ADDED = "ADDED"
    UPDATED = "UPDATED"
    REMOVED = "REMOVED"


class RemovalReason(enum.Enum):
    """Why a node was REMOVED.

    Attributes:
        UNSPECIFIED: removed outside the registry (for example with etcdctl), or not a removal.
        DEREGISTERED: its owner deregistered it.
        EXPIRED: it stopped renewing and the registry's evictor removed it.
        EVICTED: an operator removed it.
        UNHEALTHY: still a member, but no longer available (a failing check, damped, or not
            UP); only in a healthy-only watch (`Scope.healthy_only`).
    """

    UNSPECIFIED = "UNSPECIFIED"
    DEREGISTERED = "DEREGISTERED"
    EXPIRED = "EXPIRED"
    EVICTED = "EVICTED"
    UNHEALTHY = "UNHEALTHY"


class Consistency(enum.Enum):
    """How current a `RegistryClient.get_nodes` answer must be."""

    LINEARIZABLE = "LINEARIZABLE"
    """Reflects every write completed before the call started (the default)."""
    CACHED = "CACHED"
    """Answered at once from the frontend's view; see `NodeList.cache_age_seconds`."""


class RegistrationState(enum.Enum):
    """Where a `Registration` stands, after kazoo's connection states.

    Attributes:
        ACTIVE: renewed.
        SUSPENDED: no frontend answers; the lease may still be alive, and renewals go on.
        LOST: the registry says the lease is gone; the node is registering anew.
        HELD: an operator evicted the node and holds its id out for a while; it registers again
            when the hold ends.
        CLOSED: deregistered by its owner, or detached; final.
    """

    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    LOST = "LOST"
    HELD = "HELD"
    CLOSED = "CLOSED"


@dataclass(frozen=True, slots=True, order=True)
class NodeKey:
    """A node's identity: its id is unique within its datacenter and type.

    Attributes:
        datacenter: the node's datacenter.
        type: the node's type.
        id: the node's id.
    """

    datacenter: str
    type: str
    id: str

    def __str__(self) -> str:
        return f"{self.datacenter}/{self.type}/{self.id}"


@dataclass(frozen=True, slots=True)
class Node:
    """A member of the cluster.

    Attributes:
        id: unique within datacenter and type, `[a-z0-9][a-z0-9._-]*`.
        type: the node's role, e.g. `data`, `session`, `meta`.
        datacenter: where it runs.
        address: `host:port` at which others reach it.
        metadata: small string map (labels, zone, version).
        incarnation: set by the registry; grows each time the id registers anew.
        status: UP, DRAINING (no new work, please), SUSPECT (set by the registry) or
            OUT_OF_SERVICE (set by an operator). Only UP nodes should get new work.
        health: UNCHECKED, PASSING or FAILING (its checks, or its owner's report); a FAILING
            node should get no new work either. On `register`, the health to start with (or,
            for a registration without checks, the owner's own report).
        damped: set by the registry: the node flapped too often and is held FAILING until
            its flap penalty decays.
    """

    id: str
    type: str
    datacenter: str
    address: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    incarnation: int = 0
    status: NodeStatus = NodeStatus.UP
    health: Health = Health.UNCHECKED
    damped: bool = False

    @property
    def key(self) -> NodeKey:
        """The node's identity: (datacenter, type, id)."""
        return NodeKey(self.datacenter, self.type, self.id)

    @property
    def available(self) -> bool:
        """Whether to send it new work: UP, and not FAILING a health check (nor damped).

        DRAINING, SUSPECT and OUT_OF_SERVICE nodes are not available either.
        """
        return self.status is NodeStatus.UP and self.health is not Health.FAILING

    def __hash__(self) -> int:  # metadata is a dict: hash its items
        return hash(
            (
                self.key,
                self.address,
                tuple(sorted(self.metadata.items())),
                self.incarnation,
                self.status,
                self.health,
                self.damped,
            )
        )


def _names(value: str | tuple[str, ...]) -> frozenset[str]:
    return frozenset((value,) if isinstance(value, str) else value)


@dataclass(frozen=True, slots=True)
class Scope:
    """Which nodes to list or watch; empty means all.

    Attributes:
        datacenters: the datacenters to take; empty: every one.
        types: the node types to take; empty: every one.
        selector: a label selector on the nodes' metadata, Kubernetes syntax: `zone=a`,
            `zone!=a`, `version in (2,3)`, `version notin (1)`, `canary`, `!canary`; a comma
            means AND. Empty: every node. The registry parses it (a malformed one is an
            `InvalidArgumentError` naming the position); a watch sees a node whose metadata
            stops matching as REMOVED, one that starts matching as ADDED.
        healthy_only: only available nodes (UP, no failing check): a node that stops being
            available is REMOVED (reason UNHEALTHY) from the view, and ADDED when it is back.
    """

    datacenters: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    selector: str = ""
    healthy_only: bool = False

    @classmethod
    def of(
        cls,
        datacenters: str | tuple[str, ...] = (),
        types: str | tuple[str, ...] = (),
        selector: str = "",
        *,
        healthy_only: bool = False,
    ) -> Scope:
        """A scope from one name or several of each part.

        `Scope.of(types="session")` takes every session node; `Scope.of(("dc1", "dc2"))` every
        node of two datacenters; `Scope.of(types="data", selector="zone=a,!canary")` a shard or
        a zone; `Scope.of(types="data", healthy_only=True)` the data nodes to send work to.

        Args:
            datacenters: a datacenter's name, or a tuple of names; empty: every datacenter.
            types: a type's name, or a tuple of names; empty: every type.
            selector: a label selector on the nodes' metadata; empty: every node.
            healthy_only: only available nodes (UP, no failing check).

        Returns:
            The scope.
        """
        return cls(_names(datacenters), _names(types), selector, healthy_only)

    def matches(self, key: NodeKey) -> bool:
        """Whether the node of `key` is in this scope's datacenters and types.

        The selector is the registry's to apply: a key carries no metadata.

        Args:
            key: the node's key.

        Returns:
            True when both its datacenter and its type are taken.
        """
        return (not self.datacenters or key.datacenter in self.datacenters) and (
            not self.types or key.type in self.types
        )


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """One change: a node ADDED, UPDATED or REMOVED (with the reason) at an etcd revision.

    Attributes:
        type: ADDED, UPDATED or REMOVED.
        node: the node after the change (for REMOVED: as it was last).
        revision: the revision of the change, in its registry's revisions.
        reason: why a REMOVED node left; UNSPECIFIED for the other types.
    """

    type: EventType
    node: Node
    revision: int
    reason: RemovalReason = RemovalReason.UNSPECIFIED


@dataclass(frozen=True, slots=True)
class DatacenterState:
    """How current one datacenter's part of a list is.

    With several datacenters each on a registry of its own (federation), a frontend serves the
    other datacenters read-only as it follows them, each in its own registry's revisions.

    Attributes:
        revision: the revision of the datacenter's registry its list is complete up to (for a
            remote datacenter the frontend has not reached yet: 0).
        changed_revision: the last revision that changed its nodes.
        remote: it is another datacenter's registry, followed by the frontend (its revisions
            are that registry's, not the frontend's own etcd's).
        stale: its list may be out of date (its registry, or the link to it, is down); it is
            kept as last seen, never emptied.
        age_seconds: how long before the last message its registry was last heard from.
    """

    revision: int
    changed_revision: int = 0
    remote: bool = False
    stale: bool = False
    age_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class NodeList:
    """The nodes of a scope at `revision`, per datacenter.

    Attributes:
        revision: the etcd revision the list is complete up to (the frontend's own registry's;
            each remote datacenter's is in `datacenter_states`).
        datacenters: datacenter -> its nodes, sorted by type and id.
        cache_age_seconds: for CACHED reads, how old the frontend's view was; for a NodeWatch's
            `current()`, how long before its last progress message the frontend had last heard
            from etcd (0 after a change).
        stale: the list may be out of date: the frontend cannot reach etcd (it serves its last
            known list), a remote datacenter's list is stale, or a NodeWatch is holding back a
            suspicious shrink.
        datacenter_states: datacenter -> its own revision, staleness and age (every datacenter
            the frontend listed, remote ones included even when they have no nodes).
    """

    revision: int
    datacenters: Mapping[str, tuple[Node, ...]]
    cache_age_seconds: float = 0.0
    stale: bool = False
    datacenter_states: Mapping[str, DatacenterState] = field(default_factory=dict)

    @property
    def nodes(self) -> tuple[Node, ...]:
        """Every node of the list, whatever its status, datacenter by datacenter."""
        return tuple(node for nodes in self.datacenters.values() for node in nodes)

    @property
    def available(self) -> tuple[Node, ...]:
        """The nodes to pick for new work: UP ones only.

        DRAINING, SUSPECT and OUT_OF_SERVICE nodes are still members, and `nodes` lists them.
        """
        return tuple(node for node in self.nodes if node.available)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return sum(len(nodes) for nodes in self.datacenters.values())


class WatchStepKind(enum.Enum):
    """What a `WatchStep` carries.

    Attributes:
        SNAPSHOT: a whole list (of every datacenter, or of the step's `datacenter`).
        DELTA: the events of one revision.
        PROGRESS: nothing changed up to the step's revision.
        INTERRUPTED: the stream broke; the watch resumes on the next frontend.
    """

    SNAPSHOT = "SNAPSHOT"
    DELTA = "DELTA"
    PROGRESS = "PROGRESS"
    INTERRUPTED = "INTERRUPTED"


@dataclass(frozen=True, slots=True)
class WatchStep:
    """One message of a NodeWatch's stream, as the frontend sent it (`NodeWatch.steps()`).

    For relays and mirrors; the registry follows other datacenters with these. A list older than
    what the watch holds of a registry is never passed on: it arrives as a stale PROGRESS of that
    registry at the watch's revision (a whole list: as the watch's own list).

    Attributes:
        kind: SNAPSHOT (`nodes` replaces everything, or with `datacenter` that datacenter's list
            only), DELTA (`events` of one revision; `relisted`: a net difference after a gap),
            PROGRESS (nothing changed up to `revision`; `stale`, `age_seconds`), or INTERRUPTED
            (the stream broke: the watch resumes on the next frontend).
        revision: in the revisions of the frontend's own registry, or of `datacenter`'s.
        datacenter: the remote datacenter the step is about; "" for the frontend's own registry.
        nodes: a SNAPSHOT's list; None for the other kinds.
        events: a DELTA's events, in order.
        relisted: a DELTA that is the net difference after the frontend had to read everything
            again (the changes in between are gone).
        resync: a SNAPSHOT sent because the stream could not resume where it stood.
        stale: a PROGRESS from a frontend that cannot reach its etcd, or about a remote
            datacenter it cannot reach.
        age_seconds: a PROGRESS's age of the frontend's view.
    """

    kind: WatchStepKind
    revision: int = 0
    datacenter: str = ""
    nodes: NodeList | None = None
    events: tuple[NodeEvent, ...] = ()
    relisted: bool = False
    resync: bool = False
    stale: bool = False
    age_seconds: float = 0.0
