"""Standard gRPC health checking on every frontend; server reflection when it is turned on."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

pytestmark = pytest.mark.integration


async def test_health_is_serving_and_turns_not_serving_on_stop(start_frontend):
    frontend = await start_frontend()
    async with grpc.aio.insecure_channel(frontend.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "noderegistry.v1.Registry"):
            response = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert response.status == health_pb2.HealthCheckResponse.SERVING
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        await frontend.stop()
        seen = [(await watch.read()).status]
        assert seen == [health_pb2.HealthCheckResponse.NOT_SERVING]


async def _list_services(address: str) -> set[str]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo()
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        response = await call.read()
        await call.done_writing()
        return {s.name for s in response.list_services_response.service}


async def test_reflection_is_off_by_default(start_frontend):
    """Reflection answers without a token: a frontend serves it only when told to."""
    frontend = await start_frontend()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _list_services(frontend.address)
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_reflection_lists_the_registry_service_when_turned_on(start_frontend):
    frontend = await start_frontend(grpc_reflection=True)
    names = await _list_services(frontend.address)
    assert {"noderegistry.v1.Registry", "grpc.health.v1.Health"} <= names
