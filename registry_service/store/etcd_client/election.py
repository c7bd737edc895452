"""etcd's election recipe (its client's concurrency/election.go): one leader at a time among the
candidates, fenced by the leader's own key."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from registry_service.errors import StoreError, StoreUnavailableError
from registry_service.store._etcdpb import rpc_pb2 as pb
from registry_service.store.etcd_client.client import EtcdClient
from registry_service.store.etcd_client.kv import absent, prefix_end, put_op

log = logging.getLogger(__name__)


class EtcdElection:
    """Each candidate puts a key on its own lease; the key with the lowest create revision leads.
    A leader's key is its fence: writes made as leader compare that it still exists, so a leader
    whose lease expired can no longer act. Implements store.base.Election.

    Leadership is lost when the key goes: its lease revoked or expired, or the key deleted. The
    store's one watch says so when it happens (`key_deleted`, D84); the lease's renewals say so
    too, at the latest a TTL after they stopped succeeding (etcd out of reach).
    """

    def __init__(
        self,
        client: EtcdClient,
        prefix: bytes,
        candidate: str,
        ttl_seconds: int,
        poll_seconds: float,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._candidate = candidate
        self._ttl = ttl_seconds
        self._poll_seconds = poll_seconds
        self._lease = 0
        self._key = b""
        self._created = 0  # the revision that created the key
        self._keeper: asyncio.Task[None] | None = None
        self._deposed = asyncio.Event()

    @property
    def fence(self) -> bytes:
        return self._key

    @property
    def deposed(self) -> bool:
        """The key is known gone: whatever this candidate led, it leads no more."""
        return self._deposed.is_set()

    def key_deleted(self, key: bytes) -> None:
        """The store's watch saw `key` deleted (any candidate's; only its own counts)."""
        if self._key and key == self._key and not self._deposed.is_set():
            log.warning("election: %s lost its key %s", self._candidate, key.decode())
            self._deposed.set()

    def keys_present(self, keys: set[bytes], revision: int) -> None:
        """Every key of the elections at `revision` (the store read them all again): its own
        missing, though created by then, is as good as deleted."""
        if self._key and self._created <= revision and self._key not in keys:
            self.key_deleted(self._key)

    async def stand(self) -> None:
        if self._deposed.is_set():
            await self.resign()  # its lease may live on (a deleted key): let it go
        if self._keeper is None or self._keeper.done():
            await self._stand()

    async def _stand(self) -> None:
        lease = await self._client.lease.grant(self._ttl)
        key = self._prefix + f"{lease:016x}".encode()
        self._lease = lease
        response = await self._client.kv.txn(
            pb.TxnRequest(
                compare=[absent(key)],
                success=[put_op(key, self._candidate.encode(), lease)],
            )
        )
        self._key, self._created = key, int(response.header.revision)
        self._deposed.clear()
        self._keeper = asyncio.create_task(
            self._client.own_renewer.keep_alive(lease, self._ttl), name="evictor-election-lease"
        )

    async def campaign(self) -> None:
        while True:
            await self.stand()
            response = await self._client.kv.range(
                pb.RangeRequest(
                    key=self._prefix,
                    range_end=prefix_end(self._prefix),
                    limit=1,
                    sort_order=pb.RangeRequest.SortOrder.ASCEND,
                    sort_target=pb.RangeRequest.SortTarget.CREATE,
                    keys_only=True,
                )
            )
            if response.kvs and response.kvs[0].key == self._key and not self.deposed:
                return
            assert self._keeper is not None
            await asyncio.wait({self._keeper}, timeout=self._poll_seconds)

    async def lost(self) -> None:
        """Returns when the key is known gone, or the lease's renewals end (lost, or none
        succeeded for a whole TTL)."""
        if self._keeper is None:
            raise StoreUnavailableError("not a candidate")
        deposed = asyncio.create_task(self._deposed.wait())
        try:
            await asyncio.wait({self._keeper, deposed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            deposed.cancel()

    async def resign(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None
        if self._lease:
            lease, self._lease = self._lease, 0
            with contextlib.suppress(StoreError):
                await self._client.lease.revoke(lease)
