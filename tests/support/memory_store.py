"""An in-memory store for the use cases' unit tests: the store port (`store/base.py`) without etcd.

etcd's client is tested over a fake of its server; the registry's use cases (Register, KeepAlive,
GetNodes, WatchNodes, the evictor) are tested here over a fake of etcd as the registry uses it.
Integration tests use real etcd; tests/support/store_contract.py runs the same checks against
both, so that this fake cannot drift from the etcd store without a test saying so.

What it keeps of etcd (the semantics the use cases rely on):
- One key space under the cluster's prefix (`store/keys.py`), one revision counter: every
  transaction that writes bumps it once, whatever it wrote; a transaction that writes nothing
  (a failed guard, a delete of an absent key) does not.
- Guarded transactions: compares on a key's presence or mod revision, all evaluated before any
  write (nested ones too, as etcd evaluates a transaction's whole path first); a put on a lease
  that is gone fails the transaction with LeaseNotFoundError.
- The two-key model of the etcd store, write for write: live key on the node's lease, member
  record and identity beside it, an audit entry in the same transaction as each transition; the
  flap record (flap damping's) written with the transition it counts, guarded on its own.
- Leases with a TTL on a `ManualClock`: a lease whose deadline passes is revoked with its keys in
  one revision of their own; renewing a lease that is gone answers 0. The election's lease is
  kept alive (as its keeper task does) until the candidate resigns or `depose()` is called.
- The watch: one StoreBatch per revision from its start revision on, in order; a watch that
  starts (or resumes after a held stretch) below the compacted revision raises
  StoreCompactedError.
- The evictor's fence: the leader's election key; a write that carries a fence whose key is gone
  changes nothing.
- Client sessions' shared leases (D73): the session's key on its lease, a session's registration
  written only while that key names its lease (or, opening the session, while it is absent).

Values are the domain objects themselves (frozen dataclasses), not their encoding: the records'
codecs have tests of their own (tests/unit/registry_service/store/test_formats.py).

Knobs for tests (none of them sleeps):
- `advance(seconds)` moves the clock and expires leases; `expire_lease(lease_id)` ends one lease
  as its TTL would; `MemoryElection.depose()` ends a candidate's;
- `hold_watch()`/`release_watch()`: a watch connection that is down, then resumes;
  `write_outside_prefix()`: etcd's revision moves through keys the watch does not see;
- `compact()`; `available` (False: an outage, every call raises StoreUnavailableError);
  `renewals_answered` (False: etcd does not answer renewals in time, they come back unknown);
- `before_next_write(action)`: another writer's turn between a read and its guarded write;
- what the use cases asked of the store: `calls` (per method), `renewed` (the leases of each
  renewal), `elections` (every candidacy), `leases()` (those still granted).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
from registry_service.errors import (
    LeaseNotFoundError,
    StoreCompactedError,
    StoreUnavailableError,
)
from registry_service.store.base import (
    ClusterState,
    ControlChange,
    EvictorWrite,
    FrontendChanged,
    IdentityPut,
    LiveChanged,
    Member,
    MemberDeleted,
    MemberPut,
    StoreBatch,
    StoreChange,
    StoredNode,
    StoreHeartbeat,
    SwitchChanged,
)
from registry_service.store.keys import PUSH_SWITCH, KeyKind, Keyspace

_FIRST_LEASE_ID = 0x7E57_0000_0001  # sequential, as etcd's are close to: they prove nothing


class ManualClock:
    """A clock that moves only when told (seconds; starts at a plausible wall-clock time)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# -- transactions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Compare:
    """A key is absent (`mod_revision` 0 and not `present`), present, at `mod_revision`, or on
    `lease` (an absent key is on no lease)."""

    key: bytes
    mod_revision: int = 0
    present: bool = False
    lease: int = 0


def absent(key: bytes) -> _Compare:
    return _Compare(key)


def present(key: bytes) -> _Compare:
    return _Compare(key, present=True)


def unchanged_since(key: bytes, mod_revision: int) -> _Compare:
    """As etcd_client.kv.unchanged_since: at mod_revision, or absent when that is 0."""
    return _Compare(key, mod_revision)


def on_lease(key: bytes, lease_id: int) -> _Compare:
    return _Compare(key, lease=lease_id)


@dataclass(frozen=True, slots=True)
class _Put:
    key: bytes
    value: object
    lease: int = 0


