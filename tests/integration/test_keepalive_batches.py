"""Several renewals in one KeepAlive message (D47): the frontend's answers, its one etcd renewal per
lease and window, the SDK's one message per tick, and old frontends that do not batch."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import grpc.aio
import pytest
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc as pb_grpc

from client_sdk import ClientConfig, Node, RegistrationState, RegistryClient
from client_sdk._errors import RegistryUnavailableError, StatusCode
from client_sdk._keepalive import KeepAliveSession
from client_sdk._models import NodeKey
from client_sdk._transport import Transport
from tests.support.api import key_of, node, register
from tests.support.etcd_metrics import metric as etcd_metric
from tests.support.http import metric
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
FAST = ClientConfig(call_timeout_seconds=3, retry_initial_seconds=0.05, retry_max_seconds=0.5)


def _etcd_renewals(endpoint: str) -> float:
    return etcd_metric(endpoint, "grpc_server_msg_received_total", grpc_method="LeaseKeepAlive")


async def test_one_message_renews_several_registrations_each_with_its_own_answer(
    start_frontend, connect
):
    stub = connect(await start_frontend())
    first = await register(stub, node("b1"), ttl=30)
    second = await register(stub, node("b2"), ttl=30)
    call = stub.KeepAlive()
    renewals = [
        pb.Renewal(key=key_of(first.node), token=first.token),
        pb.Renewal(key=key_of(second.node), token="not-its-token"),
        pb.Renewal(key=pb.NodeKey(datacenter="dc1", type="data", id="BAD ID"), token="x"),
        pb.Renewal(key=key_of(second.node), token=second.token),
    ]
    await call.write(pb.KeepAliveRequest(renewals=renewals))
    response = await asyncio.wait_for(call.read(), 10)
    assert [(r.key.id, r.code) for r in response.results] == [
        ("b1", grpc.StatusCode.OK.value[0]),
        ("b2", grpc.StatusCode.NOT_FOUND.value[0]),
        ("BAD ID", grpc.StatusCode.INVALID_ARGUMENT.value[0]),
        ("b2", grpc.StatusCode.OK.value[0]),
    ]
    assert response.results[0].ttl_seconds == 30
    assert "id" in response.results[2].message
    # The single form still works on the same stream.
    await call.write(pb.KeepAliveRequest(key=key_of(first.node), token=first.token))
    single = await asyncio.wait_for(call.read(), 10)
    assert (single.key.id, single.code, list(single.results)) == ("b1", 0, [])
    await call.done_writing()


async def test_a_lease_is_renewed_in_etcd_at_most_once_per_window_however_often_asked(
    own_etcd, start_frontend, connect
):
    # TTL 30: the window is a sixth of it (5 s), longer than the 0.5 s coalescing setting.
    stub = connect(await start_frontend(own_etcd.endpoint, keepalive_coalesce_seconds=0.5))
    registered = await register(stub, node("w1"), ttl=30)
    call = stub.KeepAlive()
    before = _etcd_renewals(own_etcd.endpoint)
    answers = []
    for _ in range(20):
        await call.write(pb.KeepAliveRequest(key=key_of(registered.node), token=registered.token))
        answers.append(await asyncio.wait_for(call.read(), 10))
    assert {a.code for a in answers} == {0}
    assert all(28 <= a.ttl_seconds <= 30 for a in answers)
    assert _etcd_renewals(own_etcd.endpoint) - before == 1
    await call.done_writing()


async def test_an_sdk_client_renews_all_its_registrations_in_one_message_per_tick(start_frontend):
    frontend = await start_frontend()
    admin = f"http://127.0.0.1:{frontend.admin.port}"
    async with RegistryClient(frontend.address, config=FAST) as client:
        registrations = [
            await client.register(
                Node(id=f"t{i}", type="data", datacenter="dc1", address="10.0.0.1:1"),
                ttl_seconds=3,
            )
            for i in range(6)
        ]

        async def renewed() -> float:
            return await metric(admin, "noderegistry_keepalives_total", result="OK")

        async def enough() -> bool:
            return await renewed() >= 3 * len(registrations)

        await eventually(enough, timeout=10, message="three renewals each")
        messages = await metric(admin, "grpc_server_msg_received_total", grpc_method="KeepAlive")
        renewals = await renewed()
        assert all(r.state is RegistrationState.ACTIVE for r in registrations)
    # Six registrations of one TTL share each tick's message (the first may come apart).
    assert messages <= renewals / 6 + 2, (messages, renewals)


class _FrontendBeforeBatching(pb_grpc.RegistryServicer):  # type: ignore[misc]
    """Answers KeepAlive as a frontend from before `renewals` did: one answer per message, about
    the message's own key (empty for a batch), and knows one registration."""

    def __init__(self) -> None:
        self.messages: list[pb.KeepAliveRequest] = []

    async def Register(self, request, context):
        return pb.RegisterResponse(node=request.node, ttl_seconds=3, token="tok")

    async def Deregister(self, request, context):
        return pb.DeregisterResponse()

    async def KeepAlive(self, request_iterator, context) -> AsyncIterator[pb.KeepAliveResponse]:
        async for request in request_iterator:
            self.messages.append(request)
            if request.key.id and request.token == "tok":
                yield pb.KeepAliveResponse(key=request.key, code=0, ttl_seconds=3)
            else:
                yield pb.KeepAliveResponse(key=request.key, code=3, message="id is empty")


