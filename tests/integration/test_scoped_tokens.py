"""Tokens narrowed to datacenters and types (docs/design.md §14), on every surface: the gRPC API,
the SDK, the HTTP API, the admin port, an xDS stream and the CLI. Each surface allows what the
token's scopes name and refuses the rest with PERMISSION_DENIED (HTTP 403) naming the scope
that was needed; a read wider than the token's scope is refused, never cut."""

from __future__ import annotations

from pathlib import Path

import grpc
import grpc.aio
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from client_sdk import ClientConfig, Node, PermissionDeniedError, RegistryClient
from client_sdk import Scope as SdkScope
from registry_service.app import Frontend
from registry_service.xds import resources
from tests.support.api import key_of, node
from tests.support.cli import run_cli
from tests.support.http import get, post, put
from tests.support.http_api import EventStream, api_url
from tests.support.waiting import next_message

pytestmark = pytest.mark.integration

TOKENS = {
    "fleet-dc1": ("register:dc1/data,watch:dc1", "t-fleet"),
    "sessions": ("watch:*/session", "t-sessions"),
    "mesh": ("xds:dc1/data", "t-mesh"),
    "ops-dc1": ("admin:write:dc1/data,admin:read:dc1", "t-ops"),
    "auditor": ("admin:read:dc2", "t-auditor"),
    "root": ("admin,register,watch", "t-root"),
}


