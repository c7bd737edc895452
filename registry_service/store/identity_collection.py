"""Collecting the identity records of ids long gone, under an incarnation floor (D86).

An identity record (`identity/<dc>/<type>/<id>`) outlives its member: it keeps the id's last
incarnation, so that the next registration of the id gets a higher one, and how it left. With
ephemeral ids (pod names) those records grew without bound. They are now deleted once the id has
been gone for `identity_retention_seconds`, and incarnations stay monotonic per id through one
number per cluster, the incarnation floor (`incarnation-floor`): every deletion raises it, in the
same transaction, to at least the incarnation it deletes, and an id that has no identity record
registers at floor + 1 (StoredNode.next_incarnation). A watcher therefore never sees an id come
back with an incarnation it saw before, however long it watches, while the keyspace holds only
the ids of the last retention period. The price is that a brand-new id may start above 1.

Each batch is one transaction: its compare is the floor's mod revision (a concurrent collector
or nothing: retried on the new floor), its writes the new floor and one nested transaction per
record, guarded by the record being unchanged and the id not a member, so that an id registered
meanwhile keeps its record (store/eviction_batches.py writes the same shape).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from registry_service.errors import ConcurrentModificationError
from registry_service.store._etcdpb import rpc_pb2 as pb
from registry_service.store.etcd_client import EtcdClient
from registry_service.store.etcd_client.kv import (
    absent,
    delete_op,
    get_op,
    prefix_end,
    put_op,
    unchanged_since,
)
from registry_service.store.keys import KeyKind, Keyspace
from registry_service.store.records import RecordError, decode_identity_written

log = logging.getLogger(__name__)

IDENTITIES_PER_TXN = 100  # nested transactions per etcd transaction (etcd allows 128 operations)
_PAGE = 1_000  # identity records read per range request
_FLOOR_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class _Collectable:
    key: bytes
    mod_revision: int
    member_key: bytes
    incarnation: int


def decode_floor(value: bytes) -> int:
    """The floor as stored: a decimal number (etcdctl shows it as it is)."""
    try:
        return int(value.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        log.warning("unreadable incarnation floor %r: taken as 0", value[:40])
        return 0


async def read_floor(client: EtcdClient, keys: Keyspace) -> tuple[int, int]:
    """The incarnation floor and its mod revision ((0, 0) when none was ever written)."""
    response = await client.kv.range(pb.RangeRequest(key=keys.incarnation_floor))
    if not response.kvs:
        return 0, 0
    return decode_floor(response.kvs[0].value), int(response.kvs[0].mod_revision)


def floor_get(keys: Keyspace) -> pb.RequestOp:
    """The floor's read inside a node's read transaction (store/etcd.py read_node)."""
    return get_op(keys.incarnation_floor)


async def known_types(client: EtcdClient, keys: Keyspace, revision: int) -> set[tuple[str, str]]:
    """Every (datacenter, type) with an identity record at `revision`: one keys-only read of one
    key per (datacenter, type), each next read starting past the last one's type (however many
    ids each type holds)."""
    prefix = keys.of_kind(KeyKind.IDENTITY)
    start, end = prefix, prefix_end(prefix)
    found: set[tuple[str, str]] = set()
    while start < end:
        response = await client.kv.range(
            pb.RangeRequest(key=start, range_end=end, revision=revision, limit=1, keys_only=True)
        )
        if not response.kvs:
            break
        parts = response.kvs[0].key[len(prefix) :].split(b"/", 2)
        if len(parts) < 3:  # not a node's record (no reader writes one): step over it
            start = response.kvs[0].key + b"\0"
            continue
        datacenter, node_type, _ = parts
        found.add((datacenter.decode(errors="replace"), node_type.decode(errors="replace")))
        start = prefix_end(prefix + datacenter + b"/" + node_type + b"/")
    return found


async def collect_identities(
    client: EtcdClient, keys: Keyspace, written_before: float, now: float
) -> int:
    """See RegistryStore.collect_identities. Reads the records in pages of `_PAGE`, deletes the
    collectable ones in transactions of `IDENTITIES_PER_TXN`."""
    prefix = keys.of_kind(KeyKind.IDENTITY)
    members = keys.of_kind(KeyKind.MEMBER)
    start, end = prefix, prefix_end(prefix)
    collected = 0
    floor: tuple[int, int] | None = None  # as this pass last wrote it
    while True:
        response = await client.kv.range(pb.RangeRequest(key=start, range_end=end, limit=_PAGE))
        registered = await _members_of(client, response.kvs, prefix, members)
        found = []
        for kv in response.kvs:
            member_key = members + kv.key[len(prefix) :]
            if member_key in registered:
                continue  # a member's record is never collected (and never raises the floor)
            item = _collectable(kv, member_key, written_before, now)
            if item is not None:
                found.append(item)
        for first in range(0, len(found), IDENTITIES_PER_TXN):
            batch = found[first : first + IDENTITIES_PER_TXN]
            deleted, floor = await _delete_batch(client, keys, batch, floor)
            collected += deleted
        if not response.more or not response.kvs:
            break
        start = response.kvs[-1].key + b"\0"
    if collected:
        log.info("collected %d identity records of ids gone before the retention", collected)
    return collected


async def _members_of(
    client: EtcdClient, page: Sequence[pb.KeyValue], prefix: bytes, members: bytes
) -> set[bytes]:
    """The member keys of the ids of a page of identity records (one keys-only range over the
    same ids: every member has an identity record, so it is at most a page)."""
    if not page:
        return set()
    first, last = page[0].key[len(prefix) :], page[-1].key[len(prefix) :]
    response = await client.kv.range(
        pb.RangeRequest(key=members + first, range_end=members + last + b"\0", keys_only=True)
    )
    return {kv.key for kv in response.kvs}


def _collectable(
    kv: pb.KeyValue, member_key: bytes, written_before: float, now: float
) -> _Collectable | None:
    """The record, if its id left before `written_before` and no operator holds it at `now`."""
    try:
        identity, written = decode_identity_written(kv.value)
    except RecordError:
        return None  # left for an operator: the next incarnation of its id depends on it
    if written >= written_before or identity.hold_until > now:
        return None
    return _Collectable(kv.key, int(kv.mod_revision), member_key, identity.incarnation)


async def _delete_batch(
    client: EtcdClient, keys: Keyspace, batch: list[_Collectable], floor: tuple[int, int] | None
) -> tuple[int, tuple[int, int]]:
    """Deletes what is still collectable of `batch` and raises the floor over it. Returns how
    many records went, and the floor as written (value, mod revision). `floor` is the one this
    pass wrote last (None: read it)."""
    highest = max(item.incarnation for item in batch)
    nested = [
        pb.RequestOp(
            request_txn=pb.TxnRequest(
                compare=[unchanged_since(item.key, item.mod_revision), absent(item.member_key)],
                success=[delete_op(item.key)],
            )
        )
        for item in batch
    ]
    for _ in range(_FLOOR_ATTEMPTS):
        value, revision = floor if floor is not None else await read_floor(client, keys)
        raised = max(value, highest)
        response = await client.kv.txn(
            pb.TxnRequest(
                compare=[unchanged_since(keys.incarnation_floor, revision)],
                success=[put_op(keys.incarnation_floor, str(raised).encode()), *nested],
            )
        )
        if response.succeeded:
            deleted = sum(1 for answer in response.responses[1:] if answer.response_txn.succeeded)
            return deleted, (raised, int(response.header.revision))
        floor = None  # another collector moved it: read it again
    raise ConcurrentModificationError(
        f"the incarnation floor changed {_FLOOR_ATTEMPTS} times while identities were collected"
    )
