"""The audit in etcd (D21): why each node joined, changed and left (`audit/<dc>/<type>/<id>/...`)
and every operator action with who did it (`operator-audit/...`), each record written in the same
transaction as the change it explains.

Records expire on their own: each rides on a lease that is never renewed. A fresh lease of
`retention_seconds` is granted every retention/24, so a record lives between 23/24 of the
retention and all of it, and no process has to delete old records. A retention of 0 records
nothing.

`AuditLog` is the one writer, shared by every store module that changes state: the registry
store's guarded writes (store/etcd.py), the operator's writes (store/etcd_control.py) and the
evictor's batches (store/eviction_batches.py). Each hands `commit` a function that builds its
transaction for an audit lease; a transaction that finds the lease gone (etcd "lease not found")
did not apply, and is built again on a new lease, once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from registry_service.control import OperatorEntry
from registry_service.domain import AuditCause, AuditEntry, NodeKey
from registry_service.errors import LeaseNotFoundError
from registry_service.store._etcdpb import rpc_pb2 as pb
from registry_service.store.control_records import encode_operator_entry
from registry_service.store.etcd_client import EtcdClient
from registry_service.store.etcd_client.kv import put_op
from registry_service.store.keys import Keyspace
from registry_service.store.records import encode_audit


class AuditLeases:
    """The lease audit records ride on: granted afresh every retention/24, never renewed."""

    def __init__(self, client: EtcdClient, retention_seconds: int) -> None:
        self._client = client
        self.retention = retention_seconds
        self._lease = 0
        self._granted_at = 0.0
        self._lock = asyncio.Lock()

    async def current(self) -> int:
        """The lease to put a record on now (granted when the last one is too old)."""
        now = time.monotonic()
        if self._lease and now - self._granted_at < self.retention / 24:
            return self._lease
        async with self._lock:
            if not self._lease or now - self._granted_at >= self.retention / 24:
                self._lease = await self._client.lease.grant(self.retention)
                self._granted_at = time.monotonic()
            return self._lease

    def forget(self) -> None:
        """The lease is gone (etcd said so): the next record gets a new one."""
        self._lease = 0


class AuditLog:
    """Writes the audit records of one frontend into the transactions of its changes.

    Args:
        client: the etcd client the stores share.
        keys: the cluster's keyspace (where records go).
        frontend_id: recorded in each entry (which frontend committed the change).
        retention_seconds: how long etcd keeps a record (`audit_retention_seconds`); 0: none.
    """

    def __init__(
        self, client: EtcdClient, keys: Keyspace, frontend_id: str, retention_seconds: int
    ) -> None:
        self._client = client
        self._keys = keys
        self._frontend_id = frontend_id
        self.leases = AuditLeases(client, retention_seconds)

    @property
    def enabled(self) -> bool:
        """Records are kept (`audit_retention_seconds` > 0)."""
        return self.leases.retention > 0

    def node_entry(
        self,
        key: NodeKey,
        cause: AuditCause,
        incarnation: int,
        detail: str,
        lease: int,
        operator: str = "",
    ) -> pb.RequestOp:
        """The put that records why node `key` changed (its membership transition)."""
        now_ns = time.time_ns()
        entry = AuditEntry(
            key,
            cause,
            incarnation,
            now_ns / 1e9,
            self._frontend_id,
            detail=detail,
            operator=operator,
        )
        return put_op(self._keys.audit(key, now_ns), encode_audit(entry), lease)

    def operator_entry(self, entry: OperatorEntry, lease: int) -> pb.RequestOp:
        """The put that records an operator's action (D38)."""
        now_ns = time.time_ns()
        return put_op(
            self._keys.operator_audit(now_ns, self._frontend_id),
            encode_operator_entry(entry),
            lease,
        )

    async def commit(self, build: Callable[[int], pb.TxnRequest]) -> pb.TxnResponse:
        """Sends the transaction `build(lease)` makes, `lease` being the audit lease to put its
        records on (0: the audit is off, record nothing). A lapsed audit lease is replaced once:
        the transaction did not apply, and is built again.

        Raises:
            LeaseNotFoundError: a lease was gone twice, or a lease of the change itself was.
        """
        for attempt in range(2):
            lease = await self.leases.current() if self.enabled else 0
            try:
                return await self._client.kv.txn(build(lease))
            except LeaseNotFoundError:
                if attempt == 0 and lease:
                    self.leases.forget()
                    continue
                raise
        raise AssertionError("unreachable")
