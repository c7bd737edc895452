"""The store port: what the registry needs from its storage, in the registry's own terms.

`store/etcd.py` is the implementation; nothing above the store knows etcd's types. Every write is
conditional on what the caller read (`expected`): a write whose condition no longer holds changes
nothing and returns None, so callers re-read and decide again (a lost race is an answer, not an
error). Every write that changes a membership records an audit entry (its cause) in the same
transaction. Failures are the StoreError subclasses of `registry_service.errors`, which say what
happened: unavailable, lease not found, compacted, corrupt record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from registry_service.control import Announcement, OperatorEntry, PushSwitch
from registry_service.domain import (
    AuditCause,
    AuditEntry,
    FlapRecord,
    Identity,
    NodeKey,
    Registration,
    RemovalReason,
)


@dataclass(frozen=True, slots=True)
class StoredNode:
    """One node's keys as read together at `revision`; mod revisions are 0 for absent keys."""

    key: NodeKey
    revision: int
    registration: Registration | None = None
    member_mod_revision: int = 0
    live: bool = False
    identity: Identity | None = None
    identity_mod_revision: int = 0
    flaps: FlapRecord | None = None  # flap damping's record (docs/design.md §13)
    flaps_mod_revision: int = 0
    incarnation_floor: int = 0
    """Every collected identity's incarnation is at most this: without an identity record, the
    next incarnation is above it (store/identity_collection.py)."""
    floor_mod_revision: int = 0

    @property
    def next_incarnation(self) -> int:
        """The incarnation a new registration of this node gets: above its last one, and above
        every one whose record was collected (monotonic per id, for every watcher)."""
        if self.identity is not None:
            return self.identity.incarnation + 1
        return self.incarnation_floor + 1


@dataclass(frozen=True, slots=True)
class EvictorWrite:
    """One decision of the evictor as a guarded write: remove the member (reason EXPIRED, with
    `cause`), or, when `suspect` is set, rewrite it as that SUSPECT registration."""

    expected: StoredNode
    cause: AuditCause
    detail: str = ""
    suspect: Registration | None = None


@dataclass(frozen=True, slots=True)
class Member:
    """A membership record and the revision that last wrote it (what guarded writes compare)."""

    registration: Registration
    mod_revision: int


@dataclass(frozen=True, slots=True)
class MemberPut:
    """A member record was written (created, updated, marked or restored)."""

    key: NodeKey
    member: Member


@dataclass(frozen=True, slots=True)
class MemberDeleted:
    """A member record was deleted: the node left or was evicted."""

    key: NodeKey


@dataclass(frozen=True, slots=True)
class LiveChanged:
    """A node's live key appeared or went (its lease renewed or expired)."""

    key: NodeKey
    alive: bool


@dataclass(frozen=True, slots=True)
class IdentityPut:
    """A node's identity record was written (the incarnation, why it left)."""

    key: NodeKey
    identity: Identity


StoreChange = MemberPut | MemberDeleted | LiveChanged | IdentityPut


@dataclass(frozen=True, slots=True)
class SwitchChanged:
    """The push switch was written (or deleted: then it reads as the default, on)."""

    push: PushSwitch


@dataclass(frozen=True, slots=True)
class FrontendChanged:
    """A frontend announced itself (again), or its announcement went (None) with its lease."""

    id: str
    announcement: Announcement | None


ControlChange = SwitchChanged | FrontendChanged


@dataclass(frozen=True, slots=True)
class StoreBatch:
    """Every change of one etcd revision, in the order etcd applied them. `written_at`: the wall
    clock time the writing frontend sent the transaction (in the records it wrote), 0 unknown.
    `control`: changes of operator state in the same revision (kept apart: rare, and the member
    changes are the hot path)."""

    revision: int
    changes: tuple[StoreChange, ...]
    written_at: float = 0.0
    control: tuple[ControlChange, ...] = ()


@dataclass(frozen=True, slots=True)
class StoreHeartbeat:
    """The watch is alive; nothing else may be inferred (see EtcdClient.watch)."""

    revision: int


@dataclass(slots=True)
class ClusterState:
    """Every member and live key at one revision, and the operator state of that revision."""

    revision: int
    members: dict[NodeKey, Member] = field(default_factory=dict)
    live: set[NodeKey] = field(default_factory=set)
    push_switch: PushSwitch = field(default_factory=PushSwitch)
    frontends: dict[str, Announcement] = field(default_factory=dict)
    known_types: set[tuple[str, str]] = field(default_factory=set)
    """Every (datacenter, type) with an identity record: each type that had a node within
    identity_retention_seconds (what the node-count gauges keep reporting, at 0 if need be)."""