@dataclass(frozen=True, slots=True)
class _Delete:
    key: bytes


_Op = _Put | _Delete


@dataclass(slots=True)
class _Value:
    value: object
    create_revision: int
    mod_revision: int
    lease: int


@dataclass(frozen=True, slots=True)
class _Event:
    key: bytes
    value: object | None  # None: deleted
    mod_revision: int


@dataclass(slots=True)
class _Lease:
    ttl_seconds: int
    deadline: float
    keys: set[bytes] = field(default_factory=set)
    kept: bool = False  # renewed by its owner in the background (the election's keeper)


@dataclass(frozen=True, slots=True)
class _Guarded:
    """One guarded part of a transaction, with the audit entry it records when it applies."""

    compare: list[_Compare]
    ops: list[_Op]
    audit: tuple[NodeKey, AuditCause, int, str] | None = None
    operator: OperatorEntry | None = None


def _incarnation(stored: StoredNode) -> int:
    return stored.registration.node.incarnation if stored.registration else 0


class MemoryStore:
    """RegistryStore and ControlStore in memory (see the module docstring for what it keeps)."""

    def __init__(
        self,
        prefix: str = "/noderegistry/unit/",
        *,
        clock: ManualClock | None = None,
        frontend_id: str = "unit-frontend",
    ) -> None:
        self.keys = Keyspace(prefix)
        self.clock = clock or ManualClock()
        self._frontend_id = frontend_id
        self._kv: dict[bytes, _Value] = {}
        self._leases: dict[int, _Lease] = {}
        self._lease_ids = itertools.count(_FIRST_LEASE_ID)
        self._revision = 1  # etcd's revision of an empty store
        self._compacted = 0
        self._history: list[tuple[int, tuple[_Event, ...]]] = []
        self._changed = asyncio.Event()
        self._audit: list[AuditEntry] = []
        self._operator_audit: list[OperatorEntry] = []
        self._watch_held = False
        self._available = True
        self._next_write: list[Callable[[], Awaitable[None]]] = []
        self.renewals_answered = True
        self.calls: collections.Counter[str] = collections.Counter()
        self.renewed: list[list[int]] = []  # the lease ids of each renew_leases call
        self.elections: list[MemoryElection] = []  # every candidacy, in the order made

    # -- knobs for tests ---------------------------------------------------------------------

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def available(self) -> bool:
        """False: etcd cannot be reached; every call raises StoreUnavailableError and watches
        deliver nothing until it is back (they resume by themselves, as the etcd store's do)."""
        return self._available

    @available.setter
    def available(self, available: bool) -> None:
        self._available = available
        self._notify()

    @property
    def connected(self) -> bool:
        """What the hub's `store_connected` reads: False during an outage."""
        return self._available

    def advance(self, seconds: float) -> None:
        """Moves the clock on; every lease whose TTL ran out goes with its keys."""
        self.clock.advance(seconds)
        self._expire_due()

    def expire_lease(self, lease_id: int) -> None:
        """Ends the lease as its TTL running out would (its keys go in one revision)."""
        self._revoke(lease_id)

    def lease_alive(self, lease_id: int) -> bool:
        self._expire_due()
        return lease_id in self._leases

    def leases(self) -> set[int]:
        """Every lease still granted (a lease nobody revokes lingers until its TTL)."""
        self._expire_due()
        return set(self._leases)

    def hold_watch(self) -> None:
        """Watches deliver nothing (their connection is down) until `release_watch`."""
        self._watch_held = True

    def release_watch(self) -> None:
        """Watches resume where they were (or raise StoreCompactedError if that is compacted)."""
        self._watch_held = False
        self._notify()

    def compact(self, revision: int | None = None) -> None:
        """Forgets the history before `revision` (default: the current one), as etcd's compaction:
        a watch from before it can no longer resume."""
        revision = self._revision if revision is None else revision
        self._compacted = max(self._compacted, revision)
        self._history = [entry for entry in self._history if entry[0] >= self._compacted]
        self._notify()

    def write_outside_prefix(self) -> None:
        """A write under another prefix (another cluster's keys): etcd's revision moves, and no
        watch of this cluster's prefix sees it."""
        self._apply([_Put(b"/elsewhere/" + str(self._revision).encode(), b"")])

    def before_next_write(self, action: Callable[[], Awaitable[None]]) -> None:
        """Runs `action` (another writer's turn) just before the next guarded write is applied,
        after its caller has read what it guards on."""
        self._next_write.append(action)

    def value(self, raw_key: bytes) -> object | None:
        """The value stored under a key, or None."""
        stored = self._kv.get(raw_key)
        return stored.value if stored else None

    # -- the engine --------------------------------------------------------------------------

    async def _enter(self, call: str) -> None:
        """Every call of the port: counted, refused in an outage, and one turn of the event loop
        (a round trip to etcd lets other tasks run)."""
        self.calls[call] += 1
        if not self._available:
            raise StoreUnavailableError(f"etcd cannot be reached ({call}; in-memory outage)")
        await asyncio.sleep(0)
        self._expire_due()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _holds(self, compare: _Compare) -> bool:
        stored = self._kv.get(compare.key)
        if compare.lease:
            return stored is not None and stored.lease == compare.lease
        if compare.present:
            return stored is not None
        if compare.mod_revision == 0:
            return stored is None
        return stored is not None and stored.mod_revision == compare.mod_revision

    async def _transact(self, parts: Sequence[_Guarded], fence: bytes = b"") -> list[int | None]:
        """One etcd transaction: for each part, the revision it applied at or None when its guard
        failed; all None when the fence's key is gone. Guards see the state before the
        transaction; a part's put on a missing lease fails the whole transaction."""
        while self._next_write:
            await self._next_write.pop(0)()
        if fence and not self._holds(present(fence)):
            return [None] * len(parts)
        applying = [all(self._holds(compare) for compare in part.compare) for part in parts]
        for part, applies in zip(parts, applying, strict=True):
            for op in part.ops if applies else ():
                if isinstance(op, _Put) and op.lease and op.lease not in self._leases:
                    raise LeaseNotFoundError(f"etcd: requested lease not found ({op.lease:x})")
        ops = [
            op for part, applies in zip(parts, applying, strict=True) if applies for op in part.ops
        ]
        revision = self._apply(ops)
        for part, applies in zip(parts, applying, strict=True):
            if applies:
                self._record_audit(part, revision)
        return [revision if applies else None for applies in applying]

    async def _guarded(self, part: _Guarded, fence: bytes = b"") -> int | None:
        (revision,) = await self._transact([part], fence)
        return revision

    def _apply(self, ops: Sequence[_Op]) -> int:
        """Applies ops in one revision (only if any of them changes something); returns the
        revision the store is then at."""
        revision = self._revision + 1
        events: list[_Event] = []
        for op in ops:
            stored = self._kv.get(op.key)
            if stored is not None and stored.lease in self._leases:
                self._leases[stored.lease].keys.discard(op.key)
            if isinstance(op, _Delete):
                if stored is not None:
                    del self._kv[op.key]
                    events.append(_Event(op.key, None, revision))
                continue
            created = stored.create_revision if stored is not None else revision
            self._kv[op.key] = _Value(op.value, created, revision, op.lease)
            if op.lease:
                self._leases[op.lease].keys.add(op.key)
            events.append(_Event(op.key, op.value, revision))
        if events:
            self._revision = revision
            self._history.append((revision, tuple(events)))
            self._notify()
        return self._revision

    def _record_audit(self, part: _Guarded, revision: int) -> None:
        now = self.clock()
        operator = part.operator
        if part.audit is not None:
            key, cause, incarnation, detail = part.audit
            self._audit.append(
                AuditEntry(
                    key,
                    cause,
                    incarnation,
                    now,
                    self._frontend_id,
                    revision,
                    detail,
                    operator.operator if operator else "",
                )
            )
        if operator is not None:
            self._operator_audit.append(dataclasses.replace(operator, revision=revision))

    def _expire_due(self) -> None:
        now = self.clock()
        due = sorted(
            (lease.deadline, lease_id)
            for lease_id, lease in self._leases.items()
            if lease.deadline <= now
        )
        for _, lease_id in due:
            lease = self._leases[lease_id]
            if lease.kept:
                lease.deadline = now + lease.ttl_seconds
            else:
                self._revoke(lease_id)

    def _revoke(self, lease_id: int) -> None:
        lease = self._leases.pop(lease_id, None)
        if lease is not None:
            self._apply([_Delete(key) for key in sorted(lease.keys)])

    # -- RegistryStore: reads ----------------------------------------------------------------

    async def read_node(self, key: NodeKey) -> StoredNode:
        await self._enter("read_node")
        member = self._kv.get(self.keys.member(key))
        identity = self._kv.get(self.keys.identity(key))
        flaps = self._kv.get(self.keys.flaps(key))
        registration = member.value if member else None
        recorded = identity.value if identity else None
        flap_record = flaps.value if flaps else None
        assert registration is None or isinstance(registration, Registration)
        assert recorded is None or isinstance(recorded, Identity)
        assert flap_record is None or isinstance(flap_record, FlapRecord)
        return StoredNode(
            key=key,
            revision=self._revision,
            registration=registration,
            member_mod_revision=member.mod_revision if member else 0,
            live=self.keys.live(key) in self._kv,
            identity=recorded,
            identity_mod_revision=identity.mod_revision if identity else 0,
            flaps=flap_record,
            flaps_mod_revision=flaps.mod_revision if flaps else 0,
        )

    async def read_audit(self, key: NodeKey) -> list[AuditEntry]:
        await self._enter("read_audit")
        return sorted((e for e in self._audit if e.key == key), key=lambda e: e.revision)

    async def current_revision(self) -> int:
        await self._enter("current_revision")
        return self._revision

    async def write_barrier(self) -> int:
        await self._enter("write_barrier")
        return self._apply([_Put(self.keys.barrier(self._frontend_id), b"")])

    async def load(self) -> ClusterState:
        await self._enter("load")
        state = ClusterState(revision=self._revision)
        for raw_key, stored in self._kv.items():
            parsed = self.keys.parse(raw_key)
            if parsed is None:
                continue
            kind, key = parsed
            if kind is KeyKind.MEMBER and key is not None:
                assert isinstance(stored.value, Registration)
                state.members[key] = Member(stored.value, stored.mod_revision)
            elif kind is KeyKind.LIVE and key is not None:
                state.live.add(key)
            elif kind is KeyKind.SWITCH and isinstance(stored.value, PushSwitch):
                state.push_switch = stored.value
            elif kind is KeyKind.FRONTEND and isinstance(stored.value, Announcement):
                state.frontends[self.keys.name(raw_key)] = stored.value
        return state

    async def watch(self, start_revision: int) -> AsyncIterator[StoreBatch | StoreHeartbeat]:
        self.calls["watch"] += 1
        next_revision = start_revision
        while True:
            changed = self._changed  # taken before looking: no change is missed
            if self._available and not self._watch_held:
                if next_revision < self._compacted:
                    raise StoreCompactedError(
                        f"revision {next_revision} is compacted (at {self._compacted})"
                    )
                pending = [
                    entry
                    for entry in self._history
                    if entry[0] >= next_revision
                    and any(event.key.startswith(self.keys.root) for event in entry[1])
                ]
                for revision, events in pending:
                    yield self._batch(revision, events)
                    next_revision = revision + 1
                if pending:
                    continue
            await changed.wait()

    def _batch(self, revision: int, events: tuple[_Event, ...]) -> StoreBatch:
        changes: list[StoreChange] = []
        control: list[ControlChange] = []
        for event in events:
            parsed = self.keys.parse(event.key)
            if parsed is None:
                continue
            kind, key = parsed
            value = event.value
            if kind is KeyKind.MEMBER and key is not None:
                if value is None:
                    changes.append(MemberDeleted(key))
                else:
                    assert isinstance(value, Registration)
                    changes.append(MemberPut(key, Member(value, event.mod_revision)))
            elif kind is KeyKind.LIVE and key is not None:
                changes.append(LiveChanged(key, alive=value is not None))
            elif kind is KeyKind.IDENTITY and key is not None and isinstance(value, Identity):
                changes.append(IdentityPut(key, value))
            elif kind is KeyKind.SWITCH and self.keys.name(event.key) == PUSH_SWITCH:
                switch = value if isinstance(value, PushSwitch) else PushSwitch()
                control.append(SwitchChanged(switch))
            elif kind is KeyKind.FRONTEND:
                announcement = value if isinstance(value, Announcement) else None
                control.append(FrontendChanged(self.keys.name(event.key), announcement))
        return StoreBatch(revision, tuple(changes), 0.0, tuple(control))

    # -- RegistryStore: leases ---------------------------------------------------------------

    async def grant_lease(self, ttl_seconds: int) -> int:
        await self._enter("grant_lease")
        return self._grant(ttl_seconds)

    def _grant(self, ttl_seconds: int, *, kept: bool = False) -> int:
        lease_id = next(self._lease_ids)
        self._leases[lease_id] = _Lease(ttl_seconds, self.clock() + ttl_seconds, kept=kept)
        return lease_id

    async def revoke_lease(self, lease_id: int) -> None:
        await self._enter("revoke_lease")
        self._revoke(lease_id)

    async def renew_lease(self, lease_id: int) -> int:
        (ttl,) = await self.renew_leases([lease_id])
        if ttl is None:
            raise StoreUnavailableError("etcd did not answer the lease renewal in time")
        return ttl

    async def renew_leases(self, lease_ids: Sequence[int]) -> list[int | None]:
        await self._enter("renew_leases")
        self.renewed.append(list(lease_ids))
        if not self.renewals_answered:
            return [None] * len(lease_ids)
        answers: list[int | None] = []
        for lease_id in lease_ids:
            lease = self._leases.get(lease_id)
            if lease is None:
                answers.append(0)
            else:
                lease.deadline = self.clock() + lease.ttl_seconds
                answers.append(lease.ttl_seconds)
        return answers

    # -- RegistryStore: guarded writes -------------------------------------------------------

    def _registration_puts(self, registration: Registration) -> list[_Op]:
        key = registration.node.key
        return [
            _Put(self.keys.live(key), b"", registration.lease_id),
            _Put(self.keys.member(key), registration),
        ]

    def _with_flaps(
        self, part: _Guarded, flaps: FlapRecord | None, expected: StoredNode
    ) -> _Guarded:
        """The part with the node's flap record written too, guarded as unchanged since
        `expected` (the etcd store puts it on the audit lease; here it has none)."""
        if flaps is None:
            return part
        key = self.keys.flaps(expected.key)
        return dataclasses.replace(
            part,
            compare=[*part.compare, unchanged_since(key, expected.flaps_mod_revision)],
            ops=[*part.ops, _Put(key, flaps)],
        )

    async def create_registration(
        self,
        registration: Registration,
        expected: StoredNode,
        flaps: FlapRecord | None = None,
        detail: str = "",
        *,
        opens_session: bool = False,
    ) -> int | None:
        await self._enter("create_registration")
        key = registration.node.key
        incarnation = registration.node.incarnation
        session_compare, session_ops = self._session_guard(registration, opens_session)
        part = _Guarded(
            [
                absent(self.keys.member(key)),
                unchanged_since(self.keys.identity(key), expected.identity_mod_revision),
                *session_compare,
            ],
            [
                *self._registration_puts(registration),
                _Put(self.keys.identity(key), Identity(incarnation=incarnation)),
                *session_ops,
            ],
            (key, AuditCause.REGISTERED, incarnation, detail),
        )
        return await self._guarded(self._with_flaps(part, flaps, expected))

    async def write_health(
        self,
        registration: Registration | None,
        expected: StoredNode,
        flaps: FlapRecord,
        *,
        cause: AuditCause = AuditCause.UPDATED,
        detail: str = "",
    ) -> int | None:
        await self._enter("write_health")
        key = expected.key
        member_unchanged = unchanged_since(self.keys.member(key), expected.member_mod_revision)
        if registration is None:  # the flap record alone, not audited
            part = _Guarded([member_unchanged], [])
        else:
            part = _Guarded(
                [member_unchanged, present(self.keys.member(key))],
                [_Put(self.keys.member(key), registration)],
                (key, cause, registration.node.incarnation, detail),
            )
        return await self._guarded(self._with_flaps(part, flaps, expected))

    def _session_guard(
        self, registration: Registration, opens_session: bool = False
    ) -> tuple[list[_Compare], list[_Op]]:
        if not registration.session:
            return [], []
        key = self.keys.session(registration.session, registration.ttl_seconds)
        lease = registration.lease_id
        if opens_session:
            return [absent(key)], [_Put(key, lease, lease)]
        return [on_lease(key, lease)], []

    async def read_session_lease(self, session: str, ttl_seconds: int) -> int:
        await self._enter("read_session_lease")
        stored = self._kv.get(self.keys.session(session, ttl_seconds))
        return stored.lease if stored else 0

    async def open_session_lease(self, session: str, ttl_seconds: int, lease_id: int) -> int:
        await self._enter("open_session_lease")
        key = self.keys.session(session, ttl_seconds)
        if await self._guarded(_Guarded([absent(key)], [_Put(key, lease_id, lease_id)])):
            return lease_id
        stored = self._kv.get(key)
        return stored.lease if stored else 0

    async def update_registration(
        self,
        registration: Registration,
        expected: StoredNode,
        *,
        cause: AuditCause = AuditCause.UPDATED,
        operator: OperatorEntry | None = None,
        flaps: FlapRecord | None = None,
    ) -> int | None:
        await self._enter("update_registration")
        key = registration.node.key
        part = _Guarded(
            [
                unchanged_since(self.keys.member(key), expected.member_mod_revision),
                present(self.keys.live(key)),
                *self._session_guard(registration)[0],
            ],
            self._registration_puts(registration),
            (key, cause, registration.node.incarnation, operator.detail if operator else ""),
            operator,
        )
        return await self._guarded(self._with_flaps(part, flaps, expected))

    def _suspicion(self, registration: Registration, expected: StoredNode, detail: str) -> _Guarded:
        key = registration.node.key
        return _Guarded(
            [
                unchanged_since(self.keys.member(key), expected.member_mod_revision),
                absent(self.keys.live(key)),
            ],
            [_Put(self.keys.member(key), registration)],
            (key, AuditCause.SUSPECTED, registration.node.incarnation, detail),
        )

    async def mark_suspect(
        self, registration: Registration, expected: StoredNode, *, fence: bytes, detail: str
    ) -> int | None:
        await self._enter("mark_suspect")
        return await self._guarded(self._suspicion(registration, expected, detail), fence or b"-")

    async def restore_registration(
        self,
        registration: Registration,
        expected: StoredNode,
        cause: AuditCause,
        *,
        operator: OperatorEntry | None = None,
    ) -> int | None:
        await self._enter("restore_registration")
        key = registration.node.key
        return await self._guarded(
            _Guarded(
                [
                    unchanged_since(self.keys.member(key), expected.member_mod_revision),
                    absent(self.keys.live(key)),
                    *self._session_guard(registration)[0],
                ],
                self._registration_puts(registration),
                (key, cause, registration.node.incarnation, operator.detail if operator else ""),
                operator,
            )
        )

    def _removal(
        self,
        expected: StoredNode,
        reason: RemovalReason,
        cause: AuditCause,
        *,
        only_if_not_live: bool,
        detail: str = "",
        operator: OperatorEntry | None = None,
        hold_until: float = 0.0,
    ) -> _Guarded:
        key = expected.key
        compare = [unchanged_since(self.keys.member(key), expected.member_mod_revision)]
        if only_if_not_live:
            compare.append(absent(self.keys.live(key)))
        identity = Identity(
            incarnation=_incarnation(expected),
            removal_reason=reason,
            hold_until=hold_until,
            held_by=operator.operator if operator and hold_until else "",
        )
        return _Guarded(
            compare,
            [
                _Delete(self.keys.member(key)),
                _Delete(self.keys.live(key)),
                _Put(self.keys.identity(key), identity),
            ],
            (key, cause, _incarnation(expected), detail),
            operator,
        )

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
        await self._enter("remove_member")
        removal = self._removal(
            expected,
            reason,
            cause,
            only_if_not_live=only_if_not_live,
            detail=detail,
            operator=operator,
            hold_until=hold_until,
        )
        return await self._guarded(removal, fence)

    async def evict_many(self, writes: Sequence[EvictorWrite], *, fence: bytes) -> list[int | None]:
        await self._enter("evict_many")
        parts = [
            self._suspicion(write.suspect, write.expected, write.detail)
            if write.suspect is not None
            else self._removal(
                write.expected,
                RemovalReason.EXPIRED,
                write.cause,
                only_if_not_live=True,
                detail=write.detail,
            )
            for write in writes
        ]
        return await self._transact(parts, fence or b"-")

    def election(
        self, name: str, candidate: str, ttl_seconds: int, poll_seconds: float
    ) -> MemoryElection:
        self.elections.append(MemoryElection(self, name, candidate, ttl_seconds, poll_seconds))
        return self.elections[-1]

    # -- ControlStore ------------------------------------------------------------------------

    async def read_push_switch(self) -> tuple[PushSwitch, int]:
        await self._enter("read_push_switch")
        stored = self._kv.get(self.keys.switch(PUSH_SWITCH))
        if stored is None or not isinstance(stored.value, PushSwitch):
            return PushSwitch(), stored.mod_revision if stored else 0
        return stored.value, stored.mod_revision

    async def write_push_switch(
        self, switch: PushSwitch, expected_mod_revision: int, entry: OperatorEntry
    ) -> int | None:
        await self._enter("write_push_switch")
        key = self.keys.switch(PUSH_SWITCH)
        return await self._guarded(
            _Guarded(
                [unchanged_since(key, expected_mod_revision)], [_Put(key, switch)], None, entry
            )
        )

    async def announce(self, announcement: Announcement, lease_id: int) -> None:
        await self._enter("announce")
        await self._guarded(
            _Guarded([], [_Put(self.keys.frontend(announcement.id), announcement, lease_id)])
        )

    async def read_operator_audit(self) -> list[OperatorEntry]:
        await self._enter("read_operator_audit")
        return sorted(self._operator_audit, key=lambda entry: entry.revision)

    async def lift_hold(self, expected: StoredNode, entry: OperatorEntry) -> int | None:
        await self._enter("lift_hold")
        identity = expected.identity
        assert identity is not None
        key = self.keys.identity(expected.key)
        lifted = dataclasses.replace(identity, hold_until=0.0, held_by="")
        return await self._guarded(
            _Guarded(
                [
                    unchanged_since(key, expected.identity_mod_revision),
                    absent(self.keys.member(expected.key)),
                ],
                [_Put(key, lifted)],
                None,
                entry,
            )
        )

    # -- the election ------------------------------------------------------------------------

    def _leader_key(self, prefix: bytes) -> bytes | None:
        candidates = [
            (stored.create_revision, key)
            for key, stored in self._kv.items()
            if key.startswith(prefix)
        ]
        return min(candidates)[1] if candidates else None

    async def _next_change(self, timeout: float | None = None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)


