"""Renewals first (D72): a frontend whose Register limit is full holds the next Register in line
for a while, then refuses it with RESOURCE_EXHAUSTED, a message saying to retry later and gRPC's
retry pushback, while it keeps renewing; the SDK waits out the pushback and registers once there
is room."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc.aio
import pytest
from noderegistry.v1 import registry_pb2 as pb

from client_sdk import ClientConfig, Node, RegistryClient, ResourceExhaustedError
from tests.support.api import key_of, node, register
from tests.support.http import metric
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
