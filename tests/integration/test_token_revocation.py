"""A token removed from the tokens file ends the streams it holds open, at the reload: WatchNodes
and xDS with UNAUTHENTICATED ("token revoked"), /v1/watch with an error event; a token narrowed
so that it no longer reads the stream's scope ends them with PERMISSION_DENIED. The streams of
the tokens still valid go on receiving changes."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc
import grpc.aio
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from registry_service.app import Frontend
from registry_service.security.open_streams import REVOKED_MESSAGE
from registry_service.xds import resources
from tests.integration.test_tokens_file import replace_file
from tests.integration.test_xds_protocol import data, endpoint_ids
from tests.support.http_api import Event, EventStream, api_url, changes

pytestmark = pytest.mark.integration

TOKENS = """\
fleet register fleet-secret
alice watch alice-secret
bob watch bob-secret
carol watch carol-secret
"""
WAIT_SECONDS = 10.0
STREAMS_LOG = "registry_service.security.open_streams"


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def next_change(call: grpc.aio.StreamStreamCall | grpc.aio.UnaryStreamCall) -> object:
    """The next WatchNodes snapshot or delta (progress skipped)."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            message = await call.read()
            assert message is not grpc.aio.EOF, "the stream ended"
            if not message.HasField("progress"):
                return message


async def ending(call: grpc.aio.Call) -> grpc.aio.AioRpcError:
    """Reads a gRPC stream (whatever it still sends) until it ends; the error it ended with."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            try:
                message = await call.read()  # type: ignore[attr-defined]
            except grpc.aio.AioRpcError as err:
                return err
            assert message is not grpc.aio.EOF, "the stream ended without an error"


async def sse_ending(stream: EventStream) -> Event:
    """Reads an event stream until it ends; its last event."""
    last: Event | None = None
    async with asyncio.timeout(WAIT_SECONDS):
        while (event := await stream.next()) is not None:
            last = event
    assert last is not None
    return last


async def xds_endpoints(channel: grpc.aio.Channel, token: str) -> grpc.aio.StreamStreamCall:
    """An ADS stream following the `data` endpoints, its first answer read."""
    call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources(
        metadata=bearer(token)
    )
    await call.write(
        discovery_pb2.DiscoveryRequest(
            node=base_pb2.Node(id=f"proxy-{token}"),
            type_url=resources.ENDPOINTS,
            resource_names=["data"],
        )
    )
    async with asyncio.timeout(WAIT_SECONDS):
        await call.read()
    return call


async def test_a_removed_token_ends_its_open_streams_and_others_go_on(
    tmp_path: Path, start_frontend, caplog
):
    caplog.set_level(logging.INFO, logger=STREAMS_LOG)
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKENS)
    frontend: Frontend = await start_frontend(
        auth_tokens_file=str(tokens), credentials_reload_seconds=0.1
    )
    watch_url = f"{api_url(frontend)}/v1/watch?datacenter=dc1&type=data"
    async with grpc.aio.insecure_channel(frontend.address) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        await stub.Register(
            pb.RegisterRequest(node=data("d1"), ttl_seconds=30), metadata=bearer("fleet-secret")
        )
        request = pb.WatchNodesRequest(scope=pb.Scope(datacenters=["dc1"], types=["data"]))
        watches = {
            name: stub.WatchNodes(request, metadata=bearer(f"{name}-secret"))
            for name in ("alice", "bob", "carol")
        }
        events = {
            name: await EventStream.open(watch_url, f"{name}-secret") for name in ("alice", "bob")
        }
        proxies = {
            name: await xds_endpoints(channel, f"{name}-secret") for name in ("alice", "bob")
        }
        try:
            for call in watches.values():
                assert (await next_change(call)).HasField("snapshot")
            for stream in events.values():
                assert (await stream.next_change()).name == "snapshot"

            # Alice's token leaves the file; carol's now reads dc2 only. Bob's stays.
            replace_file(
                tokens,
                "fleet register fleet-secret\nbob watch bob-secret\ncarol watch:dc2 carol-secret\n",
            )

            revoked = await ending(watches["alice"])
            assert revoked.code() == grpc.StatusCode.UNAUTHENTICATED
            assert revoked.details() == REVOKED_MESSAGE
            assert revoked.details().startswith("token revoked:")
            narrowed = await ending(watches["carol"])
            assert narrowed.code() == grpc.StatusCode.PERMISSION_DENIED
            assert narrowed.details() == (
                "token 'carol' lacks watch:dc1/data (its watch scopes: watch:dc2); ask only for "
                "the datacenters and types it may read"
            )
            xds_revoked = await ending(proxies["alice"])
            assert (xds_revoked.code(), xds_revoked.details()) == (
                grpc.StatusCode.UNAUTHENTICATED,
                REVOKED_MESSAGE,
            )
            error = await sse_ending(events["alice"])
            assert (error.name, error.data) == (
                "error",
                {"error": {"code": "UNAUTHENTICATED", "message": REVOKED_MESSAGE}},
            )
            for said in (revoked.details(), xds_revoked.details(), str(error.data)):
                assert "bob" not in said and "alice" not in said  # no token is named

            # Bob's streams were left alone: each receives the next change.
            await stub.Register(
                pb.RegisterRequest(node=data("d2", port=7001), ttl_seconds=30),
                metadata=bearer("fleet-secret"),
            )
            delta = await next_change(watches["bob"])
            assert [event.node.id for event in delta.delta.events] == ["d2"]
            assert changes(await events["bob"].next_change()) == [("ADDED", "d2")]
            async with asyncio.timeout(WAIT_SECONDS):
                assert endpoint_ids(await proxies["bob"].read()) == {"d1", "d2"}
            ended = sorted(r.getMessage() for r in caplog.records if r.name == STREAMS_LOG)
            reason = "the tokens file read again no longer holds"
            assert ended == [
                f"ended 1 open /v1/watch stream: {reason} its token, or no longer grants what "
                "it reads",
                f"ended 1 open xDS stream: {reason} its token, or no longer grants what it reads",
                f"ended 2 open WatchNodes streams: {reason} their token, or no longer grants "
                "what they read",
            ]
        finally:
            for call in (*watches.values(), *proxies.values()):
                call.cancel()
            for stream in events.values():
                await stream.close()
