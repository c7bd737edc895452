"""The SDK's own types: plain frozen dataclasses and enums, never generated protobuf classes."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field


class NodeStatus(enum.Enum):
    UP = "UP"
    DRAINING = "DRAINING"
    SUSPECT = "SUSPECT"


class EventType(enum.Enum):
    ADDED = "ADDED"
    UPDATED = "UPDATED"
    REMOVED = "REMOVED"


class RemovalReason(enum.Enum):
    UNSPECIFIED = "UNSPECIFIED"
    DEREGISTERED = "DEREGISTERED"
    EXPIRED = "EXPIRED"
    EVICTED = "EVICTED"


class Consistency(enum.Enum):
    LINEARIZABLE = "LINEARIZABLE"
    """Reflects every write completed before the call started (the default)."""
    CACHED = "CACHED"
    """Answered at once from the frontend's view; see `NodeList.cache_age_seconds`."""


class RegistrationState(enum.Enum):
    """Where a registration stands, as kazoo's connection states: ACTIVE (renewed), SUSPENDED (no
    frontend answers; the lease may still be alive), LOST (the lease is gone; re-registering),
    CLOSED (deregistered by its owner)."""

    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    LOST = "LOST"
    CLOSED = "CLOSED"


@dataclass(frozen=True, slots=True, order=True)
class NodeKey:
    """A node's identity: its id is unique within its datacenter and type."""

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
        status: UP, DRAINING (no new work, please) or SUSPECT (set by the registry).
    """

    id: str
    type: str
    datacenter: str
    address: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    incarnation: int = 0
    status: NodeStatus = NodeStatus.UP

    @property
    def key(self) -> NodeKey:
        return NodeKey(self.datacenter, self.type, self.id)

    def __hash__(self) -> int:  # metadata is a dict: hash its items
        return hash(
            (
                self.key,
                self.address,
                tuple(sorted(self.metadata.items())),
                self.incarnation,
                self.status,
            )
        )


def _names(value: str | tuple[str, ...]) -> frozenset[str]:
    return frozenset((value,) if isinstance(value, str) else value)


@dataclass(frozen=True, slots=True)
class Scope:
    """Which nodes to list or watch; empty means all."""

    datacenters: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls, datacenters: str | tuple[str, ...] = (), types: str | tuple[str, ...] = ()
    ) -> Scope:
        """`Scope.of(types="session")`, `Scope.of(("dc1", "dc2"))`: one name or several."""
        return cls(_names(datacenters), _names(types))

    def matches(self, key: NodeKey) -> bool:
        return (not self.datacenters or key.datacenter in self.datacenters) and (
            not self.types or key.type in self.types
        )


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """One change: a node ADDED, UPDATED or REMOVED (with the reason) at an etcd revision."""

    type: EventType
    node: Node
    revision: int
    reason: RemovalReason = RemovalReason.UNSPECIFIED


@dataclass(frozen=True, slots=True)
class NodeList:
    """The nodes of a scope at `revision`, per datacenter.

    Attributes:
        revision: the etcd revision the list is complete up to.
        datacenters: datacenter -> its nodes, sorted by type and id.
        cache_age_seconds: for CACHED reads, how old the frontend's view was; for a NodeWatch's
            `current()`, how long before its last progress message the frontend had last heard
            from etcd (0 after a change).
        stale: the list may be out of date: the frontend cannot reach etcd (it serves its last
            known list), or a NodeWatch is holding back a suspicious shrink.
    """

    revision: int
    datacenters: Mapping[str, tuple[Node, ...]]
    cache_age_seconds: float = 0.0
    stale: bool = False

    @property
    def nodes(self) -> tuple[Node, ...]:
        return tuple(node for nodes in self.datacenters.values() for node in nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return sum(len(nodes) for nodes in self.datacenters.values())
