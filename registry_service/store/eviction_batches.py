"""The evictor's decisions written in batches (D48): one etcd transaction whose only compare is
the evictor's fence holds one nested transaction per decision, each with that decision's own guard
and writes, so a member that changed meanwhile fails only its own part (etcd >= 3.3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from registry_service.domain import AuditCause, NodeKey, Registration, RemovalReason
from registry_service.errors import LeaseNotFoundError
from registry_service.store._etcdpb import rpc_pb2 as pb
from registry_service.store.base import EvictorWrite, StoredNode
from registry_service.store.etcd_client.kv import EtcdKV, present
from registry_service.store.transitions import incarnation_of, log_transition

# Nested transactions per etcd transaction. etcd allows 128 operations; a nested transaction may
# use what the outer one leaves (128 - 100 = 28), and one eviction needs 4 (2 compares, 4 ops).
EVICTIONS_PER_TXN = 100

Ops = tuple[list[pb.Compare], list[pb.RequestOp]]


class AuditLeases(Protocol):
    retention: int

    async def current(self) -> int: ...

    def forget(self) -> None: ...


class EvictionOps(Protocol):
    """The store's builders of a decision's guard and writes (store/etcd.py)."""

    @property
    def audit_leases(self) -> AuditLeases: ...

    def suspicion_ops(self, registration: Registration, expected: StoredNode) -> Ops: ...

    def removal_ops(
        self, expected: StoredNode, reason: RemovalReason, *, only_if_not_live: bool
    ) -> Ops: ...

    def audit_put(
        self, key: NodeKey, cause: AuditCause, incarnation: int, detail: str, lease: int
    ) -> pb.RequestOp: ...


async def write_evictions(
    ops: EvictionOps, kv: EtcdKV, writes: Sequence[EvictorWrite], fence: bytes
) -> list[int | None]:
    """For each write, the revision it committed at, or None when its guard (or the fence)
    failed; `EVICTIONS_PER_TXN` of them per transaction."""
    revisions: list[int | None] = []
    for start in range(0, len(writes), EVICTIONS_PER_TXN):
        revisions += await _write_batch(ops, kv, writes[start : start + EVICTIONS_PER_TXN], fence)
    return revisions


async def _write_batch(
    ops: EvictionOps, kv: EtcdKV, writes: Sequence[EvictorWrite], fence: bytes
) -> list[int | None]:
    audit_leases = ops.audit_leases
    for attempt in range(2):
        nested, audits = [], []
        audit_lease = await audit_leases.current() if audit_leases.retention > 0 else 0
        for write in writes:
            incarnation = incarnation_of(write.expected)
            if write.suspect is not None:
                compare, success = ops.suspicion_ops(write.suspect, write.expected)
                cause = AuditCause.SUSPECTED
            else:
                compare, success = ops.removal_ops(
                    write.expected, RemovalReason.EXPIRED, only_if_not_live=True
                )
                cause = write.cause
            audit = (write.expected.key, cause, incarnation, write.detail)
            if audit_lease:
                success.append(ops.audit_put(*audit, audit_lease))
            audits.append(audit)
            nested.append(pb.RequestOp(request_txn=pb.TxnRequest(compare=compare, success=success)))
        try:
            response = await kv.txn(pb.TxnRequest(compare=[present(fence)], success=nested))
        except LeaseNotFoundError:
            if attempt == 0 and audit_lease:
                audit_leases.forget()
                continue
            raise
        if not response.succeeded:
            return [None] * len(writes)
        revision = int(response.header.revision)
        revisions: list[int | None] = []
        for answer, audit_entry in zip(response.responses, audits, strict=True):
            if answer.response_txn.succeeded:
                log_transition(*audit_entry, revision)
                revisions.append(revision)
            else:
                revisions.append(None)
        return revisions
    raise AssertionError("unreachable")