class MemoryElection:
    """store.base.Election over the in-memory store, as EtcdElection does it on etcd: each
    candidate puts a key on a lease of its own (kept alive until it resigns), the lowest create
    revision leads, and the leader's key is its fence."""

    def __init__(
        self, store: MemoryStore, name: str, candidate: str, ttl_seconds: int, poll_seconds: float
    ) -> None:
        self._store = store
        self._prefix = store.keys.election(name)
        self._candidate = candidate
        self._ttl = ttl_seconds
        self._poll = poll_seconds
        self._lease = 0
        self._key = b""

    @property
    def fence(self) -> bytes:
        return self._key

    @property
    def standing(self) -> bool:
        return bool(self._lease) and self._store.lease_alive(self._lease)

    @property
    def deposed(self) -> bool:
        """The key is gone (its lease expired or someone deleted it): it leads no more."""
        return bool(self._key) and self._key not in self._store._kv

    async def stand(self) -> None:
        if self.standing and not self.deposed:
            return
        await self._store._enter("election.stand")
        self._lease = self._store._grant(self._ttl, kept=True)
        self._key = self._prefix + f"{self._lease:016x}".encode()
        self._store._apply([_Put(self._key, self._candidate.encode(), self._lease)])

    async def campaign(self) -> None:
        while True:
            await self.stand()
            if self._store._leader_key(self._prefix) == self._key:
                return
            await self._store._next_change(self._poll)

    async def lost(self) -> None:
        if not self._lease:
            raise StoreUnavailableError("not a candidate")
        while self.standing:
            await self._store._next_change()

    async def resign(self) -> None:
        if self._lease:
            lease, self._lease = self._lease, 0
            await self._store.revoke_lease(lease)

    def depose(self) -> None:
        """This candidate's lease is lost (as when its keeper cannot reach etcd for a TTL)."""
        if self._lease:
            self._store.expire_lease(self._lease)


if TYPE_CHECKING:
    from registry_service.store.base import ControlStore, Election, RegistryStore

    def _implements(store: MemoryStore, election: MemoryElection) -> None:
        registry: RegistryStore = store
        control: ControlStore = store
        elected: Election = election
        del registry, control, elected
