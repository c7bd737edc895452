"""The write use cases: register, keep alive, deregister (core/reads.py serves lists and watches).
No gRPC, no etcd types.

Register is an idempotent upsert over guarded store writes:
  1. read the node's keys (member, live, identity) at one revision;
  2. live and the idempotency key matches: the same registration again (token unsealed);
     live and the token matches: an update (address, metadata, status, TTL);
     live otherwise: ALREADY_EXISTS;
     lease gone, member still there (SUSPECT, or not evicted yet), same owner: back UP on a new
     lease, same incarnation;
     member left behind by an expired lease, another owner: remove it, then go on as absent;
     absent: grant a lease and create live key, member and identity (incarnation + 1) at once;
  3. a guarded write that finds the node changed goes back to 1.

KeepAlive is core/renewals.py's; a lapsed member goes back UP through core/restoration.py, the
one restore path (Register, renewals and the operator's cancel take it); which writes this
frontend takes at all is core/write_gate.py's. Calls go one way: registry -> renewals ->
restoration, never back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from registry_service.control import OperatorEntry
from registry_service.core.damping import DampingPolicy, decide
from registry_service.core.health_writes import damping_detail, health_cause
from registry_service.core.registration_tokens import (
    hash_idempotency_key,
    hash_token,
    new_token,
    seal_token,
    token_matches,
    unseal_token,
)
from registry_service.core.renewals import Renewals
from registry_service.core.restoration import Restoration, SpareLeases
from registry_service.core.write_gate import WriteGate
from registry_service.datacenters import Datacenters
from registry_service.domain import (
    AuditCause,
    Check,
    FlapRecord,
    Health,
    Limits,
    Node,
    NodeKey,
    Registration,
    RemovalReason,
    owner_view,
)
from registry_service.errors import (
    ConcurrentModificationError,
    InvalidArgumentError,
    NodeConflictError,
    NodeHeldError,
    NodeNotFoundError,
    StoreUnavailableError,
)
from registry_service.failpoints import failpoint
from registry_service.hub.watch_hub import WatchHub
from registry_service.store.base import RegistryStore, StoredNode
from registry_service.validation import (
    validate_checks,
    validate_key,
    validate_node,
    validate_ttl,
)

_MAX_ATTEMPTS = 8
_IDEMPOTENCY_KEY_MAX_LENGTH = 128


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    """What a registration may be, and how KeepAlive spares etcd."""

    limits: Limits = field(default_factory=Limits)
    """Sizes and ranges of ids, types, addresses, metadata and TTLs (the settings of the
    README's Registrations table)."""
    keepalive_coalesce_seconds: float = 0.5
    """Renewals of one lease closer together than this (or a sixth of its TTL, when longer) are
    answered without asking etcd; 0: etcd every time (`keepalive_coalesce_seconds`)."""
    damping: DampingPolicy = field(default_factory=DampingPolicy)
    """Flap damping of registrations anew and of owners' health reports (the `damping_*`
    settings; docs/design.md §13)."""


@dataclass(frozen=True, slots=True)
class RegisterResult:
    node: Node
    ttl_seconds: int
    token: str
    revision: int


def _refuse_held(key: NodeKey, stored: StoredNode) -> None:
    """An operator evicted the node with a hold: its id may not register before the hold ends."""
    identity = stored.identity
    remaining = identity.hold_until - time.time() if identity else 0.0
    if identity is not None and remaining > 0:
        until = datetime.datetime.fromtimestamp(identity.hold_until, datetime.UTC)
        raise NodeHeldError(
            f"node {key} was evicted by {identity.held_by or 'an operator'}, who holds it out "
            f"until {until.isoformat(timespec='seconds')} ({remaining:.0f}s from now); register "
            "after that, or ask the operator to lift the hold (noderegistry admin node unhold)",
            retry_after_seconds=remaining,
        )


class Registry:
    def __init__(
        self,
        store: RegistryStore,
        hub: WatchHub,
        config: RegistryConfig | None = None,
        *,
        datacenters: Datacenters | None = None,
    ) -> None:
        """`datacenters`: which datacenter's nodes this registry may write (federation)."""
        config = config or RegistryConfig()
        self._store = store
        self._hub = hub
        self._limits = config.limits
        self._damping = config.damping
        self._gate = WriteGate(hub, datacenters)
        self._spare_leases = SpareLeases(store)
        # A node nobody holds, with the incarnation floor as the last read saw it: a create
        # tried before any read is guarded by it (it rarely moves: identity collection, D86).
        self._floor_seen = StoredNode(NodeKey("", "", ""), 0)
        self._restoration = Restoration(store, self._spare_leases)
        self._renewals = Renewals(
            store,
            hub,
            config.limits,
            coalesce_seconds=config.keepalive_coalesce_seconds,
            gate=self._gate,
            restoration=self._restoration,
        )

    @property
    def limits(self) -> Limits:
        return self._limits

    # -- Register -----------------------------------------------------------------------------

    async def register(
        self,
        node: Node,
        ttl_seconds: int,
        idempotency_key: str = "",
        token: str = "",
        checks: Sequence[Check] = (),
    ) -> RegisterResult:
        """Creates or updates a registration (the module's docstring says how). `checks`: what
        the registry probes (docs/design.md §13); on an update, empty keeps the current ones.
        `node.health` is the owner's report when the registration has no checks, and the health
        it starts with when it has (UNCHECKED: PASSING)."""
        node = validate_node(node, self._limits)
        wanted_checks = validate_checks(checks, self._limits)
        self._gate.check(node.key)
        ttl = validate_ttl(ttl_seconds, self._limits)
        if len(idempotency_key) > _IDEMPOTENCY_KEY_MAX_LENGTH:
            raise InvalidArgumentError(
                f"idempotency_key is {len(idempotency_key)} characters; the limit is "
                f"{_IDEMPOTENCY_KEY_MAX_LENGTH}"
            )
        idempotency_hash = hash_idempotency_key(idempotency_key)
        spare_lease = 0
        try:
            if self._hub.registration(node.key) is None:
                # Most Registers are of nodes nobody holds: try to create at once, guarded by the
                # node's keys being absent, and read only when that fails (a returning node, or
                # a view behind etcd). Saves one etcd call per new registration.
                spare_lease = await self._store.grant_lease(ttl)
                result, spare_lease = await self._create(
                    node,
                    ttl,
                    idempotency_key,
                    idempotency_hash,
                    dataclasses.replace(self._floor_seen, key=node.key),
                    spare_lease,
                    wanted_checks,
                )
                if result is not None:
                    return result
            for _ in range(_MAX_ATTEMPTS):
                # The lease a new registration needs is granted while the node is read: one etcd
                # round trip less for the common case (docs/performance.md).
                if spare_lease:
                    stored = await self._store.read_node(node.key)
                else:
                    stored, spare_lease = await asyncio.gather(
                        self._store.read_node(node.key), self._store.grant_lease(ttl)
                    )
                self._floor_seen = StoredNode(
                    node.key,
                    0,
                    incarnation_floor=stored.incarnation_floor,
                    floor_mod_revision=stored.floor_mod_revision,
                )
                result, spare_lease = await self._decide(
                    node,
                    ttl,
                    idempotency_key,
                    idempotency_hash,
                    token,
                    stored,
                    spare_lease,
                    wanted_checks,
                )
                if result is not None:
                    return result
        except StoreUnavailableError:
            # The outcome of the last write is unknown: its lease may now carry the registration,
            # so it is left to expire on its own rather than revoked.
            spare_lease = 0
            raise
        finally:
            if spare_lease:
                self._spare_leases.revoke_later(spare_lease)
        raise ConcurrentModificationError(
            f"node {node.key} changed {_MAX_ATTEMPTS} times while registering; retry"
        )

    def forget_lease(self, lease_id: int) -> None:
        """A registration was removed behind its owner's back (an operator evicted it): its
        renewals must not be answered from the coalescing cache, and its lease can go."""
        self._renewals.forget(lease_id)
        self._spare_leases.revoke_later(lease_id)

    async def _decide(
        self,
        node: Node,
        ttl: int,
        idempotency_key: str,
        idempotency_hash: str,
        token: str,
        stored: StoredNode,
        lease_id: int,
        checks: tuple[Check, ...],
    ) -> tuple[RegisterResult | None, int]:
        """One pass of the register algorithm; returns (result or None to retry, unused lease)."""
        current = stored.registration
        if current is not None and stored.live:
            if idempotency_hash and current.idempotency_hash == idempotency_hash:
                return RegisterResult(
                    node=current.node,
                    ttl_seconds=current.ttl_seconds,
                    token=unseal_token(current.sealed_token, idempotency_key),
                    revision=stored.member_mod_revision,
                ), lease_id
            if token_matches(token, current.token_hash):
                return await self._update(node, ttl, token, current, stored, checks), lease_id
            raise NodeConflictError(
                f"node {node.key} is registered by another owner (incarnation "
                f"{current.node.incarnation}); present its token to update it, or wait "
                f"until it deregisters or its {current.ttl_seconds}s TTL runs out"
            )
        if current is not None:
            # Its lease is gone but its member record is not (a SUSPECT, or not evicted yet).
            if idempotency_hash and current.idempotency_hash == idempotency_hash:
                # The same registration retried: UP again, same incarnation and token.
                token = unseal_token(current.sealed_token, idempotency_key)
                return await self._restore(stored, None, token, ttl, lease_id)
            if token_matches(token, current.token_hash):
                return await self._restore(stored, node, token, ttl, lease_id)
        if current is not None:
            # Its lease expired (and another owner claims a suspect): the old one goes now.
            await self._store.remove_member(
                stored, RemovalReason.EXPIRED, cause=AuditCause.REPLACED, only_if_not_live=True
            )
            return None, lease_id
        return await self._create(
            node, ttl, idempotency_key, idempotency_hash, stored, lease_id, checks
        )

    async def _create(
        self,
        node: Node,
        ttl: int,
        idempotency_key: str,
        idempotency_hash: str,
        stored: StoredNode,
        lease_id: int,
        checks: tuple[Check, ...],
    ) -> tuple[RegisterResult | None, int]:
        """Creates the registration on lease_id; returns (result, 0) or (None, lease_id).

        A node that registered before (its identity is there) registers anew: flap damping
        counts it, so a crash loop is held FAILING instead of flooding every subscriber with
        its comings and goings."""
        _refuse_held(node.key, stored)
        health = node.health
        if checks and health is Health.UNCHECKED:
            health = Health.PASSING  # nothing is known against it yet
        flaps: FlapRecord | None = None
        damped_until = 0.0
        damped = False
        detail = ""
        if stored.identity is not None:
            published = decide(
                self._damping, stored.flaps, health, was_damped=False, flaps=1, now=time.time()
            )
            health, damped, flaps = published.health, published.damped, published.flaps
            damped_until = published.damped_until
            if damped:
                detail = f"registered anew too often: {damping_detail(self._damping, published)}"
        node = dataclasses.replace(
            node, incarnation=stored.next_incarnation, health=health, damped=damped
        )
        token = new_token()
        registration = Registration(
            node=node,
            lease_id=lease_id,
            ttl_seconds=ttl,
            token_hash=hash_token(token),
            idempotency_hash=idempotency_hash,
            sealed_token=seal_token(token, idempotency_key),
            checks=checks,
            damped_until=damped_until,
        )
        # On StoreUnavailableError the outcome is unknown: the lease is left to expire on its own
        # (revoking it could remove a registration that did commit).
        revision = await self._store.create_registration(registration, stored, flaps, detail)
        if revision is None:
            return None, lease_id  # the node changed: retry with the same lease
        await failpoint("register.after_commit")
        return RegisterResult(node, ttl, token, revision), 0

    async def _restore(
        self, stored: StoredNode, requested: Node | None, token: str, ttl: int, lease_id: int
    ) -> tuple[RegisterResult | None, int]:
        """The owner's Register of a lapsed member: back UP on lease_id (core/restoration.py).
        Returns (result, 0) or (None, lease_id)."""
        restored = await self._restoration.restore(
            stored, lease_id, ttl, AuditCause.RESTORED, requested=requested
        )
        if restored is None:
            return None, lease_id
        return RegisterResult(restored.node, ttl, token, restored.revision), 0

    async def _update(
        self,
        node: Node,
        ttl: int,
        token: str,
        current: Registration,
        stored: StoredNode,
        checks: tuple[Check, ...],
    ) -> RegisterResult | None:
        checks = checks or current.checks
        node, flaps, damped_until = self._reported_health(node, current, stored, checks)
        # An operator's override (maintenance, drain) outlasts the owner's updates.
        node, override = owner_view(
            dataclasses.replace(node, incarnation=current.node.incarnation), current.override
        )
        lease_id = current.lease_id
        if ttl != current.ttl_seconds:
            lease_id = await self._store.grant_lease(ttl)
        registration = dataclasses.replace(
            current,
            node=node,
            lease_id=lease_id,
            ttl_seconds=ttl,
            override=override,
            checks=checks,
            damped_until=damped_until,
        )
        if flaps is not None and registration == current:
            # A flip of a damped node's report: nothing subscribers see changes (core/damping.py).
            revision = await self._store.write_health(None, stored, flaps)
            return None if revision is None else RegisterResult(node, ttl, token, revision)
        cause = AuditCause.UPDATED
        if (node.health, node.damped) != (current.node.health, current.node.damped):
            cause = health_cause(current.node, node.health, node.damped)  # its own report
        revision = await self._store.update_registration(
            registration, stored, cause=cause, flaps=flaps
        )
        if revision is None:
            if lease_id != current.lease_id:
                with contextlib.suppress(StoreUnavailableError):
                    await self._store.revoke_lease(lease_id)
            return None
        if lease_id != current.lease_id:
            with contextlib.suppress(StoreUnavailableError):
                await self._store.revoke_lease(current.lease_id)
        return RegisterResult(node, ttl, token, revision)

    def _reported_health(
        self, node: Node, current: Registration, stored: StoredNode, checks: tuple[Check, ...]
    ) -> tuple[Node, FlapRecord | None, float]:
        """The node's health after its owner's update, the flap record to write (None: none)
        and when a damped node should be looked at again. With checks the registry runs, the
        health is theirs; without, a report that flips it (a sidecar's) counts as a flap."""
        published_now = current.node
        if checks:
            health = published_now.health
            if health is Health.UNCHECKED:  # checks added now: nothing is known against it yet
                health = node.health if node.health is not Health.UNCHECKED else Health.PASSING
            node = dataclasses.replace(node, health=health, damped=published_now.damped)
            return node, None, current.damped_until
        undamped = stored.flaps.health if stored.flaps else published_now.health
        reported = undamped if node.health is Health.UNCHECKED else node.health
        flipped = reported is not undamped and Health.UNCHECKED not in (reported, undamped)
        if not flipped and not published_now.damped:
            return dataclasses.replace(node, health=reported, damped=False), None, 0.0
        published = decide(
            self._damping,
            stored.flaps,
            reported,
            was_damped=published_now.damped,
            flaps=int(flipped),
            now=time.time(),
        )
        node = dataclasses.replace(node, health=published.health, damped=published.damped)
        # Still damped: the record keeps the time it was first expected back (whoever watches
        # over the node looks again then), so that the report alone rewrites nothing.
        damped_until = current.damped_until if published_now.damped else published.damped_until
        return node, published.flaps, damped_until if published.damped else 0.0

    # -- KeepAlive ----------------------------------------------------------------------------

    async def keep_alive(self, key: NodeKey, token: str) -> int:
        """Renews a registration; returns the seconds it now has left (core/renewals.py).

        Raises:
            NodeNotFoundError: no live registration with this token (the caller re-registers).
        """
        return await self._renewals.keep_alive(key, token)

    async def keep_alive_many(
        self, renewals: Sequence[tuple[NodeKey, str]]
    ) -> list[int | Exception]:
        """Renews several registrations at once; for each, the seconds it now has left or the
        error that answers it (core/renewals.py)."""
        return await self._renewals.keep_alive_many(renewals)

    async def restore_on_new_lease(
        self,
        stored: StoredNode,
        token: str,
        cause: AuditCause,
        operator: OperatorEntry | None = None,
    ) -> RegisterResult | None:
        """Puts a lapsed member back UP on a new lease of its own TTL (an operator cancelled its
        eviction; core/restoration.py); None if it changed meanwhile."""
        restored = await self._restoration.on_new_lease(stored, cause, operator)
        if restored is None:
            return None
        return RegisterResult(restored.node, restored.ttl_seconds, token, restored.revision)

    # -- Deregister ---------------------------------------------------------------------------

    async def deregister(self, key: NodeKey, token: str) -> int:
        key = validate_key(key, self._limits)
        self._gate.check(key)
        for _ in range(_MAX_ATTEMPTS):
            stored = await self._store.read_node(key)
            registration = stored.registration
            if registration is None or not token_matches(token, registration.token_hash):
                raise NodeNotFoundError(f"no registration of {key} with this token")
            revision = await self._store.remove_member(
                stored, RemovalReason.DEREGISTERED, cause=AuditCause.DEREGISTERED
            )
            if revision is not None:
                self._renewals.forget(registration.lease_id)
                with contextlib.suppress(StoreUnavailableError):
                    await self._store.revoke_lease(registration.lease_id)
                return revision
        raise ConcurrentModificationError(f"node {key} changed while deregistering; retry")
