"""Writing a node's health (docs/design.md §13): read its keys, decide with flap damping
(core/damping.py), write only what changed, guarded like every other write (store/base.py).

A flip of a node's undamped health is written to etcd only when it changes what the node is
published as (its health, or whether it is damped): that rewrites the member record (watchers
see UPDATED) and records the check's output in the audit. A flip while the node is damped
changes nothing subscribers see: only its flap record is written (the penalty grows). Nothing
here ever touches a node's lease or live key: probes never remove a node.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from collections.abc import Callable

from registry_service.core.damping import DampingPolicy, Published, decide
from registry_service.domain import AuditCause, Health, Node, NodeKey
from registry_service.errors import ConcurrentModificationError
from registry_service.store.base import RegistryStore

_MAX_ATTEMPTS = 8


def health_cause(before: Node, health: Health, damped: bool) -> AuditCause:
    """The audit cause of publishing a node as `health` (and `damped`) over `before`."""
    if damped and not before.damped:
        return AuditCause.DAMPED
    if before.damped and not damped:
        return AuditCause.UNDAMPED
    return AuditCause.HEALTH_FAILING if health is Health.FAILING else AuditCause.HEALTH_PASSING


def damping_detail(policy: DampingPolicy, published: Published) -> str:
    """Why a node is damped, for the audit: its penalty and when it is expected back."""
    until = datetime.datetime.fromtimestamp(published.damped_until, datetime.UTC)
    return (
        f"flap penalty {published.flaps.penalty:.0f} reached {policy.suppress_penalty:g}: held "
        f"FAILING until about {until.isoformat(timespec='seconds')} (if it stops flapping)"
    )


class HealthWriter:
    """Publishes health changes of nodes, each in one guarded transaction."""

    def __init__(
        self,
        store: RegistryStore,
        policy: DampingPolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.policy = policy
        self._clock = clock

    async def publish(
        self,
        key: NodeKey,
        incarnation: int,
        health: Health | None,
        *,
        flaps: int,
        output: str = "",
    ) -> Published | None:
        """Publishes the node's undamped `health` after `flaps` flips (None: the health its flap
        record holds; 0 flips: a look at a damped node whose penalty may have decayed). Returns
        what the node is published as now; None when it is no longer a member of that
        incarnation.

        Raises:
            ConcurrentModificationError: the node kept changing under the write.
            StoreError: etcd could not be reached (the caller retries).
        """
        for _ in range(_MAX_ATTEMPTS):
            stored = await self._store.read_node(key)
            registration = stored.registration
            if registration is None or registration.node.incarnation != incarnation:
                return None
            node = registration.node
            undamped = health or (stored.flaps.health if stored.flaps else node.health)
            published = decide(
                self.policy,
                stored.flaps,
                undamped,
                was_damped=node.damped,
                flaps=flaps,
                now=self._clock(),
            )
            if (published.health, published.damped) == (node.health, node.damped):
                if not flaps:
                    return published  # a look that changes nothing writes nothing
                revision = await self._store.write_health(None, stored, published.flaps)
            else:
                cause = health_cause(node, published.health, published.damped)
                detail = damping_detail(self.policy, published) if published.damped else output
                if cause is AuditCause.DAMPED and output:
                    detail = f"{detail}; {output}"
                updated = dataclasses.replace(
                    registration,
                    node=dataclasses.replace(
                        node, health=published.health, damped=published.damped
                    ),
                    damped_until=published.damped_until,
                )
                revision = await self._store.write_health(
                    updated, stored, published.flaps, cause=cause, detail=detail
                )
            if revision is not None:
                return published
        raise ConcurrentModificationError(f"node {key} kept changing while its health was written")
