"""Flap damping's record of a node in etcd (`flaps/<dc>/<type>/<id>`, docs/design.md §13, D103).

It lives beside the member record, not in it, so that it outlives a registration (a crash loop
registers anew) and so that a flap that changes nothing subscribers see is a write no watcher is
sent. It rides on the audit lease: it goes with the audit's retention, long after its penalty
decayed (with the audit off it stays, a few bytes per node). Every write of it is guarded by its
mod revision as read with the node (StoredNode.flaps_mod_revision), as the member record is.
"""

from __future__ import annotations

import logging

from registry_service.domain import FlapRecord, NodeKey
from registry_service.store._etcdpb import rpc_pb2 as pb
from registry_service.store.audit import AuditLog
from registry_service.store.base import StoredNode
from registry_service.store.etcd_client.kv import put_op, unchanged_since
from registry_service.store.keys import Keyspace
from registry_service.store.records import RecordError, decode_flaps, encode_flaps

log = logging.getLogger(__name__)


def flaps_read(key: NodeKey, kvs: list[pb.KeyValue]) -> tuple[FlapRecord | None, int]:
    """The record and its mod revision from a read of its key ((None, 0) when absent)."""
    if not kvs:
        return None, 0
    try:
        return decode_flaps(kvs[0].value), int(kvs[0].mod_revision)
    except RecordError:  # damping starts afresh: a lost penalty damps less, once
        log.warning("ignoring unreadable flap record %s", key)
        return None, int(kvs[0].mod_revision)


def flaps_unchanged(keys: Keyspace, expected: StoredNode) -> pb.Compare:
    """The guard: the record is as it was read with `expected`."""
    return unchanged_since(keys.flaps(expected.key), expected.flaps_mod_revision)


def flaps_put(keys: Keyspace, key: NodeKey, record: FlapRecord, lease: int) -> pb.RequestOp:
    """The write of the record, on the audit lease `lease` (0: none, the audit is off)."""
    return put_op(keys.flaps(key), encode_flaps(record), lease)


async def write_flaps_alone(
    audit: AuditLog, keys: Keyspace, expected: StoredNode, record: FlapRecord
) -> int | None:
    """A flap that changes nothing subscribers see: the record alone, not audited, if the member
    and the record are unchanged since `expected`. Returns the revision, or None."""
    compare = [
        unchanged_since(keys.member(expected.key), expected.member_mod_revision),
        flaps_unchanged(keys, expected),
    ]
    response = await audit.commit(
        lambda lease: pb.TxnRequest(
            compare=compare, success=[flaps_put(keys, expected.key, record, lease)]
        )
    )
    return int(response.header.revision) if response.succeeded else None
