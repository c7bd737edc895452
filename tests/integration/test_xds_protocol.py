"""The ADS protocols on the wire, with raw streams: versions, unknown names, ACKs as
confirmations, NACKs, the push switch, tokens and per-peer limits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import grpc.aio
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.rpc import status_pb2
from noderegistry.v1 import registry_pb2 as pb

from registry_service.app import Frontend
from registry_service.core.operations import PushChange
from registry_service.xds import resources
from tests.support.api import register
from tests.support.waiting import eventually, next_message

pytestmark = pytest.mark.integration

NODE = base_pb2.Node(id="raw-client")


def data(node_id: str, port: int = 7000, **metadata: str) -> pb.Node:
    return pb.Node(
        id=node_id, type="data", datacenter="dc1", address=f"127.0.0.1:{port}", metadata=metadata
    )


def endpoint_ids(response: discovery_pb2.DiscoveryResponse) -> set[str]:
    assignment = endpoint_pb2.ClusterLoadAssignment()
    response.resources[0].Unpack(assignment)
    return {e.endpoint.hostname for loc in assignment.endpoints for e in loc.lb_endpoints}


def counted(frontend: Frontend, protocol: str, kind: str, type_name: str = "endpoints") -> float:
    value = frontend.metrics.registry.get_sample_value(
        "noderegistry_xds_messages_total",
        {"protocol": protocol, "type": type_name, "kind": kind},
    )
    return value or 0.0


def xds_subscriptions(frontend: Frontend) -> list:
    return [s for s in frontend.hub.subscriptions if s.acknowledging]


async def test_state_of_the_world_versions_acks_and_nacks(start_frontend, connect):
    frontend: Frontend = await start_frontend()
    stub = connect(frontend)
    first = await register(stub, data("a"))
    async with grpc.aio.insecure_channel(frontend.address) as channel:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
        # 1. listeners: a name that names nothing is absent from the answer (does not exist).
        await call.write(
            discovery_pb2.DiscoveryRequest(
                node=NODE, type_url=resources.LISTENER, resource_names=["data", "Bad!"]
            )
        )
        listeners = await next_message(call)
        assert [r.type_url for r in listeners.resources] == [resources.LISTENER]
        assert listeners.version_info == "1"

        # 2. endpoints: the version is the revision; the ACK is the stream's confirmation.
        await call.write(
            discovery_pb2.DiscoveryRequest(type_url=resources.ENDPOINTS, resource_names=["data"])
        )
        endpoints = await next_message(call)
        assert endpoint_ids(endpoints) == {"a"}
        assert int(endpoints.version_info) >= first.revision
        (subscription,) = xds_subscriptions(frontend)
        assert subscription.acked_revision == 0
        await call.write(
            discovery_pb2.DiscoveryRequest(
                type_url=resources.ENDPOINTS,
                resource_names=["data"],
                version_info=endpoints.version_info,
                response_nonce=endpoints.nonce,
            )
        )
        await eventually(
            lambda: subscription.acked_revision == int(endpoints.version_info),
            message="the ACK confirms the revision",
        )
        assert subscription.converged(frontend.hub.revision)

        # 3. a change: a new version; a NACK of it is counted and confirms nothing.
        second = await register(stub, data("b"))
        changed = await next_message(call)
        assert endpoint_ids(changed) == {"a", "b"} and changed.version_info == str(second.revision)
        nacks = counted(frontend, "sotw", "nacks")
        await call.write(
            discovery_pb2.DiscoveryRequest(
                type_url=resources.ENDPOINTS,
                resource_names=["data"],
                version_info=endpoints.version_info,
                response_nonce=changed.nonce,
                error_detail=status_pb2.Status(code=3, message="refused for the test"),
            )
        )
        await eventually(lambda: counted(frontend, "sotw", "nacks") == nacks + 1, message="NACK")
        assert subscription.acked_revision == int(endpoints.version_info)
        assert not subscription.converged(second.revision)
        # 4. the next change is sent as usual.
        third = await register(stub, data("c"))
        assert (await next_message(call)).version_info == str(third.revision)
        call.cancel()
    await eventually(lambda: not xds_subscriptions(frontend), message="subscription closed")


async def test_delta_subscribes_unsubscribes_and_answers_unknown_names(start_frontend, connect):
    frontend: Frontend = await start_frontend()
    stub = connect(frontend)
    await register(stub, data("a", zone="a"))
    await register(stub, data("b", zone="b"))
    async with grpc.aio.insecure_channel(frontend.address) as channel:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).DeltaAggregatedResources()
        await call.write(
            discovery_pb2.DeltaDiscoveryRequest(
                node=NODE, type_url=resources.CLUSTER, resource_names_subscribe=["data", "no.DC"]
            )
        )
        clusters = await next_message(call)
        assert [r.name for r in clusters.resources] == ["data"]
        assert list(clusters.removed_resources) == ["no.DC"]  # does not exist

        await call.write(
            discovery_pb2.DeltaDiscoveryRequest(
                type_url=resources.ENDPOINTS,
                resource_names_subscribe=["data/zone=a", "data/x in ("],
            )
        )
        first, second = await next_message(call), await next_message(call)
        by_kind = {bool(m.removed_resources): m for m in (first, second)}
        assert list(by_kind[True].removed_resources) == ["data/x in ("]
        zone_a = by_kind[False].resources[0]
        assert zone_a.name == "data/zone=a"
        assignment = endpoint_pb2.ClusterLoadAssignment()
        zone_a.resource.Unpack(assignment)
        assert {e.endpoint.hostname for loc in assignment.endpoints for e in loc.lb_endpoints} == {
            "a"
        }
        await call.write(
            discovery_pb2.DeltaDiscoveryRequest(
                type_url=resources.ENDPOINTS, response_nonce=by_kind[False].nonce
            )
        )

        # A node leaving the selector is a new version without it.
        moved = await register(stub, data("a2", zone="a"))
        update = await next_message(call)
        assert update.resources[0].version == str(moved.revision)

        # Unsubscribed: no subscription left for it.
        await call.write(
            discovery_pb2.DeltaDiscoveryRequest(
                type_url=resources.ENDPOINTS, resource_names_unsubscribe=["data/zone=a"]
            )
        )
        await eventually(lambda: not xds_subscriptions(frontend), message="unsubscribed")
        call.cancel()


async def test_a_delta_client_that_holds_the_version_is_not_sent_it_again(start_frontend, connect):
    frontend: Frontend = await start_frontend()
    stub = connect(frontend)
    held = await register(stub, data("a"))
    async with grpc.aio.insecure_channel(frontend.address) as channel:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).DeltaAggregatedResources()
        await call.write(
            discovery_pb2.DeltaDiscoveryRequest(
                node=NODE,
                type_url=resources.ENDPOINTS,
                resource_names_subscribe=["data"],
                initial_resource_versions={"data": str(held.revision)},
            )
        )
        await eventually(lambda: xds_subscriptions(frontend), message="subscribed")
        # The first response is the next change, not the version the client holds.
        later = await register(stub, data("b"))
        response = await next_message(call)
        assert response.resources[0].version == str(later.revision)
        call.cancel()


async def test_the_push_switch_holds_xds_pushes(start_frontend, connect):
    frontend: Frontend = await start_frontend()
    stub = connect(frontend)
    await register(stub, data("a"))
    async with grpc.aio.insecure_channel(frontend.address) as channel:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
        await call.write(
            discovery_pb2.DiscoveryRequest(
                node=NODE, type_url=resources.ENDPOINTS, resource_names=["data"]
            )
        )
        assert endpoint_ids(await next_message(call)) == {"a"}
        await frontend.operations.set_push_switch(PushChange(enabled=False), "test")
        (subscription,) = xds_subscriptions(frontend)
        assert subscription.held
        sent = counted(frontend, "sotw", "responses")
        added = await register(stub, data("b"))
        await frontend.hub.wait_for_revision(added.revision, 5)
        # Every subscription has been offered the change (the fan-out goes a slice at a time):
        # a stream that was not held would have been offered it by now.
        await eventually(
            lambda: frontend.hub.published_revision >= added.revision, message="fanned out"
        )
        assert subscription.offered_revision < added.revision
        assert counted(frontend, "sotw", "responses") == sent  # held: nothing offered
        await frontend.operations.set_push_switch(PushChange(enabled=True), "test")
        assert endpoint_ids(await next_message(call)) == {"a", "b"}  # the resync
        call.cancel()


async def test_xds_needs_a_token_with_the_xds_scope(start_frontend, tmp_path: Path):
    tokens = tmp_path / "tokens"
    tokens.write_text("mesh xds mesh-token\nfleet register fleet-token\n")
    frontend: Frontend = await start_frontend(auth_tokens_file=str(tokens))

    async def first_answer(token: str) -> grpc.StatusCode:
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        async with grpc.aio.insecure_channel(frontend.address) as channel:
            stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
            call = stub.StreamAggregatedResources(metadata=metadata)
            await call.write(
                discovery_pb2.DiscoveryRequest(
                    node=NODE, type_url=resources.LISTENER, resource_names=["data"]
                )
            )
            try:
                await next_message(call)
            except grpc.aio.AioRpcError as err:
                return err.code()
            call.cancel()
            return grpc.StatusCode.OK

    assert await first_answer("") == grpc.StatusCode.UNAUTHENTICATED
    assert await first_answer("fleet-token") == grpc.StatusCode.PERMISSION_DENIED
    assert await first_answer("mesh-token") == grpc.StatusCode.OK


async def test_xds_streams_count_against_the_per_peer_limit(start_frontend):
    frontend: Frontend = await start_frontend(max_streams_per_peer=1)
    async with grpc.aio.insecure_channel(frontend.address) as channel:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        held = stub.StreamAggregatedResources()
        await held.write(
            discovery_pb2.DiscoveryRequest(
                node=NODE, type_url=resources.LISTENER, resource_names=["data"]
            )
        )
        await next_message(held)
        refused = stub.DeltaAggregatedResources()
        await refused.write(
            discovery_pb2.DeltaDiscoveryRequest(
                node=NODE, type_url=resources.LISTENER, resource_names_subscribe=["data"]
            )
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await next_message(refused)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_streams_per_peer" in (raised.value.details() or "")
        held.cancel()


async def test_shutdown_ends_xds_streams_with_unavailable(start_frontend):
    frontend: Frontend = await start_frontend()
    async with grpc.aio.insecure_channel(frontend.address) as channel:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
        await call.write(
            discovery_pb2.DiscoveryRequest(
                node=NODE, type_url=resources.LISTENER, resource_names=["data"]
            )
        )
        await next_message(call)
        stopping = asyncio.create_task(frontend.stop())
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await next_message(call)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        await stopping
