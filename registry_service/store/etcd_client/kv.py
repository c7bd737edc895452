"""etcd's KV API (Range, Txn, Put, Compact), and the builders of the compares and operations a
transaction is made of (etcd's client keeps them in op.go and compare.go)."""

from __future__ import annotations

from registry_service.store._etcdpb import rpc_pb2 as pb
from registry_service.store._etcdpb import rpc_pb2_grpc as pb_grpc
from registry_service.store.etcd_client.connection import EtcdConnection

_EQUAL = pb.Compare.CompareResult.EQUAL
_GREATER = pb.Compare.CompareResult.GREATER


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that makes [prefix, range_end) exactly the keys starting with prefix."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


def absent(key: bytes) -> pb.Compare:
    return pb.Compare(key=key, target=pb.Compare.CompareTarget.VERSION, result=_EQUAL, version=0)


def present(key: bytes) -> pb.Compare:
    return pb.Compare(key=key, target=pb.Compare.CompareTarget.VERSION, result=_GREATER, version=0)


def unchanged_since(key: bytes, mod_revision: int) -> pb.Compare:
    """The key is still at mod_revision (absent when mod_revision is 0)."""
    if mod_revision == 0:
        return absent(key)
    return pb.Compare(
        key=key, target=pb.Compare.CompareTarget.MOD, result=_EQUAL, mod_revision=mod_revision
    )


def on_lease(key: bytes, lease_id: int) -> pb.Compare:
    """The key exists on lease_id (an absent key is on no lease)."""
    return pb.Compare(key=key, target=pb.Compare.CompareTarget.LEASE, result=_EQUAL, lease=lease_id)


def put_op(key: bytes, value: bytes, lease: int = 0) -> pb.RequestOp:
    return pb.RequestOp(request_put=pb.PutRequest(key=key, value=value, lease=lease))


def delete_op(key: bytes) -> pb.RequestOp:
    return pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=key))


def get_op(key: bytes) -> pb.RequestOp:
    return pb.RequestOp(request_range=pb.RangeRequest(key=key))


class EtcdKV:
    """Reads are retried on another endpoint when one is unavailable; writes are not (their
    outcome is unknown: see EtcdConnection.call)."""

    def __init__(self, connection: EtcdConnection) -> None:
        self._connection = connection

    def _stub(self, endpoint: str) -> pb_grpc.KVStub:
        return self._connection.stub(pb_grpc.KVStub, endpoint)

    async def range(self, request: pb.RangeRequest) -> pb.RangeResponse:
        return await self._connection.call(
            "range", lambda ep: self._stub(ep).Range, request, idempotent=True
        )

    async def range_prefix(
        self, prefix: bytes, *, revision: int = 0, page_size: int = 5_000
    ) -> tuple[int, list[pb.KeyValue]]:
        """Every key under prefix at one revision (the current one when 0), read in pages.

        Raises:
            StoreCompactedError: the revision was compacted (between two pages, too).
        """
        kvs: list[pb.KeyValue] = []
        start, end = prefix, prefix_end(prefix)
        while True:
            response = await self.range(
                pb.RangeRequest(key=start, range_end=end, revision=revision, limit=page_size)
            )
            revision = revision or response.header.revision
            kvs.extend(response.kvs)
            if not response.more or not response.kvs:
                return revision, kvs
            start = response.kvs[-1].key + b"\0"

    async def txn(self, request: pb.TxnRequest, *, read_only: bool = False) -> pb.TxnResponse:
        """A transaction; read_only ones (no puts or deletes) are retried like reads.

        Raises:
            LeaseNotFoundError: a put names a lease that is gone; nothing applied.
        """
        return await self._connection.call(
            "txn", lambda ep: self._stub(ep).Txn, request, idempotent=read_only
        )

    async def put(self, key: bytes, value: bytes, lease: int = 0) -> pb.PutResponse:
        request = pb.PutRequest(key=key, value=value, lease=lease)
        return await self._connection.call(
            "put", lambda ep: self._stub(ep).Put, request, idempotent=False
        )

    async def current_revision(self, key: bytes) -> int:
        """etcd's current revision, by a linearizable read (through the leader's ReadIndex).

        It reads `key` (count only): a key the caller may read, since etcd users are often
        granted one prefix only.
        """
        response = await self.range(pb.RangeRequest(key=key, count_only=True))
        return int(response.header.revision)

    async def compact(self, revision: int) -> None:
        request = pb.CompactionRequest(revision=revision, physical=True)
        await self._connection.call(
            "compact", lambda ep: self._stub(ep).Compact, request, idempotent=False
        )
