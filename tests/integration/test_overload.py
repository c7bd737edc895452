"""Renewals first (D72): a frontend whose Register limit is full holds the next Register in line
for a while, then refuses it with RESOURCE_EXHAUSTED, a message saying to retry later and gRPC's
retry pushback, while it keeps renewing; the SDK waits out the pushback and registers once there
is room."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from noderegistry.v1 import registry_pb2 as pb

from client_sdk import ClientConfig, Node, RegistryClient, ResourceExhaustedError
from tests.support.api import key_of, node, register
from tests.support.http import metric
from tests.support.http_api import api_url, get
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

FULL_AT_TWO = {
    "admission_initial_limit": 2,
    "admission_min_limit": 2,
    "admission_max_limit": 2,
    "admission_retry_after_seconds": 0.4,
    "admission_loop_lag_seconds": 30.0,  # the Registers in flight alone fill the limit
    "admission_max_wait_seconds": 0.3,
}


def held_registers(frontend: Any) -> asyncio.Event:
    """Makes the frontend's Registers wait until the returned event is set (slow Registers that
    hold the limit's slots)."""
    gate = asyncio.Event()
    register = frontend.registry.register

    async def slow(*args: Any, **kwargs: Any) -> Any:
        await gate.wait()
        return await register(*args, **kwargs)

    frontend.registry.register = slow
    return gate


async def test_a_full_register_limit_refuses_at_once_with_a_pushback_and_renewals_go_on(
    start_frontend, connect
):
    frontend = await start_frontend(**FULL_AT_TWO)
    stub = connect(frontend)
    held = await register(stub, node("held"), ttl=30)  # before the limit fills
    gate = held_registers(frontend)
    # 1. Two slow Registers fill the limit.
    slow = [asyncio.create_task(register(stub, node(f"slow{i}"), ttl=30)) for i in range(2)]
    await eventually(lambda: frontend.admission.registers.in_flight == 2, message="limit full")
    # 2. The next one waits its 0.3 s in line, then is refused, saying to retry later and when.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await register(stub, node("refused"), ttl=30)
    error = refused.value
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "serves renewals first" in (error.details() or "")
    assert "retry in" in (error.details() or "") and "2 in flight" in (error.details() or "")
    pushback = dict(error.trailing_metadata() or ())["grpc-retry-pushback-ms"]
    assert 200 <= int(pushback) <= 600  # 0.4 s, drawn between half and 1.5 times
    # 3. Renewals are never refused: the held registration renews meanwhile.
    call = stub.KeepAlive()
    await call.write(pb.KeepAliveRequest(key=key_of(held.node), token=held.token))
    answer = await asyncio.wait_for(call.read(), 10)
    assert (answer.code, answer.ttl_seconds) == (0, 30)
    await call.done_writing()
    # 4. The refusal is counted, the limit shows as a metric.
    admin = f"http://127.0.0.1:{frontend.admin.port}"
    assert await metric(admin, "noderegistry_admission_refused_total", call="Register") == 1
    assert await metric(admin, "noderegistry_admission_register_limit") == 2
    gate.set()
    assert all(r.token for r in await asyncio.gather(*slow))


async def test_the_sdk_waits_out_the_pushback_and_registers_once_there_is_room(
    start_frontend, connect
):
    frontend = await start_frontend(**FULL_AT_TWO)
    stub = connect(frontend)
    gate = held_registers(frontend)
    slow = [asyncio.create_task(register(stub, node(f"slow{i}"), ttl=30)) for i in range(2)]
    await eventually(lambda: frontend.admission.registers.in_flight == 2, message="limit full")
    wanted = Node(id="patient", type="data", datacenter="dc1", address="10.0.0.1:1")
    impatient = ClientConfig(register_overload_wait_seconds=0)
    async with RegistryClient(frontend.address, config=impatient) as client:
        with pytest.raises(ResourceExhaustedError) as refused:
            await client.register(wanted, ttl_seconds=30)
        assert refused.value.retry_after_seconds is not None
        assert 0.2 <= refused.value.retry_after_seconds <= 0.6
    async with RegistryClient(frontend.address) as client:
        patient = asyncio.create_task(client.register(wanted, ttl_seconds=30))
        admin = f"http://127.0.0.1:{frontend.admin.port}"

        async def refused_again() -> bool:
            return await metric(admin, "noderegistry_admission_refused_total", call="Register") >= 2

        await eventually(refused_again, message="the SDK's Register refused while full")
        assert not patient.done()
        gate.set()
        registration = await asyncio.wait_for(patient, 30)
        assert registration.node.incarnation == 1
    await asyncio.gather(*slow)


@contextlib.asynccontextmanager
async def lagging_event_loop(block_seconds: float) -> AsyncIterator[None]:
    """The frontend's event loop (this process's: the frontend runs in the test's loop) kept
    busy: blocked for `block_seconds` at a time, free for a few ms in between, as a frontend
    swamped by work is. Every timer, the admission ticker's included, runs that late."""
    stop = asyncio.Event()

    async def hog() -> None:
        while not stop.is_set():
            time.sleep(block_seconds)  # noqa: ASYNC251 (the point: the loop runs nothing else)
            await asyncio.sleep(0.005)

    task = asyncio.create_task(hog())
    try:
        yield
    finally:
        stop.set()
        await task


async def test_http_reads_are_refused_with_retry_after_while_the_event_loop_lags(
    start_frontend, connect
):
    """Reads are shed on the HTTP API port as on the gRPC port (D72): GET /v1/nodes (plain and
    blocking), one node and a new event stream get 429 RESOURCE_EXHAUSTED with Retry-After while
    the event loop lags, and are served again once it keeps up. Before, only gRPC was shed."""
    frontend = await start_frontend(
        admission_loop_lag_seconds=0.05, admission_retry_after_seconds=1.0
    )
    stub = connect(frontend)
    added = await register(stub, node("a"), ttl=30)
    api = api_url(frontend)
    reads = [
        "/v1/nodes",
        f"/v1/nodes?index={added.revision}&wait=5s",
        "/v1/nodes/dc1/data/a",
        "/v1/watch",
    ]
    async with lagging_event_loop(0.3):
        await eventually(lambda: frontend.admission.congested, message="the loop lags")
        for path in reads:
            answer = await get(f"{api}{path}")
            assert answer.status == 429, (path, answer.body)
            assert answer.body["error"]["code"] == "RESOURCE_EXHAUSTED"
            assert "serves renewals first" in answer.body["error"]["message"]
            assert answer.headers["Retry-After"] in {"1", "2"}  # 1 s, drawn between 0.5 and 1.5
        with pytest.raises(grpc.aio.AioRpcError) as refused:  # as GetNodes on the gRPC port
            await stub.GetNodes(pb.GetNodesRequest())
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    admin = f"http://127.0.0.1:{frontend.admin.port}"
    assert await metric(admin, "noderegistry_admission_refused_total", call="read") >= len(reads)

    async def served() -> bool:
        return (await get(f"{api}/v1/nodes/dc1/data/a")).status == 200

    await eventually(served, message="reads served once the loop keeps up")
