"""The registry store on etcd: the two-key model of docs/design.md §2 as etcd transactions.

Every write is one transaction guarded by compares on what the caller read, so concurrent
frontends never overwrite each other's decisions: a guarded write that finds the world changed
does nothing and returns None, and the caller reads again.

Every membership transition passes through `_guarded` with its audit cause: it is logged there
(once, at INFO, with structured fields: D35), and its audit record joins the same transaction
through the audit log (store/audit.py), which the control store and the evictor's batches share.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence

from registry_service.control import OperatorEntry
from registry_service.domain import (
    AuditCause,
    AuditEntry,
    FlapRecord,
    Identity,
    NodeKey,
    Registration,
    RemovalReason,
)
from registry_service.errors import CorruptRecordError
from registry_service.store._etcdpb import rpc_pb2 as pb
from registry_service.store.audit import AuditLog
from registry_service.store.base import (
    ClusterState,
    ControlChange,
    EvictorWrite,
    FrontendChanged,
    IdentityPut,
    MemberPut,
    StoreBatch,
    StoredNode,
    StoreHeartbeat,
    SwitchChanged,
)
from registry_service.store.etcd_client import EtcdClient, WatchBatch
from registry_service.store.etcd_client.election import EtcdElection
from registry_service.store.etcd_client.kv import (
    absent,
    delete_op,
    get_op,
    present,
    put_op,
    unchanged_since,
)
from registry_service.store.eviction_batches import write_evictions
from registry_service.store.flap_records import (
    flaps_put,
    flaps_read,
    flaps_unchanged,
    write_flaps_alone,
)
from registry_service.store.identity_collection import (
    collect_identities,
    decode_floor,
    floor_get,
    known_types,
)
from registry_service.store.keys import KeyKind, Keyspace
from registry_service.store.records import (
    RecordError,
    decode_audit,
    decode_identity,
    decode_registration,
    encode_identity,
    encode_registration,
    written_at,
)
from registry_service.store.session_keys import (
    open_session_lease,
    read_session_lease,
    session_guard,
)
from registry_service.store.transitions import incarnation_of, log_transition
from registry_service.store.watch_changes import to_change, to_control

log = logging.getLogger(__name__)


class EtcdRegistryStore:
    """RegistryStore on etcd (see store/base.py for the contract of each method)."""

    def __init__(
        self,
        client: EtcdClient,
        prefix: str,
        frontend_id: str,
        *,
        audit_retention_seconds: int = 86_400,
    ) -> None:
        self._client = client
        self.keys = Keyspace(prefix)
        self._frontend_id = frontend_id
        self.audit = AuditLog(client, self.keys, frontend_id, audit_retention_seconds)
        """Writes the audit records (store/audit.py); the control store shares it."""
        self._elections: list[EtcdElection] = []  # told when their keys go (the one watch)

    async def read_node(self, key: NodeKey) -> StoredNode:
        """Reads the member, live, identity and floor keys in one read-only transaction."""
        response = await self._client.kv.txn(
            pb.TxnRequest(
                success=[
                    get_op(self.keys.member(key)),
                    get_op(self.keys.live(key)),
                    get_op(self.keys.identity(key)),
                    get_op(self.keys.flaps(key)),
                    floor_get(self.keys),
                ]
            ),
            read_only=True,
        )
        member, live, identity, flaps, floor = (r.response_range.kvs for r in response.responses)
        registration = None
        if member:
            try:
                registration = decode_registration(member[0].value)
            except RecordError:
                log.warning("ignoring unreadable member record %s", key)
        flap_record, flaps_mod_revision = flaps_read(key, list(flaps))
        return StoredNode(
            key=key,
            revision=int(response.header.revision),
            registration=registration,
            member_mod_revision=int(member[0].mod_revision) if member else 0,
            live=bool(live),
            identity=self._identity(key, identity[0].value) if identity else None,
            identity_mod_revision=int(identity[0].mod_revision) if identity else 0,
            flaps=flap_record,
            flaps_mod_revision=flaps_mod_revision,
            incarnation_floor=decode_floor(floor[0].value) if floor else 0,
            floor_mod_revision=int(floor[0].mod_revision) if floor else 0,
        )

    def _identity(self, key: NodeKey, value: bytes) -> Identity:
        """An unreadable identity cannot be guessed around: the next incarnation and why the
        node last left depend on it. The call fails (DATA_LOSS) naming the key to repair."""
        try:
            return decode_identity(value)
        except RecordError as err:
            raise CorruptRecordError(
                f"the identity record of {key} in etcd is unreadable ({err}); an operator must "
                f"repair or delete {self.keys.identity(key).decode(errors='replace')}"
            ) from err

    async def grant_lease(self, ttl_seconds: int) -> int:
        """A new etcd lease of `ttl_seconds`; returns its id."""
        return await self._client.lease.grant(ttl_seconds)

    async def revoke_lease(self, lease_id: int) -> None:
        """Revokes the lease in etcd; what rides on it goes with it."""
        await self._client.lease.revoke(lease_id)

    async def renew_lease(self, lease_id: int) -> int:
        """Renews an own lease on the frontend's own renewal stream (D71)."""
        return await self._client.own_renewer.renew(lease_id)

    async def renew_leases(self, lease_ids: Sequence[int]) -> list[int | None]:
        """Renews clients' leases together, on the process's one shared keepalive stream."""
        return await self._client.renewer.renew_many(lease_ids)

    async def _guarded(
        self,
        compare: list[pb.Compare],
        success: list[pb.RequestOp],
        audit: tuple[NodeKey, AuditCause, int, str],
        operator: OperatorEntry | None = None,
        flaps: tuple[FlapRecord, StoredNode] | None = None,
    ) -> int | None:
        """One guarded transaction that also records its audit entry (key, cause, incarnation,
        detail) and an operator's action (store/audit.py); with `flaps`, the node's flap record
        too, guarded as unchanged since the stored node it was decided from."""

        by = operator.operator if operator else ""
        if flaps is not None:
            compare = [*compare, flaps_unchanged(self.keys, flaps[1])]

        def transaction(lease: int) -> pb.TxnRequest:
            ops = list(success)
            if flaps is not None:
                ops.append(flaps_put(self.keys, audit[0], flaps[0], lease))
            if lease:
                ops.append(self.audit.node_entry(*audit, lease, by))
                if operator is not None:
                    ops.append(self.audit.operator_entry(operator, lease))
            return pb.TxnRequest(compare=compare, success=ops)

        response = await self.audit.commit(transaction)
        if not response.succeeded:
            return None
        revision = int(response.header.revision)
        log_transition(*audit, revision)
        return revision

    async def write_health(
        self,
        registration: Registration | None,
        expected: StoredNode,
        flaps: FlapRecord,
        *,
        cause: AuditCause = AuditCause.UPDATED,
        detail: str = "",
    ) -> int | None:
        """A probe's verdict: the member rewritten with its new health (or, with no
        `registration`, the flap record alone), guarded by both being unchanged since `expected`."""
        if registration is None:
            return await write_flaps_alone(self.audit, self.keys, expected, flaps)
        key = expected.key
        return await self._guarded(
            [
                unchanged_since(self.keys.member(key), expected.member_mod_revision),
                present(self.keys.member(key)),
            ],
            [put_op(self.keys.member(key), encode_registration(registration, time.time()))],
            (key, cause, registration.node.incarnation, detail),
            flaps=(flaps, expected),
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
        """The first write of a registration: live, member and identity keys together."""
        key = registration.node.key
        identity = Identity(incarnation=registration.node.incarnation)
        now = time.time()
        session_compare, session_ops = session_guard(self.keys, registration, opens_session)
        compare = [
            absent(self.keys.member(key)),
            unchanged_since(self.keys.identity(key), expected.identity_mod_revision),
            *session_compare,
        ]
        if expected.identity is None:  # its incarnation comes from the floor
            compare.append(
                unchanged_since(self.keys.incarnation_floor, expected.floor_mod_revision)
            )
        return await self._guarded(
            compare,
            [
                put_op(self.keys.live(key), b"", registration.lease_id),
                put_op(self.keys.member(key), encode_registration(registration, now)),
                put_op(self.keys.identity(key), encode_identity(identity, now)),
                *session_ops,
            ],
            (key, AuditCause.REGISTERED, registration.node.incarnation, detail),
            flaps=(flaps, expected) if flaps is not None else None,
        )

    async def read_session_lease(self, session: str, ttl_seconds: int) -> int:
        """The lease named by the session's key; 0 when the key is gone."""
        return await read_session_lease(self._client, self.keys, session, ttl_seconds)

    async def open_session_lease(self, session: str, ttl_seconds: int, lease_id: int) -> int:
        """Creates the session's key on `lease_id` unless another frontend did first."""
        return await open_session_lease(self._client, self.keys, session, ttl_seconds, lease_id)

    async def collect_identities(self, written_before: float, now: float) -> int:
        """Collects old identity records and raises the floor (store/identity_collection.py)."""
        return await collect_identities(self._client, self.keys, written_before, now)

    async def update_registration(
        self,
        registration: Registration,
        expected: StoredNode,
        *,
        cause: AuditCause = AuditCause.UPDATED,
        operator: OperatorEntry | None = None,
        flaps: FlapRecord | None = None,
    ) -> int | None:
        """Rewrites a live member (an update), guarded by its live key being there."""
        return await self._rewrite(registration, expected, cause, operator, live=True, flaps=flaps)

    async def _rewrite(
        self,
        registration: Registration,
        expected: StoredNode,
        cause: AuditCause,
        operator: OperatorEntry | None,
        *,
        live: bool,
        flaps: FlapRecord | None = None,
    ) -> int | None:
        """Rewrites the member and puts its live key on the registration's lease, if unchanged
        since `expected` and its live key is there (`live`: an update) or gone (a restore)."""
        key = registration.node.key
        session_compare, _ = session_guard(self.keys, registration)
        return await self._guarded(
            [
                unchanged_since(self.keys.member(key), expected.member_mod_revision),
                present(self.keys.live(key)) if live else absent(self.keys.live(key)),
                *session_compare,
            ],
            [
                put_op(self.keys.live(key), b"", registration.lease_id),
                put_op(self.keys.member(key), encode_registration(registration, time.time())),
            ],
            (key, cause, registration.node.incarnation, operator.detail if operator else ""),
            operator,
            flaps=(flaps, expected) if flaps is not None else None,
        )

    async def mark_suspect(
        self, registration: Registration, expected: StoredNode, *, fence: bytes, detail: str
    ) -> int | None:
        """Writes the evictor's SUSPECT decision, fenced by its election key."""
        compare, ops = self.suspicion_ops(registration, expected)
        return await self._guarded(
            [*compare, present(fence)],
            ops,
            (registration.node.key, AuditCause.SUSPECTED, registration.node.incarnation, detail),
        )

    def suspicion_ops(
        self, registration: Registration, expected: StoredNode
    ) -> tuple[list[pb.Compare], list[pb.RequestOp]]:
        """The guard and write of a SUSPECT rewrite, shared with the batched evictions."""
        key = registration.node.key
        return [
            unchanged_since(self.keys.member(key), expected.member_mod_revision),
            absent(self.keys.live(key)),
        ], [put_op(self.keys.member(key), encode_registration(registration, time.time()))]

    async def restore_registration(
        self,
        registration: Registration,
        expected: StoredNode,
        cause: AuditCause,
        *,
        operator: OperatorEntry | None = None,
    ) -> int | None:
        """Puts a member back on a new lease, guarded by its live key being gone."""
        return await self._rewrite(registration, expected, cause, operator, live=False)

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
        """Removes a member and records why in its identity, in one guarded write."""
        held_by = operator.operator if operator and hold_until else ""
        compare, ops = self.removal_ops(
            expected,
            reason,
            only_if_not_live=only_if_not_live,
            hold_until=hold_until,
            held_by=held_by,
        )
        if fence:
            compare.append(present(fence))
        return await self._guarded(
            compare, ops, (expected.key, cause, incarnation_of(expected), detail), operator
        )

    def removal_ops(
        self,
        expected: StoredNode,
        reason: RemovalReason,
        *,
        only_if_not_live: bool,
        hold_until: float = 0.0,
        held_by: str = "",
    ) -> tuple[list[pb.Compare], list[pb.RequestOp]]:
        """The guard and writes of a removal, shared with the batched evictions."""
        key = expected.key
        compare = [unchanged_since(self.keys.member(key), expected.member_mod_revision)]
        if only_if_not_live:
            compare.append(absent(self.keys.live(key)))
        identity = Identity(
            incarnation=incarnation_of(expected),
            removal_reason=reason,
            hold_until=hold_until,
            held_by=held_by,
        )
        return compare, [
            delete_op(self.keys.member(key)),
            delete_op(self.keys.live(key)),
            put_op(self.keys.identity(key), encode_identity(identity, time.time())),
        ]

    async def evict_many(self, writes: Sequence[EvictorWrite], *, fence: bytes) -> list[int | None]:
        """The evictor's decisions in batched transactions (store/eviction_batches.py)."""
        return await write_evictions(self, writes, fence)

    async def read_audit(self, key: NodeKey) -> list[AuditEntry]:
        """The node's audit records, oldest first; unreadable ones are logged and skipped."""
        _, kvs = await self._client.kv.range_prefix(self.keys.audit_of(key))
        entries = []
        for kv in kvs:
            try:
                entries.append(decode_audit(key, kv.value, int(kv.mod_revision)))
            except RecordError as err:
                log.warning("ignoring unreadable audit record %s: %s", kv.key, err)
        return sorted(entries, key=lambda entry: entry.revision)

    async def current_revision(self) -> int:
        """etcd's revision now, read linearizably under the prefix."""
        return await self._client.kv.current_revision(self.keys.root)

    async def write_barrier(self) -> int:
        """Writes this frontend's barrier key; the watch then reaches its revision."""
        response = await self._client.kv.put(self.keys.barrier(self._frontend_id), b"")
        return int(response.header.revision)

    async def load(self) -> ClusterState:
        """Members, live keys and operator state at one revision (the hub's snapshot)."""
        revision, members = await self._client.kv.range_prefix(self.keys.of_kind(KeyKind.MEMBER))
        _, live = await self._client.kv.range_prefix(
            self.keys.of_kind(KeyKind.LIVE), revision=revision
        )
        state = ClusterState(revision=revision)
        for kv in members:
            change = to_change(self.keys, kv, deleted=False)
            if isinstance(change, MemberPut):
                state.members[change.key] = change.member
        for kv in live:
            parsed = self.keys.parse(kv.key)
            if parsed and parsed[1] is not None:
                state.live.add(parsed[1])
        state.known_types = await known_types(self._client, self.keys, revision)
        for kind in (KeyKind.SWITCH, KeyKind.FRONTEND):
            _, kvs = await self._client.kv.range_prefix(self.keys.of_kind(kind), revision=revision)
            for kv in kvs:
                control = to_control(self.keys, kind, kv, deleted=False)
                if isinstance(control, SwitchChanged):
                    state.push_switch = control.push
                elif isinstance(control, FrontendChanged) and control.announcement is not None:
                    state.frontends[control.id] = control.announcement
        if self._elections:  # a key deleted while the watch could not say so
            _, kvs = await self._client.kv.range_prefix(
                self.keys.of_kind(KeyKind.ELECTION), revision=revision
            )
            present = {kv.key for kv in kvs}
            for election in self._elections:
                election.keys_present(present, revision)
        return state

    async def watch(self, start_revision: int) -> AsyncIterator[StoreBatch | StoreHeartbeat]:
        """The one watch of the prefix, turned into batches of the registry's changes."""
        async for item in self._client.watcher.watch(self.keys.root, start_revision):
            if isinstance(item, WatchBatch):
                changes = []
                control: list[ControlChange] = []
                stamped = 0.0
                for event in item.events:
                    deleted = event.type == pb.Event.DELETE
                    change = to_change(self.keys, event.kv, deleted=deleted)
                    if change is None:
                        kind = self.keys.parse(event.kv.key)
                        if deleted and kind is not None and kind[0] is KeyKind.ELECTION:
                            # Told before the hub sees this revision: a deposed evictor knows
                            # before the change can wake it for another sweep (D84).
                            for election in self._elections:
                                election.key_deleted(event.kv.key)
                        if kind is not None and kind[0] in (KeyKind.SWITCH, KeyKind.FRONTEND):
                            operator_change = to_control(
                                self.keys, kind[0], event.kv, deleted=deleted
                            )
                            if operator_change is not None:
                                control.append(operator_change)
                        continue
                    changes.append(change)
                    if not stamped and isinstance(change, MemberPut | IdentityPut):
                        stamped = written_at(event.kv.value)
                yield StoreBatch(item.revision, tuple(changes), stamped, tuple(control))
            else:
                yield StoreHeartbeat(item.revision)

    def election(
        self, name: str, candidate: str, ttl_seconds: int, poll_seconds: float
    ) -> EtcdElection:
        """A candidacy under the prefix; this store tells it when its key is deleted."""
        election = EtcdElection(
            self._client, self.keys.election(name), candidate, ttl_seconds, poll_seconds
        )
        self._elections.append(election)
        return election
