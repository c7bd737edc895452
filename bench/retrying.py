"""A Register as the bench's writers send it: again after a shed (the frontend's pushback) or an
unknown outcome (same request, same idempotency key), as the SDK does. Light: client processes
import it without the harness."""

from __future__ import annotations

import asyncio
import time

import grpc
import grpc.aio
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

SHED_SECONDS = 300.0  # a frontend still shedding after this long fails the row
RETRIED = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED}
)


async def register_retrying(
    stub: registry_pb2_grpc.RegistryStub, request: pb.RegisterRequest, attempts: int = 10
) -> pb.RegisterResponse:
    """A Register that a frontend whose etcd is overloaded could not answer, sent again with the
    same idempotency key (what the SDK does across frontends), and one it shed after its pushback:
    a saturated machine costs a row time, not the run. Other errors, and the last attempt's, are
    raised."""
    failures, shed_until = 0, time.monotonic() + SHED_SECONDS
    while True:
        try:
            return await stub.Register(request, timeout=30)
        except grpc.aio.AioRpcError as err:
            pushback_ms = dict(err.trailing_metadata() or ()).get("grpc-retry-pushback-ms")
            shed = err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and pushback_ms is not None
            if shed and time.monotonic() < shed_until:
                # Shed to serve renewals first (D72): after the pushback, as the SDK does; a
                # shed Register is not a failed attempt.
                await asyncio.sleep(int(pushback_ms) / 1000)
                continue
            failures += 1
            if err.code() not in RETRIED or failures == attempts:
                raise
            await asyncio.sleep(min(5.0, 0.2 * 2 ** (failures - 1)))