def bearer(name: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {TOKENS[name][1]}"),)


def write_tokens(directory: Path) -> str:
    path = directory / "tokens"
    path.write_text("".join(f"{name} {s} {t}\n" for name, (s, t) in TOKENS.items()))
    return str(path)


@pytest.fixture
async def scoped(tmp_path: Path, start_frontend) -> Frontend:
    """A frontend with the tokens above and three nodes: dc1/data/n1, dc2/data/n2 and
    dc1/session/s1 (registered with the root token)."""
    frontend: Frontend = await start_frontend(auth_tokens_file=write_tokens(tmp_path))
    async with grpc.aio.insecure_channel(frontend.address) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        for message in (node("n1"), node("n2", datacenter="dc2"), node("s1", "session")):
            await stub.Register(
                pb.RegisterRequest(node=message, ttl_seconds=30), metadata=bearer("root")
            )
    return frontend


async def refusal(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value.code(), caught.value.details() or ""


async def test_grpc_writes_are_allowed_in_the_tokens_datacenter_and_type_only(scoped):
    async with grpc.aio.insecure_channel(scoped.address) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        fleet = bearer("fleet-dc1")
        # Register: dc1/data is the token's; dc2/data and dc1/session are not.
        mine = await stub.Register(
            pb.RegisterRequest(node=node("f1"), ttl_seconds=30), metadata=fleet
        )
        assert mine.node.id == "f1"
        for message, scope in (
            (node("f2", datacenter="dc2"), "register:dc2/data"),
            (node("f3", "session"), "register:dc1/session"),
        ):
            code, details = await refusal(
                stub.Register(pb.RegisterRequest(node=message, ttl_seconds=30), metadata=fleet)
            )
            assert code == grpc.StatusCode.PERMISSION_DENIED
            assert details == (
                f"token 'fleet-dc1' lacks {scope} (its register scopes: register:dc1/data)"
            )
        # A malformed key is said to be malformed first, whatever the token.
        code, _ = await refusal(
            stub.Register(
                pb.RegisterRequest(node=node("f4", datacenter="DC2"), ttl_seconds=30),
                metadata=fleet,
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT

        # KeepAlive: one batch renewing a node of the token's and one that is not: each
        # renewal is answered on its own.
        other = await stub.Register(
            pb.RegisterRequest(node=node("f5", datacenter="dc2"), ttl_seconds=30),
            metadata=bearer("root"),
        )
        call = stub.KeepAlive(metadata=fleet)
        await call.write(
            pb.KeepAliveRequest(
                renewals=[
                    pb.Renewal(key=key_of(mine.node), token=mine.token),
                    pb.Renewal(key=key_of(other.node), token=other.token),
                ]
            )
        )
        answer = await next_message(call)
        assert [r.code for r in answer.results] == [0, grpc.StatusCode.PERMISSION_DENIED.value[0]]
        assert answer.results[0].ttl_seconds > 0
        assert answer.results[1].message.startswith("token 'fleet-dc1' lacks register:dc2/data")
        await call.done_writing()

        # Deregister of another datacenter's node: refused, the node stays.
        code, details = await refusal(
            stub.Deregister(
                pb.DeregisterRequest(key=key_of(other.node), token=other.token), metadata=fleet
            )
        )
        assert code == grpc.StatusCode.PERMISSION_DENIED and "register:dc2/data" in details
        listing = await stub.GetNodes(
            pb.GetNodesRequest(scope=pb.Scope(datacenters=["dc2"])), metadata=bearer("root")
        )
        assert "f5" in {n.id for dc in listing.datacenters for n in dc.nodes}
        await stub.Deregister(
            pb.DeregisterRequest(key=key_of(mine.node), token=mine.token), metadata=fleet
        )


async def test_grpc_reads_wider_than_the_token_are_refused_not_cut(scoped):
    async with grpc.aio.insecure_channel(scoped.address) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        sessions = bearer("sessions")
        allowed = await stub.GetNodes(
            pb.GetNodesRequest(scope=pb.Scope(types=["session"])), metadata=sessions
        )
        assert {n.id for dc in allowed.datacenters for n in dc.nodes} == {"s1"}
        for scope, needed in (
            (pb.Scope(), "watch"),
            (pb.Scope(types=["data"]), "watch:*/data"),
            (pb.Scope(datacenters=["dc1"]), "watch:dc1"),
        ):
            code, details = await refusal(
                stub.GetNodes(pb.GetNodesRequest(scope=scope), metadata=sessions)
            )
            assert code == grpc.StatusCode.PERMISSION_DENIED
            assert details.startswith(f"token 'sessions' lacks {needed} (")
            assert "its watch scopes: watch:*/session" in details

        # WatchNodes: the token's scope streams; a wider one ends before any message.
        watch = stub.WatchNodes(
            pb.WatchNodesRequest(scope=pb.Scope(types=["session"])), metadata=sessions
        )
        first = await next_message(watch)
        assert {n.id for dc in first.snapshot.datacenters for n in dc.nodes} == {"s1"}
        watch.cancel()
        refused = stub.WatchNodes(pb.WatchNodesRequest(), metadata=sessions)
        code, details = await refusal(next_message(refused))
        assert code == grpc.StatusCode.PERMISSION_DENIED and "lacks watch" in details

        # A token that names no read at all is refused at the door, as before.
        code, details = await refusal(stub.GetNodes(pb.GetNodesRequest(), metadata=bearer("mesh")))
        assert (code, details) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "token 'mesh' lacks the 'watch' scope this call needs",
        )


async def test_the_sdk_registers_and_reads_within_its_scope_and_says_what_it_lacks(scoped):
    config = ClientConfig(bearer_token=TOKENS["fleet-dc1"][1])
    async with RegistryClient(scoped.address, config=config) as client:
        registration = await client.register(Node("sdk1", "data", "dc1", "10.0.0.1:80"))
        with pytest.raises(PermissionDeniedError) as caught:
            await client.register(Node("sdk2", "data", "dc2", "10.0.0.2:80"))
        assert "lacks register:dc2/data" in str(caught.value)
        listing = await client.get_nodes(SdkScope.of(datacenters="dc1"))
        assert {n.id for n in listing.nodes} >= {"n1", "s1", "sdk1"}
        with pytest.raises(PermissionDeniedError, match=r"lacks watch:dc2 "):
            await client.get_nodes(SdkScope.of(datacenters="dc2"))
        await registration.close()


async def test_the_http_api_serves_the_tokens_datacenters_and_types_only(scoped):
    api = api_url(scoped)
    sessions, auditor = TOKENS["sessions"][1], TOKENS["auditor"][1]
    status, body = await get(f"{api}/v1/nodes?type=session", sessions)
    assert status == 200
    assert [n["id"] for dc in body["datacenters"] for n in dc["nodes"]] == ["s1"]
    assert (await get(f"{api}/v1/nodes/dc1/session/s1", sessions))[0] == 200
    for path, needed in (
        ("/v1/nodes", "watch"),
        ("/v1/nodes?datacenter=dc1", "watch:dc1"),
        ("/v1/nodes/dc1/data/n1", "watch:dc1/data"),
    ):
        status, body = await get(api + path, sessions)
        assert status == 403, path
        assert body["error"]["code"] == "PERMISSION_DENIED"
        assert body["error"]["message"].startswith(f"token 'sessions' lacks {needed} ("), path

    # the event stream: the token's scope streams, a wider one is refused before it starts
    stream = await EventStream.open(f"{api}/v1/watch?type=session", token=sessions)
    try:
        snapshot = await stream.next_change()
        assert [n["id"] for dc in snapshot.data["datacenters"] for n in dc["nodes"]] == ["s1"]
    finally:
        await stream.close()
    refused = await EventStream.open(f"{api}/v1/watch", token=sessions)
    assert refused.status == 403
    assert refused.error["error"]["message"].startswith("token 'sessions' lacks watch (")

    # the audit trail of a node: admin:read on its datacenter; the cluster views: everywhere
    assert (await get(f"{api}/v1/audit/dc2/data/n2", auditor))[0] == 200
    status, body = await get(f"{api}/v1/audit/dc1/data/n1", auditor)
    assert status == 403
    assert body["error"]["message"] == (
        "token 'auditor' lacks admin:read:dc1/data (its admin:read scopes: admin:read:dc2)"
    )
    for path in ("/v1/cluster/suspects", "/v1/cluster/convergence"):
        status, body = await get(api + path, auditor)
        assert status == 403, path
        assert body["error"]["message"] == (
            "token 'auditor' lacks admin:read (every datacenter and type; its admin:read "
            "scopes: admin:read:dc2)"
        )


async def test_the_admin_port_acts_on_the_tokens_nodes_only(scoped):
    admin = f"http://127.0.0.1:{scoped.admin.port}"
    ops, auditor = TOKENS["ops-dc1"][1], TOKENS["auditor"][1]
    # actions on a node: admin:write on its datacenter and type
    status, body = await post(f"{admin}/admin/nodes/dc1/data/n1/maintenance", {}, ops)
    assert (status, body["operator"]) == (200, "token:ops-dc1")
    status, body = await post(f"{admin}/admin/nodes/dc2/data/n2/maintenance", {}, ops)
    assert status == 403
    assert body["error"]["message"] == (
        "token 'ops-dc1' lacks admin:write:dc2/data (its admin:write scopes: admin:write:dc1/data)"
    )
    status, body = await post(f"{admin}/admin/nodes/dc1/session/s1/drain", {}, ops)
    assert status == 403 and "lacks admin:write:dc1/session" in body["error"]["message"]
    status, body = await post(
        f"{admin}/admin/suspects/cancel",
        {"nodes": [{"datacenter": "dc2", "type": "data", "id": "n2"}]},
        ops,
    )
    assert status == 403 and "lacks admin:write:dc2/data" in body["error"]["message"]
    assert (await get(f"{admin}/admin/nodes/dc1/data/n1", ops))[0] == 200
    # what acts on, or shows, the whole cluster needs the plain scope
    status, body = await put(f"{admin}/admin/push", {"enabled": False}, ops)
    assert status == 403 and body["error"]["message"].startswith(
        "token 'ops-dc1' lacks admin:write (every datacenter and type;"
    )
    for path in ("/admin/subscribers", "/admin/convergence", "/admin/audit", "/admin/nodes"):
        status, body = await get(admin + path, auditor)
        assert status == 403, path
        assert body["error"]["message"].startswith("token 'auditor' lacks admin:read ("), path
    # a narrowed admin:read does not grant the metrics, which cover every datacenter
    status, body = await get(f"{admin}/metrics", auditor)
    assert status == 403 and "lacks the 'metrics' scope" in body["error"]["message"]
    # reads of its datacenter's nodes
    status, body = await get(f"{admin}/admin/audit?datacenter=dc2&type=data&id=n2", auditor)
    assert status == 200 and body["node"] == "dc2/data/n2"
    status, body = await get(f"{admin}/admin/nodes?datacenter=dc2", auditor)
    assert status == 200 and [n["id"] for n in body["datacenters"]["dc2"]] == ["n2"]


async def test_an_xds_stream_reads_the_resources_its_token_covers(scoped):
    async with grpc.aio.insecure_channel(scoped.address) as channel:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        allowed = stub.StreamAggregatedResources(metadata=bearer("mesh"))
        await allowed.write(
            discovery_pb2.DiscoveryRequest(
                node=base_pb2.Node(id="mesh-client"),
                type_url=resources.ENDPOINTS,
                resource_names=["data.dc1"],
            )
        )
        endpoints = await next_message(allowed)
        assert endpoints.type_url == resources.ENDPOINTS
        allowed.cancel()
        for protocol in ("sotw", "delta"):
            if protocol == "sotw":
                call = stub.StreamAggregatedResources(metadata=bearer("mesh"))
                request = discovery_pb2.DiscoveryRequest(
                    type_url=resources.LISTENER, resource_names=["data"]
                )
            else:
                call = stub.DeltaAggregatedResources(metadata=bearer("mesh"))
                request = discovery_pb2.DeltaDiscoveryRequest(
                    type_url=resources.ENDPOINTS, resource_names_subscribe=["data.dc2"]
                )
            await call.write(request)
            code, details = await refusal(next_message(call))
            needed = "xds:*/data" if protocol == "sotw" else "xds:dc2/data"
            assert code == grpc.StatusCode.PERMISSION_DENIED, protocol
            assert details.startswith(
                f"xDS resource '{request_name(request)}': token 'mesh' "
                f"lacks {needed} (its xds scopes: xds:dc1/data)"
            ), details


def request_name(request) -> str:
    names = getattr(request, "resource_names", None) or request.resource_names_subscribe
    return names[0]


async def test_the_cli_says_which_scope_its_token_lacks(scoped):
    endpoints = ("--endpoints", scoped.address)
    fleet = {"NODEREGISTRY_TOKEN": TOKENS["fleet-dc1"][1]}
    code, out, err = await run_cli(
        "register", *endpoints, "--id", "c2", "--type", "data", "--datacenter", "dc2",
        "--address", "10.9.9.9:80", env=fleet,
    )  # fmt: skip
    assert (code, out) == (1, "")
    assert err == (
        "error: PERMISSION_DENIED: token 'fleet-dc1' lacks register:dc2/data (its register "
        "scopes: register:dc1/data) (use a token with that scope)\n"
    )
    sessions = {"NODEREGISTRY_TOKEN": TOKENS["sessions"][1]}
    code, out, err = await run_cli("nodes", *endpoints, "--type", "session", env=sessions)
    assert code == 0, err
    assert "s1" in out
    code, _, err = await run_cli("nodes", *endpoints, env=sessions)
    assert code == 1 and err.startswith("error: PERMISSION_DENIED: token 'sessions' lacks watch (")
    admin = ("--admin-endpoints", f"http://127.0.0.1:{scoped.admin.port}")
    ops = {"NODEREGISTRY_TOKEN": TOKENS["ops-dc1"][1]}
    code, _, err = await run_cli("admin", "node", "maintenance", "dc1/data/n1", *admin, env=ops)
    assert code == 0, err
    code, _, err = await run_cli("admin", "node", "maintenance", "dc2/data/n2", *admin, env=ops)
    assert code == 1
    assert "PERMISSION_DENIED: token 'ops-dc1' lacks admin:write:dc2/data" in err
    assert len(err.splitlines()) == 1
