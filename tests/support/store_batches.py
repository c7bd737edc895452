"""Store batches as the etcd watch delivers them, built in memory for the view's and hub's unit
tests."""

from __future__ import annotations

from registry_service.domain import Identity, Node, NodeKey, Registration, RemovalReason
from registry_service.store.base import (
    IdentityPut,
    LiveChanged,
    Member,
    MemberDeleted,
    MemberPut,
    StoreBatch,
)


def registration(
    node_id: str, datacenter: str = "dc1", node_type: str = "data", **meta: str
) -> Registration:
    return Registration(Node(node_id, node_type, datacenter, f"{node_id}:1", meta, 1), 1, 10, "h")


def key(node_id: str, datacenter: str = "dc1", node_type: str = "data") -> NodeKey:
    return NodeKey(datacenter, node_type, node_id)


def added(revision: int, node_id: str, datacenter: str = "dc1", **meta: str) -> StoreBatch:
    """A Register's transaction: live key, member record and identity in one revision."""
    k = key(node_id, datacenter)
    return StoreBatch(
        revision,
        (
            LiveChanged(k, True),
            MemberPut(k, Member(registration(node_id, datacenter, **meta), revision)),
            IdentityPut(k, Identity(1)),
        ),
    )


def removed(revision: int, node_id: str, reason: RemovalReason) -> StoreBatch:
    """A removal's transaction: member and live key deleted, the reason in the identity record."""
    k = key(node_id)
    return StoreBatch(
        revision, (MemberDeleted(k), LiveChanged(k, False), IdentityPut(k, Identity(1, reason)))
    )