class Election(Protocol):
    """Leader election among frontends: one leader at a time, fenced by its key."""

    async def stand(self) -> None:
        """Enters the election (a no-op while standing). Raises StoreError."""

    async def campaign(self) -> None:
        """Stands if needed; returns once this candidate leads. Raises StoreError."""

    async def lost(self) -> None:
        """Returns when leadership (the election lease or key) is lost."""

    @property
    def deposed(self) -> bool:
        """True as soon as leadership is known lost (the key gone), even before lost() has
        returned to its waiter: check it before acting as leader."""

    async def resign(self) -> None:
        """Gives up leadership at once (deletes the key); a no-op when not a candidate."""

    @property
    def fence(self) -> bytes:
        """Opaque token that writes made as leader carry; they fail once leadership is lost."""


class RegistryStore(Protocol):
    """Storage of registrations. Every method may raise StoreUnavailableError; the others below."""

    async def read_node(self, key: NodeKey) -> StoredNode:
        """All keys of one node, read atomically. An unreadable member record reads as absent
        (logged); an unreadable identity raises CorruptRecordError (the next incarnation depends
        on it)."""

    async def grant_lease(self, ttl_seconds: int) -> int:
        """Grants a lease of `ttl_seconds` (a registration's, a session's, an announcement's);
        returns its id."""

    async def revoke_lease(self, lease_id: int) -> None:
        """Revokes a lease (deleting what is attached); an unknown lease is not an error."""

    async def renew_lease(self, lease_id: int) -> int:
        """Renews one of the frontend's own leases (its announcement), apart from the clients'
        renewals so that it never waits behind them (D71); returns its new TTL in seconds, 0
        when the lease no longer exists."""

    async def renew_leases(self, lease_ids: Sequence[int]) -> list[int | None]:
        """Renews clients' leases together; for each, its new TTL in seconds, 0 when the lease
        no longer exists, None when etcd did not answer in time (unknown: it may have been
        renewed)."""

    async def create_registration(
        self,
        registration: Registration,
        expected: StoredNode,
        flaps: FlapRecord | None = None,
        detail: str = "",
        *,
        opens_session: bool = False,
    ) -> int | None:
        """Writes live key, member record and identity in one transaction, if the member is still
        absent and the identity unchanged since `expected` (without an identity, the incarnation
        floor too). Returns the revision, or None.
        With `flaps` (a registration anew, which flap damping counts), also the flap record, if
        it is unchanged since `expected`; `detail` goes to the audit (why it starts damped).
        LeaseNotFoundError: the registration's lease is gone; nothing was written.

        A registration of a client session (`registration.session`, D73) also requires its
        session's key to name its lease, or, with `opens_session`, to be absent: the write then
        creates it on the registration's (new) lease. Every write of a session's registration
        below carries the first guard."""

    async def read_session_lease(self, session: str, ttl_seconds: int) -> int:
        """The lease a client session's registrations of this TTL share; 0 when it has none
        (never had one, or it expired)."""

    async def open_session_lease(self, session: str, ttl_seconds: int, lease_id: int) -> int:
        """Makes lease_id the session's lease of this TTL, unless it has one: returns the lease
        it has now (lease_id, another, or 0 if its key vanished meanwhile)."""

    async def write_health(
        self,
        registration: Registration | None,
        expected: StoredNode,
        flaps: FlapRecord,
        *,
        cause: AuditCause = AuditCause.UPDATED,
        detail: str = "",
    ) -> int | None:
        """A change of a node's health (docs/design.md §13): rewrites the member record as
        `registration` (its new health; None: leaves it alone) and writes the flap record, if
        both are unchanged since `expected` (and the member is still there). Only a rewritten
        member is audited (`cause`, with the check's output as `detail`). Never touches the
        live key or the lease: probes never remove a node. Returns the revision, or None."""

    async def update_registration(
        self,
        registration: Registration,
        expected: StoredNode,
        *,
        cause: AuditCause = AuditCause.UPDATED,
        operator: OperatorEntry | None = None,
        flaps: FlapRecord | None = None,
    ) -> int | None:
        """Replaces a live member record (and moves its live key to the registration's lease), if
        the member record is unchanged since `expected`. Returns the revision, or None. An
        operator's change records `operator` in the operator audit, in the same transaction;
        an owner's report of a new health writes `flaps` too (guarded as write_health's)."""

    async def mark_suspect(
        self, registration: Registration, expected: StoredNode, *, fence: bytes, detail: str
    ) -> int | None:
        """Rewrites a member whose live key is gone as `registration` (status SUSPECT), if it is
        unchanged since `expected` and the caller still leads. Returns the revision, or None."""

    async def restore_registration(
        self,
        registration: Registration,
        expected: StoredNode,
        cause: AuditCause,
        *,
        operator: OperatorEntry | None = None,
    ) -> int | None:
        """Puts a member whose live key is gone back on `registration`'s (new) lease, if it is
        unchanged since `expected`. Returns the revision, or None."""

    async def remove_member(
        self,
        expected: StoredNode,
        reason: RemovalReason,
        *,
        cause: AuditCause,
        only_if_not_live: bool = False,
        fence: bytes = b"",
        detail: str = "",
        operator: OperatorEntry | None = None,
        hold_until: float = 0.0,
    ) -> int | None:
        """Deletes member record and live key and records why in the identity, if the member is
        unchanged since `expected` (and, with only_if_not_live, its live key is gone; with a fence,
        the caller still leads). Returns the revision, or None. An operator's removal records
        `operator` in the operator audit and may hold the id out until `hold_until` (in the
        identity: a Register before then is refused)."""

    async def evict_many(self, writes: Sequence[EvictorWrite], *, fence: bytes) -> list[int | None]:
        """Carries out several of the evictor's decisions in few transactions (etcd's limit is 128
        operations each). Each write keeps its own guard (member unchanged since `expected`, live
        key absent) and applies or not on its own; all of them require the fence. For each, the
        revision, or None when its guard (or the fence) failed."""

    async def collect_identities(self, written_before: float, now: float) -> int:
        """Deletes the identity records of ids that are not members, were last written before
        `written_before` (wall clock) and are held by no operator at `now`; the incarnation
        floor rises to the highest incarnation deleted, in the same transaction, so that a later
        registration of any of those ids comes above it. Returns how many were deleted."""

    async def read_audit(self, key: NodeKey) -> list[AuditEntry]:
        """The node's recorded transitions still within the audit retention, oldest first."""

    async def current_revision(self) -> int:
        """etcd's current revision, by a linearizable read."""

    async def write_barrier(self) -> int:
        """Writes a key under the prefix so the watch sees a revision >= etcd's current one."""

    async def load(self) -> ClusterState:
        """Every member and live key, at one revision, and the (datacenter, type)s that have
        identity records. Raises StoreCompactedError when that revision is compacted while it
        is read (a retry reads a newer one)."""

    def watch(self, start_revision: int) -> AsyncIterator[StoreBatch | StoreHeartbeat]:
        """Every change from start_revision on, one batch per revision; resumes by itself after
        connection errors. Raises StoreCompactedError when start_revision is compacted."""

    def election(
        self, name: str, candidate: str, ttl_seconds: int, poll_seconds: float
    ) -> Election:
        """A candidacy in the named election; a follower re-checks every poll_seconds."""


class ControlStore(Protocol):
    """Operator state in etcd (control.py). May raise StoreUnavailableError."""

    async def read_push_switch(self) -> tuple[PushSwitch, int]:
        """The stored push switch (the default, on, when none is) and its mod revision (0)."""

    async def write_push_switch(
        self, switch: PushSwitch, expected_mod_revision: int, entry: OperatorEntry
    ) -> int | None:
        """Stores the switch and audits `entry` in one transaction, if the stored switch is
        unchanged since `expected_mod_revision`. Returns the revision, or None."""

    async def announce(self, announcement: Announcement, lease_id: int) -> None:
        """Puts the frontend's announcement on its lease."""

    async def read_operator_audit(self) -> list[OperatorEntry]:
        """Every operator action still within the audit retention, oldest first."""

    async def lift_hold(self, expected: StoredNode, entry: OperatorEntry) -> int | None:
        """Rewrites the node's identity without its eviction hold (and audits `entry`), if the
        identity is unchanged since `expected` and the node is still not a member. Returns the
        revision, or None."""
