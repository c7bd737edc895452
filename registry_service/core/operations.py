"""What an operator does (docs/design.md §9), as use cases over the store: no HTTP, no etcd types.

- The push switch and its gray list, stored in etcd (`switches/push`): every frontend and worker
  follows it from its watch. A change answers once this frontend applies it.
- Live nodes: maintenance (OUT_OF_SERVICE) and drain (DRAINING) as an operator's override kept in
  the member record while the owner renews or updates; clear gives the owner's status back. Evict
  now (REMOVED, reason EVICTED), optionally holding the id out for a while; lift such a hold.
- Suspects held by the eviction budget: list, confirm (evict), cancel (UP for one more TTL).
- The audit: a node's transitions, and every operator action with who did it.

Every write is guarded by what was read (a lost race is read again) and carries an
`OperatorEntry` naming the operator, recorded in the same etcd transaction.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from registry_service.control import HeldScope, OperatorEntry, PushSwitch
from registry_service.core.registry import Registry
from registry_service.datacenters import Datacenters
from registry_service.domain import (
    AuditCause,
    AuditEntry,
    Limits,
    NodeKey,
    NodeStatus,
    Override,
    Registration,
    RemovalReason,
)
from registry_service.errors import (
    ConcurrentModificationError,
    InvalidArgumentError,
    NodeNotFoundError,
    NotLiveError,
)
from registry_service.hub.watch_hub import WatchHub
from registry_service.store.base import ControlStore, RegistryStore, StoredNode
from registry_service.validation import validate_key

_MAX_ATTEMPTS = 8
_APPLIED_WAIT_SECONDS = 2.0
# The status each override action sets; None clears the override.
OVERRIDES = {
    "maintenance": NodeStatus.OUT_OF_SERVICE,
    "drain": NodeStatus.DRAINING,
    "clear": None,
}
_OVERRIDE_CAUSES = {
    NodeStatus.OUT_OF_SERVICE: AuditCause.OPERATOR_OUT_OF_SERVICE,
    NodeStatus.DRAINING: AuditCause.OPERATOR_DRAINING,
    None: AuditCause.OPERATOR_CLEARED,
}
HOLD_MAX_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class PushChange:
    """What an operator changes of the push switch; None leaves a part as stored."""

    enabled: bool | None = None
    held_scopes: tuple[HeldScope, ...] | None = None
    held_networks: tuple[str, ...] | None = None

    @property
    def action(self) -> str:
        """How the operator audit names it: push.on, push.off, push.gray, or push.switch (both)."""
        gray = self.held_scopes is not None or self.held_networks is not None
        if self.enabled is None:
            return "push.gray"
        if not gray:
            return "push.on" if self.enabled else "push.off"
        return "push.switch"


@dataclass(frozen=True, slots=True)
class NodeAction:
    """The outcome of an operator's action on a node."""

    key: NodeKey
    revision: int
    status: NodeStatus | None = None  # the node's status after it (None: removed)


