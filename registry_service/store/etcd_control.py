"""The operator state on etcd (store/base.ControlStore): the push switch, frontend announcements,
the operator audit. It shares the registry store's client, keyspace and audit log (store/audit.py).
"""

from __future__ import annotations

import dataclasses
import logging

from registry_service.control import Announcement, OperatorEntry, PushSwitch
from registry_service.store._etcdpb import rpc_pb2 as pb
from registry_service.store.audit import AuditLog
from registry_service.store.base import StoredNode
from registry_service.store.control_records import (
    decode_operator_entry,
    decode_push_switch,
    encode_announcement,
    encode_push_switch,
)
from registry_service.store.etcd_client import EtcdClient
from registry_service.store.etcd_client.kv import absent, put_op, unchanged_since
from registry_service.store.keys import PUSH_SWITCH, KeyKind, Keyspace
from registry_service.store.records import RecordError, encode_identity

log = logging.getLogger(__name__)


class EtcdControlStore:
    """ControlStore on etcd (see store/base.py for the contract of each method)."""

    def __init__(self, client: EtcdClient, keys: Keyspace, audit: AuditLog) -> None:
        self._client = client
        self.keys = keys
        self._audit = audit

    async def read_push_switch(self) -> tuple[PushSwitch, int]:
        """The stored push switch; an unreadable one reads as on (logged), not as an error."""
        response = await self._client.kv.range(pb.RangeRequest(key=self.keys.switch(PUSH_SWITCH)))
        if not response.kvs:
            return PushSwitch(), 0
        kv = response.kvs[0]
        try:
            return decode_push_switch(kv.value), int(kv.mod_revision)
        except RecordError as err:
            log.warning("the stored push switch is unreadable (%s): treated as on", err)
            return PushSwitch(), int(kv.mod_revision)

    async def _audited(
        self, compare: list[pb.Compare], ops: list[pb.RequestOp], entry: OperatorEntry
    ) -> int | None:
        """One guarded transaction that also records the operator's action."""

        def transaction(lease: int) -> pb.TxnRequest:
            audited = [*ops, self._audit.operator_entry(entry, lease)] if lease else list(ops)
            return pb.TxnRequest(compare=compare, success=audited)

        response = await self._audit.commit(transaction)
        if not response.succeeded:
            return None
        log.info(
            "operator %s: %s %s%s",
            entry.operator,
            entry.action,
            entry.target,
            f" ({entry.detail})" if entry.detail else "",
            extra={"operator": entry.operator, "action": entry.action, "target": entry.target},
        )
        return int(response.header.revision)

    async def write_push_switch(
        self, switch: PushSwitch, expected_mod_revision: int, entry: OperatorEntry
    ) -> int | None:
        """Stores the switch if unchanged since the caller read it, audited in one write."""
        key = self.keys.switch(PUSH_SWITCH)
        return await self._audited(
            [unchanged_since(key, expected_mod_revision)],
            [put_op(key, encode_push_switch(switch))],
            entry,
        )

    async def lift_hold(self, expected: StoredNode, entry: OperatorEntry) -> int | None:
        """Clears an operator's eviction hold from the identity, audited in one write."""
        identity = expected.identity
        assert identity is not None
        key = self.keys.identity(expected.key)
        lifted = dataclasses.replace(identity, hold_until=0.0, held_by="")
        return await self._audited(
            [
                unchanged_since(key, expected.identity_mod_revision),
                absent(self.keys.member(expected.key)),
            ],
            [put_op(key, encode_identity(lifted))],
            entry,
        )

    async def announce(self, announcement: Announcement, lease_id: int) -> None:
        """Puts the announcement on the frontend's lease: it goes when the frontend does."""
        await self._client.kv.put(
            self.keys.frontend(announcement.id), encode_announcement(announcement), lease_id
        )

    async def read_operator_audit(self) -> list[OperatorEntry]:
        """The operator audit, oldest first; unreadable records are logged and skipped."""
        _, kvs = await self._client.kv.range_prefix(self.keys.of_kind(KeyKind.OPERATOR_AUDIT))
        entries = []
        for kv in kvs:
            try:
                entries.append(decode_operator_entry(kv.value, int(kv.mod_revision)))
            except RecordError as err:
                log.warning("ignoring unreadable operator audit record %s: %s", kv.key, err)
        return sorted(entries, key=lambda entry: entry.revision)
