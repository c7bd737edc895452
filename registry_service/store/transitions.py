"""The one log line of each membership transition (D35), written where it commits: the store's
guarded transactions, single or batched."""

from __future__ import annotations

import logging

from registry_service.domain import AuditCause, NodeKey
from registry_service.store.base import StoredNode

log = logging.getLogger("registry_service.store.etcd")


def incarnation_of(stored: StoredNode) -> int:
    """The incarnation of the member read in `stored`; 0 when it was not a member."""
    return stored.registration.node.incarnation if stored.registration else 0


def log_transition(
    key: NodeKey, cause: AuditCause, incarnation: int, detail: str, revision: int
) -> None:
    """The one log line of a membership transition, by the frontend that committed it."""
    log.info(
        "node %s %s (incarnation %d, revision %d, cause %s)%s",
        key.path,
        cause.transition,
        incarnation,
        revision,
        cause.value,
        f": {detail}" if detail else "",
        extra={
            "transition": cause.transition,
            "cause": cause.value,
            "datacenter": key.datacenter,
            "type": key.type,
            "id": key.id,
            "incarnation": incarnation,
            "revision": revision,
            "detail": detail,
        },
    )
