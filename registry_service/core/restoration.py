"""The one way back UP for a member whose lease is gone while its record still exists (D20): a
SUSPECT held by the eviction budget, or an expiry the evictor has not acted on yet (during or
right after a store outage). Three callers take it, and nothing else writes such a restore:

- its owner's Register (same token, or the same idempotency key retried): on the lease that
  Register granted, as the owner now asks, or as stored;
- its owner's renewal (KeepAlive) that finds the lease gone (`renewal`): on a new lease of its
  TTL, same incarnation and token, without the node noticing and without watchers ever seeing
  it leave;
- an operator who cancels a suspect's eviction (`on_new_lease`).

An operator's override (maintenance, drain) keeps its status through a restore. A registration of
a client session (D73) goes back on its session's lease (opened anew when the old one lapsed:
the whole session lapsed with it, so its renewals come back together); the operator's cancel puts
it on a lease of its own. Once the evictor has removed the member, there is nothing to restore:
the node must register again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass

from registry_service.control import OperatorEntry
from registry_service.core.registration_tokens import token_matches
from registry_service.core.session_leases import SessionLeases
from registry_service.domain import AuditCause, Node, NodeKey, NodeStatus, owner_view
from registry_service.errors import (
    ConcurrentModificationError,
    NodeNotFoundError,
    StoreUnavailableError,
)
from registry_service.store.base import RegistryStore, StoredNode

_MAX_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class Restored:
    """A member back UP: as written, on a lease of `ttl_seconds`, at `revision`."""

    node: Node
    ttl_seconds: int
    revision: int
    session_lease: bool = False


class SpareLeases:
    """Leases granted and not used (a lost race, a replaced lease, an evicted node's): revoked in
    the background; one that cannot be revoked now expires on its own."""

    def __init__(self, store: RegistryStore) -> None:
        self._store = store
        self._background: set[asyncio.Task[None]] = set()

    def revoke_later(self, lease_id: int) -> None:
        """Revokes the lease in the background (an outage leaves it to expire)."""
        task = asyncio.create_task(self._quietly_revoke(lease_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _quietly_revoke(self, lease_id: int) -> None:
        with contextlib.suppress(StoreUnavailableError):
            await self._store.revoke_lease(lease_id)


def _restored_status(status: NodeStatus) -> NodeStatus:
    return NodeStatus.UP if status is NodeStatus.SUSPECT else status


class Restoration:
    """Restores lapsed members for the registry, its renewals and the operator's use cases."""

    def __init__(
        self, store: RegistryStore, spare_leases: SpareLeases, sessions: SessionLeases
    ) -> None:
        self._store = store
        self._spare = spare_leases
        self._sessions = sessions

    async def restore(
        self,
        stored: StoredNode,
        lease_id: int,
        ttl_seconds: int,
        cause: AuditCause,
        *,
        requested: Node | None = None,
        operator: OperatorEntry | None = None,
        session: str = "",
    ) -> Restored | None:
        """Puts the member read as `stored` back on `lease_id` (its client session's lease when
        `session` names one), as its owner now asks (`requested`) or as stored (None: UP unless
        an operator's override says otherwise). None if it changed since `stored` (then
        `lease_id` is unused: the caller's)."""
        current = stored.registration
        assert current is not None
        override = current.override
        if requested is not None:
            # A restore is not a report of health: the node keeps what it is published as.
            requested = dataclasses.replace(
                requested,
                incarnation=current.node.incarnation,
                health=current.node.health,
                damped=current.node.damped,
            )
            node, override = owner_view(requested, override)
        else:
            status = override.status if override else _restored_status(current.node.status)
            node = dataclasses.replace(current.node, status=status)
        registration = dataclasses.replace(
            current,
            node=node,
            lease_id=lease_id,
            ttl_seconds=ttl_seconds,
            suspect_since=0.0,
            override=override,
            session=session,
        )
        revision = await self._store.restore_registration(
            registration, stored, cause, operator=operator
        )
        if revision is None:
            return None
        return Restored(node, ttl_seconds, revision, session_lease=bool(session))

    async def on_new_lease(
        self, stored: StoredNode, cause: AuditCause, operator: OperatorEntry | None = None
    ) -> Restored | None:
        """Restores the member as stored on a new lease of its own TTL; None if it changed
        meanwhile (the new lease is revoked in the background)."""
        current = stored.registration
        assert current is not None
        lease_id = await self._store.grant_lease(current.ttl_seconds)
        restored = await self.restore(
            stored, lease_id, current.ttl_seconds, cause, operator=operator
        )
        if restored is None:
            self._spare.revoke_later(lease_id)
        return restored

    async def _on_session_lease(self, stored: StoredNode, session: str) -> Restored | None:
        """Restores a session's registration on the session's current lease; None if it (or
        the lease) changed meanwhile."""
        current = stored.registration
        assert current is not None
        ttl = current.ttl_seconds
        lease_id = await self._sessions.current(session, ttl)
        restored = await self.restore(stored, lease_id, ttl, AuditCause.RESTORED, session=session)
        if restored is None:
            self._sessions.forget(session, ttl, lease_id)
        return restored

    async def renewal(self, key: NodeKey, token: str) -> int:
        """A renewal whose lease is gone: the member back UP on a new lease while its record
        exists and the token matches; returns the seconds it now has.

        Raises:
            NodeNotFoundError: no member record (removed), its live key back (another owner
                registered it), or another token: the caller registers again.
        """
        for _ in range(_MAX_ATTEMPTS):
            stored = await self._store.read_node(key)
            current = stored.registration
            if current is None or stored.live or not token_matches(token, current.token_hash):
                raise NodeNotFoundError(f"the lease of {key} has expired; register again")
            if current.session:
                restored = await self._on_session_lease(stored, current.session)
            else:
                restored = await self.on_new_lease(stored, AuditCause.RESTORED)
            if restored is not None:
                return restored.ttl_seconds
        raise ConcurrentModificationError(f"node {key} changed while renewing; retry")
