"""Security and abuse (docs/reliability.md): H1 floods, H4 credentials and scopes, TLS/mTLS with
a plaintext health-only port."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from client_sdk import ClientConfig, Node, RegistryClient
from tests.support.api import KeepAliveStream, key_of, node, register
from tests.support.certs import write_certificates
from tests.support.http import post
from tests.support.ports import free_port
from tests.support.proxy import TcpProxy
from tests.support.waiting import eventually

pytestmark = pytest.mark.chaos

TOKENS = {"fleet": "fleet-secret-1", "viewer": "viewer-secret-2", "writer": "writer-secret-3"}


def with_token(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def test_h4_no_credentials_no_scope_no_access(tmp_path, start_frontend, connect):
    tokens = tmp_path / "tokens"
    tokens.write_text(
        "# name scopes token\n"
        f"fleet register,watch,admin {TOKENS['fleet']}\n"
        f"viewer watch {TOKENS['viewer']}\n"
        f"writer register {TOKENS['writer']}\n"
    )
    frontend = await start_frontend(auth_tokens_file=str(tokens))
    stub = connect(frontend)
    fleet, viewer, writer = (with_token(TOKENS[name]) for name in ("fleet", "viewer", "writer"))
    request = pb.RegisterRequest(node=node("h4"), ttl_seconds=30)

    for metadata, code in (
        ((), grpc.StatusCode.UNAUTHENTICATED),
        (with_token("guessed"), grpc.StatusCode.UNAUTHENTICATED),
        (viewer, grpc.StatusCode.PERMISSION_DENIED),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Register(request, metadata=metadata)
        assert refused.value.code() == code, refused.value.details()
    owned = await stub.Register(request, metadata=fleet)
    assert (await stub.GetNodes(pb.GetNodesRequest(), metadata=viewer)).datacenters

    with pytest.raises(grpc.aio.AioRpcError) as no_watch:
        async for _ in stub.WatchNodes(pb.WatchNodesRequest(), metadata=writer):
            break
    assert no_watch.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'watch' scope" in (no_watch.value.details() or "")

    # A valid identity acting on a node it does not own: NOT_FOUND, nothing changes.
    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await stub.Deregister(
            pb.DeregisterRequest(key=key_of(owned.node), token="not-the-owner"), metadata=writer
        )
    assert foreign.value.code() == grpc.StatusCode.NOT_FOUND
    # Health checking needs no token (probes cannot send one).
    health = health_pb2_grpc.HealthStub(grpc.aio.insecure_channel(frontend.address))
    answer = await health.Check(health_pb2.HealthCheckRequest())
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    # Admin writes take a token with the admin scope (a valid token without it: 403).
    admin = f"http://127.0.0.1:{frontend.admin.port}/admin/suspects/confirm"
    assert (await post(admin, {"datacenter": "dc1"}))[0] == 401
    assert (await post(admin, {"datacenter": "dc1"}, token=TOKENS["viewer"]))[0] == 403
    assert (await post(admin, {"datacenter": "dc1"}, token=TOKENS["fleet"]))[0] == 200
    # The SDK sends its token on every call.
    config = ClientConfig(bearer_token=TOKENS["fleet"], call_timeout_seconds=3)
    async with RegistryClient(frontend.address, config=config) as client:
        assert {n.id for n in await client.get_nodes()} == {"h4"}


async def test_tls_and_mtls_on_the_grpc_port_with_a_plaintext_health_port(tmp_path, start_frontend):
    authority, files = write_certificates(tmp_path, ("127.0.0.1",), "node-1")
    health_port = free_port()
    frontend = await start_frontend(
        tls_cert_file=files["server.pem"],
        tls_key_file=files["server-key.pem"],
        tls_client_ca_file=files["ca.pem"],
        health_listen=f"127.0.0.1:{health_port}",
    )
    mtls = ClientConfig(
        tls_ca_file=files["ca.pem"],
        tls_cert_file=files["client.pem"],
        tls_key_file=files["client-key.pem"],
        call_timeout_seconds=3,
    )
    async with RegistryClient(frontend.address, config=mtls) as sdk:
        registration = await sdk.register(
            Node(id="secure", type="data", datacenter="dc1", address="10.0.0.1:1")
        )
        assert registration.incarnation == 1
        await registration.close()

    # Without a client certificate, or in plaintext, the gRPC port refuses.
    tls_only = grpc.ssl_channel_credentials(root_certificates=authority.cert_pem.bytes())
    for channel in (
        grpc.aio.secure_channel(frontend.address, tls_only),
        grpc.aio.insecure_channel(frontend.address),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await registry_pb2_grpc.RegistryStub(channel).GetNodes(pb.GetNodesRequest(), timeout=3)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        await channel.close()

    # Kubernetes' probes use the plaintext port, which serves health checking only.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{health_port}") as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await registry_pb2_grpc.RegistryStub(channel).GetNodes(pb.GetNodesRequest())
        assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_h1_a_flooding_client_is_limited_and_others_keep_renewing(start_frontend, connect):
    """One client floods KeepAlive past the per-stream rate and opens streams past the per-peer
    limit (it comes from 127.0.0.2 through a proxy); it gets RESOURCE_EXHAUSTED. Meanwhile an
    honest client (127.0.0.1) renews every one of its registrations, every time."""
    frontend = await start_frontend(keepalive_max_messages_per_second=200, max_streams_per_peer=5)
    honest = connect(frontend)
    host, port = frontend.address.rsplit(":", 1)
    flood_link = TcpProxy(host, int(port), source_host="127.0.0.2")
    await flood_link.start()
    flooder = connect(flood_link.endpoint)
    try:
        victims = [await register(honest, node(f"honest{i}"), ttl=30) for i in range(5)]
        own = await register(flooder, node("flooder"), ttl=30)

        flood = flooder.KeepAlive()
        request = pb.KeepAliveRequest(key=key_of(own.node), token=own.token)

        async def send_flood() -> None:
            for _ in range(3000):
                await flood.write(request)
            await flood.done_writing()

        sender = asyncio.create_task(send_flood())
        honest_stream = KeepAliveStream(honest)
        codes = []
        async for response in flood:
            codes.append(response.code)
            if len(codes) % 300 == 0:  # the honest client renews all along
                for victim in victims:
                    answer = await honest_stream.renew(key_of(victim.node), victim.token)
                    assert answer.code == 0, answer.message
        await sender
        assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]) > 0
        assert codes.count(0) > 0 and len(codes) == 3000

        # Streams per peer: the flooder's sixth stream is refused; the honest peer's is not.
        open_streams = [flooder.WatchNodes(pb.WatchNodesRequest()) for _ in range(5)]
        for call in open_streams:
            await call.read()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await flooder.WatchNodes(pb.WatchNodesRequest()).read()
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_streams_per_peer" in (refused.value.details() or "")
        honest_watch = honest.WatchNodes(pb.WatchNodesRequest())
        assert (await honest_watch.read()).WhichOneof("message") == "snapshot"
        for victim in victims:
            answer = await honest_stream.renew(key_of(victim.node), victim.token)
            assert answer.code == 0
        for call in [*open_streams, honest_watch]:
            call.cancel()
        await honest_stream.close()
        await eventually(lambda: frontend.hub.subscriptions == [], message="streams closed")
    finally:
        with contextlib.suppress(Exception):
            await flood_link.close()


async def test_oversized_metadata_is_refused_and_the_frontend_serves_on(start_frontend, connect):
    frontend = await start_frontend(max_metadata_bytes=8 * 1024)
    stub = connect(frontend)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetNodes(pb.GetNodesRequest(), metadata=(("x-padding", "a" * 20_000),))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (await stub.GetNodes(pb.GetNodesRequest())).revision > 0


async def test_a_ping_flooding_client_is_disconnected_and_others_are_not(start_frontend, connect):
    """A client that pings every 100 ms (allowed: one per 5 s) is sent GOAWAY too_many_pings after
    its strikes: its stream ends UNAVAILABLE. Another client's stream and renewals go on."""
    frontend = await start_frontend(
        grpc_min_ping_interval_seconds=5, grpc_max_ping_strikes=2, watch_progress_seconds=600
    )
    flooding_options = [
        ("grpc.keepalive_time_ms", 100),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    async with grpc.aio.insecure_channel(frontend.address, options=flooding_options) as channel:
        flood_watch = registry_pb2_grpc.RegistryStub(channel).WatchNodes(pb.WatchNodesRequest())
        honest = connect(frontend)
        honest_watch = honest.WatchNodes(pb.WatchNodesRequest())
        for call in (flood_watch, honest_watch):
            assert (await call.read()).WhichOneof("message") == "snapshot"

        with pytest.raises(grpc.aio.AioRpcError) as cut:
            async with asyncio.timeout(30):  # bound only: strikes come within a second
                await flood_watch.read()
        assert cut.value.code() == grpc.StatusCode.UNAVAILABLE

    joined = await register(honest, node("after-the-flood"), ttl=30)
    change = await honest_watch.read()
    assert change.WhichOneof("message") == "delta"
    assert [e.node.id for e in change.delta.events] == [joined.node.id]
    renewal = await KeepAliveStream(honest).renew(key_of(joined.node), joined.token)
    assert renewal.code == 0
    honest_watch.cancel()


async def test_a_watcher_whose_host_went_dark_is_dropped(start_frontend, connect):
    """A watcher behind a link that passes nothing any more (host gone, no FIN or RST) is found by
    the frontend's keepalive pings and dropped: its subscription and stream slot are freed."""
    frontend = await start_frontend(
        grpc_keepalive_time_seconds=1,
        grpc_keepalive_timeout_seconds=1,
        watch_progress_seconds=600,
        max_streams_per_peer=1,
    )
    host, port = frontend.address.rsplit(":", 1)
    link = TcpProxy(host, int(port))
    await link.start()
    try:
        gone = connect(link.endpoint).WatchNodes(pb.WatchNodesRequest())
        assert (await gone.read()).WhichOneof("message") == "snapshot"
        with pytest.raises(grpc.aio.AioRpcError) as full:
            await connect(frontend).WatchNodes(pb.WatchNodesRequest()).read()
        assert full.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        link.blackhole()
        await eventually(
            lambda: frontend.hub.subscriptions == [], timeout=30, message="dead peer dropped"
        )
        again = connect(frontend).WatchNodes(pb.WatchNodesRequest())
        assert (await again.read()).WhichOneof("message") == "snapshot"
        again.cancel()
        gone.cancel()
    finally:
        await link.close()
