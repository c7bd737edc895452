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

A Register that names a client session (D73) rides on the lease its session's registrations of
that TTL share (core/session_leases.py): when this frontend knows it, one etcd transaction guarded
by the session's key naming that lease; the session's first Register grants the lease and opens
the key in the same transaction while its other Registers wait. Else a lease of its own.

KeepAlive is core/renewals.py's; a lapsed member goes back UP through core/restoration.py (the
one restore path: Register, renewals, an operator's cancel); core/write_gate.py says which writes
a frontend takes at all. Calls go one way: registry -> renewals -> restoration, never back.
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
from registry_service.core import owner_health
from registry_service.core.damping import DampingPolicy
from registry_service.core.owner_updates import OwnerUpdates
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
from registry_service.core.session_leases import SessionLeases
from registry_service.core.write_gate import WriteGate
from registry_service.datacenters import Datacenters
from registry_service.domain import (
    AuditCause,
    Check,
    Limits,
    Node,
    NodeKey,
    Registration,
    RemovalReason,
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
    """What Register answers: the node as stored, its TTL, its token and the revision."""

    node: Node
    ttl_seconds: int
    token: str
    revision: int
    session_lease: bool = False
    """The registration rides on its client session's shared lease (D73)."""


@dataclass(frozen=True, slots=True)
class _Request:
    """A Register as validated: what every pass of the algorithm reads."""

    node: Node
    ttl: int
    idempotency_key: str
    idempotency_hash: str
    token: str
    checks: tuple[Check, ...] = ()  # what the registry probes; on an update, () keeps them


@dataclass(frozen=True, slots=True)
class _Outcome:
    """A Register decided: its result, and whether the lease handed in now carries it."""

    registered: RegisterResult
    lease_used: bool


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
    """Register, KeepAlive and Deregister: the writes of a node's owner."""

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
        self._sessions = SessionLeases(store)
        self._updates = OwnerUpdates(store, self._sessions, config.damping)
        # A node nobody holds, with the incarnation floor as the last read saw it: a create
        # tried before any read is guarded by it (it rarely moves: identity collection, D86).
        self._floor_seen = StoredNode(NodeKey("", "", ""), 0)
        self._restoration = Restoration(store, self._spare_leases, self._sessions)
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
        """The bounds on client input this registry checks."""
        return self._limits

    # -- Register -----------------------------------------------------------------------------

    async def register(
        self,
        node: Node,
        ttl_seconds: int,
        idempotency_key: str = "",
        token: str = "",
        session: str = "",
        checks: Sequence[Check] = (),
    ) -> RegisterResult:
        """Registers (or updates, with `token`) a node; `session`: the name of the client
        session whose shared lease it rides on (core/session_leases.session_name), "" for a
        lease of its own. `checks`: what the registry probes (docs/design.md §13); on an update,
        empty keeps the current ones. `node.health` is the owner's report when the registration
        has no checks, and the health it starts with when it has (core/owner_health.py)."""
        node = validate_node(node, self._limits)
        wanted_checks = validate_checks(checks, self._limits)
        self._gate.check(node.key)
        ttl = validate_ttl(ttl_seconds, self._limits)
        if len(idempotency_key) > _IDEMPOTENCY_KEY_MAX_LENGTH:
            raise InvalidArgumentError(
                f"idempotency_key is {len(idempotency_key)} characters; the limit is "
                f"{_IDEMPOTENCY_KEY_MAX_LENGTH}"
            )
        request = _Request(
            node, ttl, idempotency_key, hash_idempotency_key(idempotency_key), token, wanted_checks
        )
        if session:
            return await self._register_in_session(request, session)
        return await self._register_alone(request)

    async def _register_alone(self, request: _Request) -> RegisterResult:
        node, ttl = request.node, request.ttl
        spare_lease = 0
        try:
            if self._hub.registration(node.key) is None:
                # Most Registers are of nodes nobody holds: try to create at once, guarded by the
                # node's keys being absent, and read only when that fails (a returning node, or
                # a view behind etcd). Saves one etcd call per new registration.
                spare_lease = await self._store.grant_lease(ttl)
                result = await self._create(request, self._unheld(node.key), spare_lease)
                if result is not None:
                    spare_lease = 0
                    return result.registered
            for _ in range(_MAX_ATTEMPTS):
                # The lease a new registration needs is granted while the node is read: one etcd
                # round trip less for the common case (docs/performance.md).
                if spare_lease:
                    stored = await self._store.read_node(node.key)
                else:
                    stored, spare_lease = await asyncio.gather(
                        self._store.read_node(node.key), self._store.grant_lease(ttl)
                    )
                self._saw_floor(stored)
                result = await self._decide(request, stored, spare_lease)
                if result is not None:
                    if result.lease_used:
                        spare_lease = 0
                    return result.registered
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

    async def _register_in_session(self, request: _Request, session: str) -> RegisterResult:
        """A registration on its client session's shared lease (D73)."""
        node, ttl = request.node, request.ttl
        if self._hub.registration(node.key) is None:
            # The common case, a new node: one transaction when the session's lease is known,
            # or is being opened by another Register of the session (awaited: a client's first
            # Registers come all at once); else this one grants the lease and its transaction
            # opens the session's key on it.
            lease = await self._sessions.known_or_opened(session, ttl)
            if lease:
                result = await self._create(request, self._unheld(node.key), lease, session=session)
            else:
                result = await self._open_session(request, session)
            if result is not None:
                return result.registered
        for _ in range(_MAX_ATTEMPTS):
            # The session's lease as etcd has it now, read while the node is.
            stored, lease = await asyncio.gather(
                self._store.read_node(node.key), self._sessions.current(session, ttl, fresh=True)
            )
            self._saw_floor(stored)
            result = await self._decide(request, stored, lease, session=session)
            if result is not None:
                return result.registered
            self._sessions.forget(session, ttl, lease)
        raise ConcurrentModificationError(
            f"node {node.key} changed {_MAX_ATTEMPTS} times while registering; retry"
        )

    async def _open_session(self, request: _Request, session: str) -> _Outcome | None:
        """The first Register of a session in this frontend: a new lease, and the registration's
        transaction opens the session's key on it. None if the node or the session was there
        already (the session's lease, found in etcd, goes to those waiting)."""
        node, ttl = request.node, request.ttl
        with self._sessions.opening(session, ttl) as claim:
            lease = await self._store.grant_lease(ttl)
            result = await self._create(
                request, self._unheld(node.key), lease, session=session, opens_session=True
            )
            if result is not None:
                claim.opened(lease)
                return result
            self._spare_leases.revoke_later(lease)  # nothing was written on it
            claim.opened(await self._sessions.find_or_open(session, ttl))
        return None

    def _unheld(self, key: NodeKey) -> StoredNode:
        """The node as nobody holds it, under the incarnation floor the last read saw."""
        return dataclasses.replace(self._floor_seen, key=key)

    def _saw_floor(self, stored: StoredNode) -> None:
        self._floor_seen = StoredNode(
            stored.key,
            0,
            incarnation_floor=stored.incarnation_floor,
            floor_mod_revision=stored.floor_mod_revision,
        )

    def forget_lease(self, lease_id: int, *, shared: bool = False) -> None:
        """A registration was removed behind its owner's back (an operator evicted it): its
        renewals must not be answered from the coalescing cache, and its lease can go, unless
        it is its session's (`shared`): the session's other registrations ride on it."""
        self._renewals.forget(lease_id)
        if not shared:
            self._spare_leases.revoke_later(lease_id)

    async def _decide(
        self, request: _Request, stored: StoredNode, lease_id: int, *, session: str = ""
    ) -> _Outcome | None:
        """One pass of the register algorithm; None to read again and retry. `lease_id`: a lease
        granted for a new registration (alone), or the session's lease (`session`)."""
        node, ttl, token = request.node, request.ttl, request.token
        idempotency_hash = request.idempotency_hash
        current = stored.registration
        if current is not None and stored.live:
            if idempotency_hash and current.idempotency_hash == idempotency_hash:
                return _Outcome(
                    RegisterResult(
                        node=current.node,
                        ttl_seconds=current.ttl_seconds,
                        token=unseal_token(current.sealed_token, request.idempotency_key),
                        revision=stored.member_mod_revision,
                        session_lease=bool(current.session),
                    ),
                    lease_used=False,
                )
            if token_matches(token, current.token_hash):
                updated = await self._updates.update(
                    request.node, request.ttl, request.checks, current, stored, session
                )
                if updated is None:
                    return None
                node, revision = updated
                result = RegisterResult(node, ttl, token, revision, session_lease=bool(session))
                return _Outcome(result, lease_used=False)
            raise NodeConflictError(
                f"node {node.key} is registered by another owner (incarnation "
                f"{current.node.incarnation}); present its token to update it, or wait "
                f"until it deregisters or its {current.ttl_seconds}s TTL runs out"
            )
        if current is not None:
            # Its lease is gone but its member record is not (a SUSPECT, or not evicted yet).
            if idempotency_hash and current.idempotency_hash == idempotency_hash:
                # The same registration retried: UP again, same incarnation and token.
                token = unseal_token(current.sealed_token, request.idempotency_key)
                return await self._restore(stored, None, token, ttl, lease_id, session)
            if token_matches(token, current.token_hash):
                return await self._restore(stored, node, token, ttl, lease_id, session)
        if current is not None:
            # Its lease expired (and another owner claims a suspect): the old one goes now.
            await self._store.remove_member(
                stored, RemovalReason.EXPIRED, cause=AuditCause.REPLACED, only_if_not_live=True
            )
            return None
        return await self._create(request, stored, lease_id, session=session)

    async def _create(
        self,
        request: _Request,
        stored: StoredNode,
        lease_id: int,
        *,
        session: str = "",
        opens_session: bool = False,
    ) -> _Outcome | None:
        """Creates the registration on lease_id; None if the node changed (the lease unused)."""
        _refuse_held(request.node.key, stored)
        node = dataclasses.replace(request.node, incarnation=stored.next_incarnation)
        health = owner_health.created(self._damping, node, request.checks, stored, time.time())
        node = health.node
        token = new_token()
        registration = Registration(
            node=node,
            lease_id=lease_id,
            ttl_seconds=request.ttl,
            token_hash=hash_token(token),
            idempotency_hash=request.idempotency_hash,
            sealed_token=seal_token(token, request.idempotency_key),
            session=session,
            checks=request.checks,
            damped_until=health.damped_until,
        )
        # On StoreUnavailableError the outcome is unknown: the lease is left to expire on its own
        # (revoking it could remove a registration that did commit).
        revision = await self._store.create_registration(
            registration, stored, health.flaps, health.detail, opens_session=opens_session
        )
        if revision is None:
            return None  # the node changed: retry with the same lease
        await failpoint("register.after_commit")
        return _Outcome(
            RegisterResult(node, request.ttl, token, revision, session_lease=bool(session)),
            lease_used=True,
        )

    async def _restore(
        self,
        stored: StoredNode,
        requested: Node | None,
        token: str,
        ttl: int,
        lease_id: int,
        session: str,
    ) -> _Outcome | None:
        """The owner's Register of a lapsed member: back UP on lease_id; None if it changed."""
        restored = await self._restoration.restore(
            stored, lease_id, ttl, AuditCause.RESTORED, requested=requested, session=session
        )
        if restored is None:
            return None
        result = RegisterResult(
            restored.node, ttl, token, restored.revision, session_lease=bool(session)
        )
        return _Outcome(result, lease_used=True)

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
        """Renews several registrations at once; each gets its seconds left or its error."""
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
        return RegisterResult(
            restored.node,
            restored.ttl_seconds,
            token,
            restored.revision,
            session_lease=restored.session_lease,
        )

    # -- Deregister ---------------------------------------------------------------------------

    async def deregister(self, key: NodeKey, token: str) -> int:
        """Removes the node if `token` owns it; returns the revision. Raises NodeNotFoundError."""
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
                if not registration.session:  # a session's lease stays with its other nodes
                    with contextlib.suppress(StoreUnavailableError):
                        await self._store.revoke_lease(registration.lease_id)
                return revision
        raise ConcurrentModificationError(f"node {key} changed while deregistering; retry")
