"""etcd's Lease API: grant, revoke and time-to-live as unary calls (`EtcdLease`), and every renewal
of the process over ONE LeaseKeepAlive stream (`LeaseRenewer`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import grpc
import grpc.aio

from registry_service.errors import LeaseNotFoundError, StoreUnavailableError
from registry_service.retry import Backoff, ThrottledLog
from registry_service.store._etcdpb import rpc_pb2 as pb
from registry_service.store._etcdpb import rpc_pb2_grpc as pb_grpc
from registry_service.store.etcd_client.connection import EtcdConnection, describe

log = logging.getLogger(__name__)


class EtcdLease:
    """Unary lease calls, each on the next endpoint."""

    def __init__(self, connection: EtcdConnection) -> None:
        self._connection = connection

    def _stub(self, endpoint: str) -> pb_grpc.LeaseStub:
        return self._connection.stub(pb_grpc.LeaseStub, endpoint)

    async def grant(self, ttl_seconds: int) -> int:
        request = pb.LeaseGrantRequest(TTL=ttl_seconds)
        response = await self._connection.call(
            "lease_grant", lambda ep: self._stub(ep).LeaseGrant, request, idempotent=False
        )
        if response.error:
            raise StoreUnavailableError(f"etcd refused a lease: {response.error}")
        return int(response.ID)

    async def revoke(self, lease_id: int) -> None:
        """Revokes a lease, deleting its keys; a lease that is already gone is not an error."""
        request = pb.LeaseRevokeRequest(ID=lease_id)
        with contextlib.suppress(LeaseNotFoundError):
            await self._connection.call(
                "lease_revoke", lambda ep: self._stub(ep).LeaseRevoke, request, idempotent=True
            )

    async def time_to_live(self, lease_id: int) -> int:
        """Remaining seconds of a lease; -1 when it does not exist."""
        request = pb.LeaseTimeToLiveRequest(ID=lease_id)
        response = await self._connection.call(
            "lease_ttl", lambda ep: self._stub(ep).LeaseTimeToLive, request, idempotent=True
        )
        return int(response.TTL)


class LeaseRenewer:
    """Renews leases over ONE LeaseKeepAlive stream shared by the whole process.

    `renew()` sends a keepalive and returns the TTL etcd granted (0: the lease is gone). Renewals of
    the same lease that overlap share one request. When the stream breaks it is reopened with
    backoff on the next endpoint and every renewal still waiting is sent again. A stream that
    answers nothing for `outage_detection_seconds` while renewals wait is treated as broken too: its
    member may be frozen (a stopped process, a paused VM, a stuck disk), which keeps TCP up and
    leaves gRPC's keepalive 15 s to notice, longer than short TTLs last. `keep_alive()` keeps a
    lease of the frontend's own (the evictor's election) alive at TTL/3 until it is lost.
    """

    def __init__(self, connection: EtcdConnection) -> None:
        self._connection = connection
        self._waiting: dict[int, asyncio.Future[int]] = {}
        self._outbox: asyncio.Queue[int] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._reconnects = asyncio.Event()
        self._stream_endpoint = ""
        self._last_answer = 0.0  # monotonic time the stream last answered (or opened)
        self._interruptions = ThrottledLog(log, "etcd lease keepalive stream")
        self.streams_opened = 0
        self.requests_sent = 0
        """LeaseKeepAlive requests written (one per lease renewed)."""

    async def renew(self, lease_id: int) -> int:
        """Raises StoreUnavailableError when etcd does not answer within the request timeout."""
        (ttl,) = await self.renew_many((lease_id,))
        if ttl is None:
            raise StoreUnavailableError("etcd did not answer a lease renewal in time")
        return ttl

    async def renew_many(self, lease_ids: Sequence[int]) -> list[int | None]:
        """Renews leases together (one request each on the shared stream, one timer for all):
        for each, the TTL etcd granted, 0 when the lease is gone, None when etcd did not answer
        within the request timeout."""
        if not lease_ids:
            return []
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[int]] = []
        for lease_id in lease_ids:
            future = self._waiting.get(lease_id)
            if future is None:
                future = loop.create_future()
                self._waiting[lease_id] = future
                self._outbox.put_nowait(lease_id)
            futures.append(future)
        self._ensure_running()
        stream = self.streams_opened
        config = self._connection.config
        stall = min(config.outage_detection_seconds, config.request_timeout_seconds)
        # asyncio.wait, not gather: a timeout must not cancel futures other renewals share.
        _, pending = await asyncio.wait(futures, timeout=stall)
        if pending:
            self._stalled(stream, stall)
            _, pending = await asyncio.wait(pending, timeout=config.request_timeout_seconds - stall)
        for lease_id, future in zip(lease_ids, futures, strict=True):
            if future in pending and self._waiting.get(lease_id) is future:
                del self._waiting[lease_id]
        return [None if future in pending else future.result() for future in futures]

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="etcd-lease-keepalive")

    def _stalled(self, stream: int, seconds: float) -> None:
        """Renewals sent on stream number `stream` got no answer for `seconds`: when the stream
        answered nothing else either (a frozen member; a busy one answers late but answers), it
        is reopened on the next endpoint (unless the watch's probe moved the streams already)
        and every renewal still waiting is sent again there. Once per stream."""
        if stream != self.streams_opened or self._task is None or self._task.done():
            return  # not open yet, or replaced already
        if time.monotonic() - self._last_answer < seconds:
            return  # etcd is slow, not silent
        endpoint = self._stream_endpoint
        self._interruptions.failed(f"{endpoint} answered no renewal in {seconds:g}s; moving")
        if self._connection.endpoint == endpoint:
            self._connection.stream_failed(
                StoreUnavailableError(f"{endpoint} answered no lease renewal in {seconds:g}s")
            )
        self._task.cancel()  # its stream is cancelled on the way out
        self._connected.clear()
        self._task = asyncio.create_task(self._run(), name="etcd-lease-keepalive")

    async def _run(self) -> None:
        backoff = Backoff()
        interruptions = self._interruptions
        connection = self._connection
        while True:
            self._stream_endpoint = connection.endpoint
            call = connection.stub(pb_grpc.LeaseStub, self._stream_endpoint).LeaseKeepAlive(
                metadata=await connection.metadata()
            )
            self.streams_opened += 1
            self._last_answer = time.monotonic()
            while not self._outbox.empty():
                self._outbox.get_nowait()
            for lease_id in self._waiting:
                self._outbox.put_nowait(lease_id)
            writer = asyncio.create_task(self._write(call))
            try:
                while True:
                    response = await call.read()
                    if response is grpc.aio.EOF:
                        raise StoreUnavailableError("etcd closed the lease keepalive stream")
                    self._last_answer = time.monotonic()
                    if not self._connected.is_set():
                        interruptions.succeeded()
                        self._connected.set()
                        self._reconnects.set()
                        self._reconnects = asyncio.Event()
                    backoff.reset()
                    future = self._waiting.pop(response.ID, None)
                    if future is not None and not future.done():
                        future.set_result(max(int(response.TTL), 0))
            except (grpc.aio.AioRpcError, StoreUnavailableError) as err:
                interruptions.failed(f"interrupted ({describe(err)})")
                self._connected.clear()
                connection.stream_failed(err)
            finally:
                writer.cancel()
                call.cancel()
            await backoff.wait()

    async def _write(self, call: Any) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            while True:
                lease_id = await self._outbox.get()
                await call.write(pb.LeaseKeepAliveRequest(ID=lease_id))
                self.requests_sent += 1

    async def keep_alive(self, lease_id: int, ttl_seconds: int) -> None:
        """Renews lease_id at TTL/3 (and at once after a reconnect); returns when it is lost.

        Lost means etcd says the lease is gone, or no renewal succeeded for a whole TTL.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ttl_seconds
        while loop.time() < deadline:
            try:
                if await self.renew(lease_id) <= 0:
                    return
                deadline = loop.time() + ttl_seconds
                reconnected = self._reconnects
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(ttl_seconds / 3):
                        await reconnected.wait()
            except StoreUnavailableError:
                await asyncio.sleep(min(0.5, ttl_seconds / 6))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
