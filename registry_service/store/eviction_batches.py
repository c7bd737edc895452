"""The evictor's decisions written in batches (D48): one etcd transaction whose only compare is
the evictor's fence holds one nested transaction per decision, each with that decision's own guard
and writes and its audit record (store/audit.py), so a member that changed meanwhile fails only
its own part (etcd >= 3.3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from registry_service.domain import AuditCause, NodeKey, Registration, RemovalReason
from registry_service.store._etcdpb import rpc_pb2 as pb
from registry_service.store.audit import AuditLog
from registry_service.store.base import EvictorWrite, StoredNode
from registry_service.store.etcd_client.kv import present
from registry_service.store.transitions import incarnation_of, log_transition

# Nested transactions per etcd transaction. etcd allows 128 operations; a nested transaction may
# use what the outer one leaves (128 - 100 = 28), and one eviction needs 4 (2 compares, 4 ops).
EVICTIONS_PER_TXN = 100

Ops = tuple[list[pb.Compare], list[pb.RequestOp]]


class EvictionOps(Protocol):
    """The store's builders of a decision's guard and writes (store/etcd.py), and its audit."""

    @property
    def audit(self) -> AuditLog:
        """The audit log whose lease the batch's audit records ride on."""

    def suspicion_ops(self, registration: Registration, expected: StoredNode) -> Ops:
        """The guard and write of one SUSPECT decision."""

    def removal_ops(
        self, expected: StoredNode, reason: RemovalReason, *, only_if_not_live: bool
    ) -> Ops:
        """The guard and writes of one removal."""


async def write_evictions(
    ops: EvictionOps, writes: Sequence[EvictorWrite], fence: bytes
) -> list[int | None]:
    """For each write, the revision it committed at, or None when its guard (or the fence)
    failed; `EVICTIONS_PER_TXN` of them per transaction."""
    revisions: list[int | None] = []
    for start in range(0, len(writes), EVICTIONS_PER_TXN):
        revisions += await _write_batch(ops, writes[start : start + EVICTIONS_PER_TXN], fence)
    return revisions


async def _write_batch(
    ops: EvictionOps, writes: Sequence[EvictorWrite], fence: bytes
) -> list[int | None]:
    audits: list[tuple[NodeKey, AuditCause, int, str]] = []

    def transaction(audit_lease: int) -> pb.TxnRequest:
        nested = []
        audits.clear()
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
                success.append(ops.audit.node_entry(*audit, audit_lease))
            audits.append(audit)
            nested.append(pb.RequestOp(request_txn=pb.TxnRequest(compare=compare, success=success)))
        return pb.TxnRequest(compare=[present(fence)], success=nested)

    response = await ops.audit.commit(transaction)
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
