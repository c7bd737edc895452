"""An etcd quorum loss is noticed within about a second, not at the end of a request deadline
(issue 11, problem 4; decision D43): from then on the frontend stays ready but degraded, writes
fail at once with UNAVAILABLE, and CACHED reads say stale.

The bounds compare against the frontend's configured etcd request deadline (a setting), not a
wall-clock constant: "noticed before one request would have timed out"."""

from __future__ import annotations

import time

import grpc
import grpc.aio
import pytest
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from tests.support.api import node, register
from tests.support.http import get
from tests.support.waiting import eventually

pytestmark = pytest.mark.chaos
DEADLINE_SECONDS = 5.0  # the frontend's etcd_request_timeout_seconds, set below


async def _readyz(admin: str) -> dict[str, object] | None:
    status, body = await get(f"{admin}/readyz")
    assert status == 200, body  # ready throughout: degraded is still "can serve"
    return body if body["degraded"] else None


async def _timed(call) -> tuple[float, grpc.aio.AioRpcError]:
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    return time.monotonic() - started, refused.value


@pytest.mark.timeout(120)
async def test_a_quorum_loss_fails_writes_before_their_deadline_and_marks_lists_stale(rig):
    # 1. One frontend on the 3-member cluster, a node registered, /readyz not degraded.
    # 2. Two of three members freeze (no quorum). At once, a Register: it was already on its way
    #    to etcd; it must come back UNAVAILABLE well before the etcd request deadline.
    # 3. /readyz says degraded (still 200) within the deadline, counted from the freeze.
    # 4. The next Register fails at once; a CACHED read is served, marked stale; LINEARIZABLE is
    #    refused.
    # 5. The members resume: not degraded again, and a Register succeeds.
    r = await rig(frontends=1, etcd_request_timeout_seconds=DEADLINE_SECONDS)
    (frontend,) = r.frontends
    admin = frontend.ready_line.split("admin ")[1].split(")")[0]
    async with grpc.aio.insecure_channel(frontend.address) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        await register(stub, node("n1"), ttl=60)
        assert await _readyz(admin) is None

        frozen = r.members[:2]
        for member in frozen:
            member.pause()
        frozen_at = time.monotonic()
        try:
            elapsed, error = await _timed(register(stub, node("first"), ttl=60))
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error
            assert elapsed < DEADLINE_SECONDS, f"the first Register took {elapsed:.1f}s"

            body = await eventually(
                lambda: _readyz(admin), timeout=DEADLINE_SECONDS, message="degraded"
            )
            assert time.monotonic() - frozen_at < DEADLINE_SECONDS
            assert body["ready"] and not body["store_connected"]

            elapsed, error = await _timed(register(stub, node("second"), ttl=60))
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert "cannot reach etcd" in (error.details() or "")
            assert elapsed < DEADLINE_SECONDS / 5, f"a refused write took {elapsed:.2f}s"
            cached = await stub.GetNodes(
                pb.GetNodesRequest(consistency=pb.CONSISTENCY_CACHED), timeout=DEADLINE_SECONDS
            )
            assert cached.stale and {n.id for dc in cached.datacenters for n in dc.nodes} == {"n1"}
            _, error = await _timed(stub.GetNodes(pb.GetNodesRequest(), timeout=DEADLINE_SECONDS))
            assert error.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            for member in frozen:
                member.resume()
        await eventually(
            lambda: _not_degraded(admin), timeout=30, message="not degraded once etcd is back"
        )
        registered = await register(stub, node("after"), ttl=60)
        assert registered.node.incarnation == 1
        cached = await stub.GetNodes(pb.GetNodesRequest(consistency=pb.CONSISTENCY_CACHED))
        assert not cached.stale


async def _not_degraded(admin: str) -> bool:
    return await _readyz(admin) is None