class Operations:
    def __init__(
        self,
        store: RegistryStore,
        control: ControlStore,
        hub: WatchHub,
        registry: Registry,
        limits: Limits,
        frontend_id: str,
        datacenters: Datacenters | None = None,
    ) -> None:
        self._store = store
        self._control = control
        self._hub = hub
        self._registry = registry
        self._limits = limits
        self._frontend_id = frontend_id
        self._datacenters = datacenters or Datacenters()

    def _writable(self, key: NodeKey) -> NodeKey:
        """A node this registry acts on: valid, and of its own datacenter (federation: another
        datacenter's nodes are acted on through that datacenter's registry)."""
        key = validate_key(key, self._limits)
        self._datacenters.check_writable(key)
        return key

    def _entry(
        self, action: str, operator: str, target: str = "", detail: str = ""
    ) -> OperatorEntry:
        return OperatorEntry(action, operator, time.time(), self._frontend_id, target, detail)

    # -- the push switch ----------------------------------------------------------------------

    async def set_push_switch(self, change: PushChange, operator: str) -> tuple[PushSwitch, int]:
        """Stores the changed switch (audited); returns it and its revision once this frontend
        applies it (every other frontend follows from its own watch)."""
        for _ in range(_MAX_ATTEMPTS):
            stored, mod_revision = await self._control.read_push_switch()
            switch = PushSwitch(
                enabled=stored.enabled if change.enabled is None else change.enabled,
                held_scopes=stored.held_scopes
                if change.held_scopes is None
                else change.held_scopes,
                held_networks=stored.held_networks
                if change.held_networks is None
                else change.held_networks,
                changed_by=operator,
                changed_at=time.time(),
            )
            entry = self._entry(change.action, operator, detail=describe_switch(switch))
            revision = await self._control.write_push_switch(switch, mod_revision, entry)
            if revision is not None:
                await self._hub.wait_for_revision(revision, _APPLIED_WAIT_SECONDS)
                return switch, revision
        raise ConcurrentModificationError("the push switch kept changing; retry")

    # -- live nodes ---------------------------------------------------------------------------

    async def set_override(
        self, key: NodeKey, status: NodeStatus | None, operator: str, reason: str = ""
    ) -> NodeAction:
        """Sets an operator's status on a live node (OUT_OF_SERVICE, DRAINING), or clears it
        (None: the owner's status again). Watchers see UPDATED."""
        key = self._writable(key)
        action = "node.clear" if status is None else f"node.{status.value.lower()}"
        for _ in range(_MAX_ATTEMPTS):
            stored = await self._store.read_node(key)
            current = stored.registration
            if current is None or not stored.live:
                raise NotLiveError(
                    f"{key} is not a live member{' (it stopped renewing)' if current else ''}: "
                    "maintenance, drain and clear act on live nodes; `admin node evict` removes "
                    "any member"
                )
            updated = _overridden(current, status, operator)
            if updated == current:
                return NodeAction(key, stored.member_mod_revision, current.node.status)
            entry = self._entry(action, operator, key.path, reason)
            revision = await self._store.update_registration(
                updated, stored, cause=_OVERRIDE_CAUSES[status], operator=entry
            )
            if revision is not None:
                return NodeAction(key, revision, updated.node.status)
        raise ConcurrentModificationError(f"node {key} changed while acting on it; retry")

    async def evict(
        self, key: NodeKey, operator: str, *, hold_seconds: float = 0.0, reason: str = ""
    ) -> NodeAction:
        """Removes a member now (reason EVICTED), whether it renews or not; its owner's next
        renewal gets NOT_FOUND and it may register anew, unless held out for `hold_seconds`."""
        key = self._writable(key)
        if not 0 <= hold_seconds <= HOLD_MAX_SECONDS:
            raise InvalidArgumentError(
                f"hold of {hold_seconds:g}s is out of range: 0 to {HOLD_MAX_SECONDS}s (a week)"
            )
        hold_until = time.time() + hold_seconds if hold_seconds else 0.0
        detail = reason + (f"; held out for {hold_seconds:g}s" if hold_seconds else "")
        for _ in range(_MAX_ATTEMPTS):
            stored = await self._store.read_node(key)
            current = stored.registration
            if current is None:
                raise NodeNotFoundError(f"{key} is not a member")
            revision = await self._store.remove_member(
                stored,
                RemovalReason.EVICTED,
                cause=AuditCause.OPERATOR_EVICTED,
                detail=detail.strip("; "),
                operator=self._entry("node.evict", operator, key.path, detail.strip("; ")),
                hold_until=hold_until,
            )
            if revision is not None:
                self._registry.forget_lease(current.lease_id, shared=bool(current.session))
                return NodeAction(key, revision)
        raise ConcurrentModificationError(f"node {key} changed while evicting it; retry")

    async def lift_hold(self, key: NodeKey, operator: str) -> NodeAction:
        """Lets an evicted and held node id register again at once."""
        key = self._writable(key)
        for _ in range(_MAX_ATTEMPTS):
            stored = await self._store.read_node(key)
            if stored.identity is None or stored.identity.hold_until <= time.time():
                raise NodeNotFoundError(f"{key} is not held out")
            if stored.registration is not None:
                raise NodeNotFoundError(f"{key} is a member again: nothing holds it")
            revision = await self._control.lift_hold(
                stored, self._entry("node.unhold", operator, key.path)
            )
            if revision is not None:
                return NodeAction(key, revision)
        raise ConcurrentModificationError(f"node {key} changed while lifting its hold; retry")

    # -- suspects -----------------------------------------------------------------------------

    def suspects(self) -> list[Registration]:
        """Every SUSPECT member in this frontend's view, oldest suspicion first."""
        held = [
            member.registration
            for _, member in self._hub.view.expired()
            if member.registration.node.status is NodeStatus.SUSPECT
        ]
        return sorted(held, key=lambda registration: registration.suspect_since)

    async def settle_suspect(self, key: NodeKey, *, evict: bool, operator: str = "") -> int:
        """An operator's decision on a suspect: evict it now (REMOVED, reason EVICTED), or cancel
        its eviction (UP again on a new lease of its TTL: it has one more TTL to renew)."""
        key = self._writable(key)
        action = "suspect.confirm" if evict else "suspect.cancel"
        for _ in range(_MAX_ATTEMPTS):
            stored = await self._store.read_node(key)
            current = stored.registration
            if current is None or stored.live or current.node.status is not NodeStatus.SUSPECT:
                raise NodeNotFoundError(f"{key} is not a SUSPECT member")
            entry = self._entry(action, operator, key.path)
            if evict:
                revision = await self._store.remove_member(
                    stored,
                    RemovalReason.EVICTED,
                    cause=AuditCause.OPERATOR_EVICTED,
                    only_if_not_live=True,
                    operator=entry,
                )
                if revision is not None:
                    return revision
                continue
            result = await self._registry.restore_on_new_lease(
                stored, "", AuditCause.OPERATOR_RESTORED, entry
            )
            if result is not None:
                return result.revision
        raise ConcurrentModificationError(f"node {key} changed while settling it; retry")

    # -- audit --------------------------------------------------------------------------------

    async def audit(self, key: NodeKey) -> list[AuditEntry]:
        """Why the node joined, changed and left, as far back as the audit retention."""
        return await self._store.read_audit(validate_key(key, self._limits))

    async def operator_audit(self) -> list[OperatorEntry]:
        """Every operator action within the audit retention, oldest first."""
        return await self._control.read_operator_audit()

    async def stored_node(self, key: NodeKey) -> StoredNode:
        """A node's keys as etcd has them now (what `admin node` shows besides the list)."""
        return await self._store.read_node(validate_key(key, self._limits))


def _overridden(current: Registration, status: NodeStatus | None, operator: str) -> Registration:
    """The registration with the operator's status set (or cleared: the owner's again)."""
    override = current.override
    owner_status = override.owner_status if override else current.node.status
    if status is None:
        if override is None:
            return current
        return dataclasses.replace(
            current,
            node=dataclasses.replace(current.node, status=owner_status),
            override=None,
        )
    if override is not None and override.status is status:
        return current
    return dataclasses.replace(
        current,
        node=dataclasses.replace(current.node, status=status),
        override=Override(status, owner_status, operator, time.time()),
    )


def describe_switch(switch: PushSwitch) -> str:
    """One line: on/off and what the gray list holds."""
    text = "on" if switch.enabled else "off"
    if switch.gray:
        held = [str(scope) for scope in switch.held_scopes] + list(switch.held_networks)
        text += f", holding {', '.join(held)}"
    return text
