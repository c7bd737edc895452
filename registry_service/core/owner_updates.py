"""The owner's change of a live registration (Register with its token): address, metadata,
status, TTL, session, checks, and its own report of its health.

A new TTL or session moves the registration to another lease: the session's shared one (D73), or
one of its own (`detach()` leaves its session that way). An operator's override (maintenance,
drain) outlasts the owner's updates. A report of the node's health is published as flap damping
says (core/owner_health.py): a flip of a damped node's report writes only its flap record, since
nothing subscribers see changes; a change of its published health is audited as such.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time

from registry_service.core import owner_health
from registry_service.core.damping import DampingPolicy
from registry_service.core.health_writes import health_cause
from registry_service.core.session_leases import SessionLeases
from registry_service.domain import AuditCause, Check, Node, Registration, owner_view
from registry_service.errors import StoreUnavailableError
from registry_service.store.base import RegistryStore, StoredNode


class OwnerUpdates:
    """Updates of live registrations by their owners, each one guarded write."""

    def __init__(
        self, store: RegistryStore, sessions: SessionLeases, damping: DampingPolicy
    ) -> None:
        self._store = store
        self._sessions = sessions
        self._damping = damping

    async def update(
        self,
        requested: Node,
        ttl: int,
        checks: tuple[Check, ...],
        current: Registration,
        stored: StoredNode,
        session: str,
    ) -> tuple[Node, int] | None:
        """Writes `current` as its owner asks (`checks` empty: it keeps its own); returns the
        node as published and the revision, or None when it changed meanwhile (read again)."""
        checks = checks or current.checks
        health = owner_health.updated(
            self._damping, requested, current, stored, checks, time.time()
        )
        node = health.node
        # An operator's override (maintenance, drain) outlasts the owner's updates.
        node, override = owner_view(
            dataclasses.replace(node, incarnation=current.node.incarnation), current.override
        )
        lease_id = current.lease_id
        moves = ttl != current.ttl_seconds or session != current.session
        if moves:
            if session:
                lease_id = await self._sessions.current(session, ttl)
            else:
                lease_id = await self._store.grant_lease(ttl)
        registration = dataclasses.replace(
            current,
            node=node,
            lease_id=lease_id,
            ttl_seconds=ttl,
            override=override,
            session=session,
            checks=checks,
            damped_until=health.damped_until,
        )
        if health.flaps is not None and registration == current:
            # A flip of a damped node's report: nothing subscribers see changes (core/damping.py).
            revision = await self._store.write_health(None, stored, health.flaps)
            return None if revision is None else (node, revision)
        cause = AuditCause.UPDATED
        if (node.health, node.damped) != (current.node.health, current.node.damped):
            cause = health_cause(current.node, node.health, node.damped)  # its own report
        revision = await self._store.update_registration(
            registration, stored, cause=cause, flaps=health.flaps
        )
        if revision is None:
            if moves and not session:
                with contextlib.suppress(StoreUnavailableError):
                    await self._store.revoke_lease(lease_id)
            elif moves:
                self._sessions.forget(session, ttl, lease_id)
            return None
        if moves and not current.session:  # a session's lease is not the registration's own
            with contextlib.suppress(StoreUnavailableError):
                await self._store.revoke_lease(current.lease_id)
        return node, revision
