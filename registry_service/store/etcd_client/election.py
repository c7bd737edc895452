"""etcd's election recipe (its client's concurrency/election.go): one leader at a time among the
candidates, fenced by the leader's own key."""

from __future__ import annotations

import asyncio
import contextlib

from registry_service.errors import StoreError, StoreUnavailableError
from registry_service.store._etcdpb import rpc_pb2 as pb
from registry_service.store.etcd_client.client import EtcdClient
from registry_service.store.etcd_client.kv import absent, prefix_end, put_op


class EtcdElection:
    """Each candidate puts a key on its own lease; the key with the lowest create revision leads.
    A leader's key is its fence: writes made as leader compare that it still exists, so a leader
    whose lease expired can no longer act. Implements store.base.Election."""

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
        self._keeper: asyncio.Task[None] | None = None

    @property
    def fence(self) -> bytes:
        return self._key

    async def stand(self) -> None:
        if self._keeper is None or self._keeper.done():
            await self._stand()

    async def _stand(self) -> None:
        self._lease = await self._client.lease.grant(self._ttl)
        self._key = self._prefix + f"{self._lease:016x}".encode()
        await self._client.kv.txn(
            pb.TxnRequest(
                compare=[absent(self._key)],
                success=[put_op(self._key, self._candidate.encode(), self._lease)],
            )
        )
        self._keeper = asyncio.create_task(
            self._client.own_renewer.keep_alive(self._lease, self._ttl),
            name="evictor-election-lease",
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
            if response.kvs and response.kvs[0].key == self._key:
                return
            assert self._keeper is not None
            await asyncio.wait({self._keeper}, timeout=self._poll_seconds)

    async def lost(self) -> None:
        if self._keeper is None:
            raise StoreUnavailableError("not a candidate")
        await asyncio.shield(self._keeper)

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