async def test_an_sdk_client_falls_back_to_one_message_per_registration_on_an_old_frontend():
    servicer = _FrontendBeforeBatching()
    server = grpc.aio.server()
    pb_grpc.add_RegistryServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with RegistryClient(f"127.0.0.1:{port}", config=FAST) as client:
            registrations = [
                await client.register(
                    Node(id=f"o{i}", type="data", datacenter="dc1", address="10.0.0.1:1"),
                    ttl_seconds=3,
                )
                for i in range(3)
            ]
            await eventually(
                lambda: sum(1 for m in servicer.messages if m.key.id) >= 6,
                timeout=10,
                message="renewals one message each",
            )
            assert all(r.state is RegistrationState.ACTIVE for r in registrations)
            assert all(r.reregistrations == 0 for r in registrations)
            # One batch at most reached it; everything after went one registration a message.
            assert sum(1 for m in servicer.messages if m.renewals) <= 1
    finally:
        with contextlib.suppress(Exception):
            await server.stop(0)


async def test_every_renewal_of_a_message_left_unanswered_fails_naming_the_frontend_and_the_wait(
    etcd, spawn_frontend, monkeypatch
):
    """A frontend that takes a batch and never answers (its etcd renewal hangs): the renewal that
    timed out and every other renewal of the same message fail DEADLINE_EXCEEDED with one
    message a person can act on, naming the frontend and how long the client waited."""
    monkeypatch.setenv("REGISTRY_FAILPOINTS", "keep_alive.before_renew=hang")
    frontend = await spawn_frontend(etcd.endpoint)
    channel = grpc.aio.insecure_channel(frontend.address)
    stub = pb_grpc.RegistryStub(channel)
    registered = [await register(stub, node(f"h{i}"), ttl=30) for i in range(2)]
    transport = Transport(frontend.address, ClientConfig())
    session = KeepAliveSession(transport)
    try:
        outcomes = await asyncio.gather(
            *(
                session.renew(
                    NodeKey(r.node.datacenter, r.node.type, r.node.id), r.token, timeout=1.0
                )
                for r in registered
            ),
            return_exceptions=True,
        )
    finally:
        await session.close()
        await transport.close()
        await channel.close()
    expected = f"no KeepAlive answer from {frontend.address} within 1 s"
    for outcome in outcomes:
        assert isinstance(outcome, RegistryUnavailableError), outcome
        assert outcome.code is StatusCode.DEADLINE_EXCEEDED
        assert expected in str(outcome), str(outcome)
