"""The baseline of the holder processes: bare etcd leases kept alive by a Python etcd client over
ONE LeaseKeepAlive stream, every lease each TTL/3, its renewals recorded as the holders' are
(bench/renewal_tap.py): an answer with TTL <= 0 is a lease that expired."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from typing import Any

import grpc
import grpc.aio

from bench.renewal_tap import RenewalLog
from registry_service.store._etcdpb import rpc_pb2 as etcd_pb
from registry_service.store._etcdpb import rpc_pb2_grpc as etcd_grpc

EXPIRED = 5  # NOT_FOUND: what the holders' log counts as refused


class EtcdHolder:
    """Grants leases on `add`, renews every lease granted so far on a grid of TTL/3 that starts
    with the first add (a lease granted early in a long add is renewed before it runs out)."""

    def __init__(self, endpoint: str, ttl: int) -> None:
        self.ttl = ttl
        self.log = RenewalLog(ttl / 3)
        self.leases: list[int] = []
        self._channel = grpc.aio.insecure_channel(endpoint)
        self._lease = etcd_grpc.LeaseStub(self._channel)
        self._renewing: asyncio.Task[None] | None = None

    async def add(self, count: int, rate: float, in_flight: int, seconds: float) -> dict[str, Any]:
        started = time.monotonic()
        if self._renewing is None:
            self._renewing = asyncio.create_task(self._renew())
        granted: list[int] = []
        pending = iter(range(count))

        async def worker() -> None:
            for i in pending:
                if rate:
                    await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
                if time.monotonic() > started + seconds:
                    return
                answer = await self._lease.LeaseGrant(etcd_pb.LeaseGrantRequest(TTL=self.ttl))
                self.log.registered(str(answer.ID), time.monotonic())
                self.leases.append(answer.ID)
                granted.append(answer.ID)

        await asyncio.gather(*(worker() for _ in range(max(1, in_flight))))
        ended = time.monotonic()
        return {
            "registered": len(granted),
            "refused": 0,
            "unregistered": count - len(granted),
            "failed": 0,
            "seconds": ended - started,
            "ended": ended,
        }

    async def _renew(self) -> None:
        period = self.ttl / 3
        origin = time.monotonic()
        while True:
            pending: dict[str, collections.deque[float]] = collections.defaultdict(
                collections.deque
            )
            call = self._lease.LeaseKeepAlive()
            reader = asyncio.create_task(self._read(call, pending))
            try:
                while not reader.done():
                    for lease in list(self.leases):
                        pending[str(lease)].append(time.monotonic())
                        await call.write(etcd_pb.LeaseKeepAliveRequest(ID=lease))
                    elapsed = time.monotonic() - origin
                    await asyncio.sleep(period - elapsed % period)
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                pass  # the stream broke: a new one, the unanswered renewals dropped
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                    await reader

    async def _read(self, call: Any, pending: dict[str, collections.deque[float]]) -> None:
        async for response in call:
            lease = str(response.ID)
            asked = pending.get(lease)
            if asked:
                code = 0 if response.TTL > 0 else EXPIRED
                self.log.answered(lease, code, asked.popleft(), time.monotonic())

    def cpu(self) -> dict[str, float]:
        return {"cpu_seconds": time.process_time()}
