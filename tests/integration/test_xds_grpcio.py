"""xDS with a client no one here wrote: grpcio's own xDS resolver (`GRPC_XDS_BOOTSTRAP`, target
`xds:///data`), in a process of its own, calling tiny gRPC backends registered as nodes.

Each condition is waited on with a timeout; "leaves the picks within a second" is that timeout
(LEAVES_WITHIN_SECONDS), never a measured time.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc.aio
import pytest
from envoy.admin.v3 import config_dump_shared_pb2
from envoy.config.core.v3 import health_check_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from registry_service.app import Frontend
from registry_service.domain import NodeKey, NodeStatus
from tests.support.api import key_of, register, revoke_member_lease
from tests.support.health_servers import GrpcHealthServer
from tests.support.waiting import eventually
from tests.support.xds_harness import (
    Backend,
    Picks,
    start_python_client,
    wait_csds,
    write_bootstrap,
)

pytestmark = pytest.mark.integration

LEAVES_WITHIN_SECONDS = 1.0
# A check every second that turns after one probe: seen within an interval and a write (its
# bound, interval x 1 + 1 s), then by the client within LEAVES_WITHIN_SECONDS.
CHECK_INTERVAL_SECONDS = 1.0
CHECK_SEEN_WITHIN_SECONDS = CHECK_INTERVAL_SECONDS * 1 + 1 + LEAVES_WITHIN_SECONDS
# Over budget at once: a silent node turns SUSPECT instead of going (self-preservation).
SUSPECT_AT_ONCE = {
    "eviction_budget_minimum": 0,
    "eviction_budget_type_minimum": 0,
    "eviction_budget_ratio": 0.0,
    "self_preservation_min_members": 0,  # a handful of nodes: held all the same
}


def backend_node(backend: Backend, **metadata: str) -> pb.Node:
    return pb.Node(
        id=backend.name, type="data", datacenter="dc1", address=backend.address, metadata=metadata
    )


@pytest.fixture
async def backends() -> AsyncIterator[Callable[[str], Awaitable[Backend]]]:
    started: list[Backend] = []

    async def start(name: str) -> Backend:
        backend = await Backend(name).start()
        started.append(backend)
        return backend

    yield start
    for backend in started:
        await backend.stop()


@pytest.fixture
def clients(tmp_path: Path) -> Any:
    started: list[Picks] = []

    def start(target: str, frontends: list[str], node: dict[str, Any] | None = None) -> Picks:
        bootstrap = write_bootstrap(tmp_path / f"bootstrap-{len(started)}.json", frontends, node)
        picks = start_python_client(target, bootstrap, tmp_path / "xds-client.log")
        started.append(picks)
        return picks

    yield start
    for picks in started:
        picks.close()


async def leaves(picks: Picks, name: str, mark: int) -> None:
    await eventually(
        lambda: (recent := picks.recent(10, mark)) is not None and name not in recent,
        timeout=LEAVES_WITHIN_SECONDS,
        message=f"{name} out of the picks",
    )


async def test_grpcio_xds_client_follows_the_up_nodes(
    start_frontend, connect, backends, clients, etcd_client, cluster
):
    # 1. five backends registered UP; a grpcio client on xds:///data spreads over all five.
    frontend: Frontend = await start_frontend(**SUSPECT_AT_ONCE)
    stub = connect(frontend)
    nodes = {}
    for name in ("b1", "b2", "b3", "b4", "b5"):
        backend = await backends(name)
        nodes[name] = await register(stub, backend_node(backend), ttl=30)
    picks = clients("xds:///data", [frontend.address])
    await eventually(
        lambda: set(picks.recent(20) or ()) == set(nodes),
        timeout=20,
        message="picks spread over every UP node",
    )

    # 2. deregistered, DRAINING, OUT_OF_SERVICE, SUSPECT: each leaves the picks.
    mark = picks.mark()
    await stub.Deregister(
        pb.DeregisterRequest(key=key_of(nodes["b1"].node), token=nodes["b1"].token)
    )
    await leaves(picks, "b1", mark)

    b2 = nodes["b2"].node
    draining = pb.Node(
        id=b2.id,
        type=b2.type,
        datacenter=b2.datacenter,
        address=b2.address,
        status=pb.NODE_STATUS_DRAINING,
    )
    mark = picks.mark()
    await register(stub, draining, ttl=30, token=nodes["b2"].token)
    await leaves(picks, "b2", mark)

    mark = picks.mark()
    await frontend.operations.set_override(
        NodeKey("dc1", "data", "b3"), NodeStatus.OUT_OF_SERVICE, "test"
    )
    await leaves(picks, "b3", mark)

    await revoke_member_lease(etcd_client, cluster, "dc1/data/b4")
    await eventually(
        lambda: (
            (r := frontend.hub.registration(NodeKey("dc1", "data", "b4"))) is not None
            and r.node.status is NodeStatus.SUSPECT
        ),
        timeout=15,
        message="b4 SUSPECT",
    )
    mark = picks.mark()
    await leaves(picks, "b4", mark)
    assert set(picks.recent(10) or ()) == {"b5"}

    # 3. a new node joins the picks.
    b6 = await backends("b6")
    await register(stub, backend_node(b6), ttl=30)
    await eventually(
        lambda: set(picks.recent(10) or ()) == {"b5", "b6"}, timeout=10, message="b6 joins"
    )


async def test_a_node_failing_its_health_check_leaves_the_picks_and_comes_back(
    start_frontend, connect, backends, clients
):
    """A node FAILING its check is UNHEALTHY in EDS though its status stays UP: a stock client
    stops picking it once the check fails, and picks it again once it passes."""
    health = await GrpcHealthServer().start()
    try:
        await health.set("data.v1", True)
        frontend: Frontend = await start_frontend()
        stub = connect(frontend)
        checked, other = await backends("checked"), await backends("other")
        check = pb.Check(
            kind=pb.CHECK_KIND_GRPC,
            service="data.v1",
            port=health.port,
            interval_seconds=CHECK_INTERVAL_SECONDS,
            timeout_seconds=0.5,
            failures_before_failing=1,
            passes_before_passing=1,
        )
        await register(stub, backend_node(checked), ttl=30, checks=[check])
        await register(stub, backend_node(other), ttl=30)
        picks = clients("xds:///data", [frontend.address])
        await eventually(
            lambda: set(picks.recent(20) or ()) == {"checked", "other"},
            timeout=20,
            message="picks spread over both nodes",
        )

        mark = picks.mark()
        await health.set("data.v1", False)
        await eventually(
            lambda: (recent := picks.recent(10, mark)) is not None and "checked" not in recent,
            timeout=CHECK_SEEN_WITHIN_SECONDS,
            message="the failing node out of the picks",
        )
        registration = frontend.hub.registration(NodeKey("dc1", "data", "checked"))
        assert registration is not None and registration.node.status is NodeStatus.UP

        await health.set("data.v1", True)
        await eventually(
            lambda: "checked" in (picks.recent(20) or ()),
            timeout=CHECK_SEEN_WITHIN_SECONDS,
            message="the node picked again once it passes",
        )
    finally:
        await health.stop()


async def test_csds_shows_the_resources_the_client_holds(
    start_frontend, connect, backends, clients
):
    frontend: Frontend = await start_frontend()
    stub = connect(frontend)
    up, draining = await backends("up-1"), await backends("draining-1")
    await register(stub, backend_node(up), ttl=30)
    await register(
        stub,
        pb.Node(
            id="draining-1",
            type="data",
            datacenter="dc1",
            address=draining.address,
            status=pb.NODE_STATUS_DRAINING,
        ),
        ttl=30,
    )
    picks = clients("xds:///data", [frontend.address])
    await eventually(lambda: picks.recent(5) == ["up-1"] * 5, timeout=20, message="up-1 picked")

    port = await wait_csds(picks)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        status = csds_pb2_grpc.ClientStatusDiscoveryServiceStub(channel)
        response = await status.FetchClientStatus(csds_pb2.ClientStatusRequest())
    held = {
        (config.type_url.rsplit(".", 1)[-1], config.name): config
        for config in response.config[0].generic_xds_configs
    }
    assert set(held) == {
        ("Listener", "data"),
        ("Cluster", "data"),
        ("ClusterLoadAssignment", "data"),
    }
    assert all(c.client_status == config_dump_shared_pb2.ACKED for c in held.values())
    assignment = endpoint_pb2.ClusterLoadAssignment()
    held[("ClusterLoadAssignment", "data")].xds_config.Unpack(assignment)
    endpoints = {
        e.endpoint.hostname: e for locality in assignment.endpoints for e in locality.lb_endpoints
    }
    assert set(endpoints) == {"up-1", "draining-1"}
    assert endpoints["up-1"].endpoint.address.socket_address.port_value == up.port
    assert endpoints["draining-1"].health_status == health_check_pb2.DRAINING
    assert held[("ClusterLoadAssignment", "data")].version_info.isdigit()


async def test_a_selector_target_receives_only_matching_nodes(
    start_frontend, connect, backends, clients
):
    frontend: Frontend = await start_frontend()
    stub = connect(frontend)
    for name, zone in (("a-1", "a"), ("a-2", "a"), ("b-1", "b")):
        await register(stub, backend_node(await backends(name), zone=zone), ttl=30)
    canary = await backends("a-canary")
    await register(stub, backend_node(canary, zone="a", canary="yes"), ttl=30)
    picks = clients("xds:///data/zone=a,!canary", [frontend.address])
    await eventually(
        lambda: set(picks.recent(20) or ()) == {"a-1", "a-2"}, timeout=20, message="zone a only"
    )
    assert all(
        line in ("pick a-1", "pick a-2") for line in picks.since(0) if line.startswith("pick")
    )


@pytest.mark.parametrize("lb_policy", ["ROUND_ROBIN", "RING_HASH"])
async def test_weights_shift_the_share_of_calls(
    start_frontend, connect, backends, clients, lb_policy
):
    # Round robin: two zones (localities), weighing their endpoints' weights; ring hash: one
    # zone, endpoint weights. Either way `heavy` (weight 3) takes about 3/4 of the calls.
    frontend: Frontend = await start_frontend()
    stub = connect(frontend)
    heavy, light = await backends("heavy"), await backends("light")
    same_zone = lb_policy == "RING_HASH"
    await register(stub, backend_node(heavy, zone="a", weight="3"), ttl=30)
    await register(stub, backend_node(light, zone="a" if same_zone else "b", weight="1"), ttl=30)
    node = {"id": f"client-{secrets.token_hex(3)}", "metadata": {"lb_policy": lb_policy}}
    picks = clients("xds:///data", [frontend.address], node)
    await eventually(
        lambda: set(picks.recent(20) or ()) == {"heavy", "light"}, timeout=20, message="both"
    )
    mark = picks.mark()
    shares = await eventually(lambda: picks.shares(400, mark), timeout=60, message="400 calls")
    share = shares["heavy"] / 400
    assert 0.6 <= share <= 0.9, shares  # 0.75 expected; 0.6 is five standard deviations off


async def test_the_client_moves_on_when_its_frontend_dies(etcd, spawn_frontend, backends, clients):
    # 1. two frontend processes; the bootstrap's one server_uri resolves to both.
    first = await spawn_frontend(etcd.endpoint)
    second = await spawn_frontend(etcd.endpoint)
    async with grpc.aio.insecure_channel(second.address) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        await register(stub, backend_node(await backends("n1")), ttl=30)
        picks = clients("xds:///data", [first.address, second.address])
        await eventually(lambda: picks.recent(5) == ["n1"] * 5, timeout=20, message="n1")

        # 2. the frontend the client follows dies; calls go on, and a node that joins now
        # reaches the client through the other frontend.
        first.kill()
        await register(stub, backend_node(await backends("n2")), ttl=30)
        await eventually(
            lambda: set(picks.recent(10) or ()) == {"n1", "n2"}, timeout=30, message="n2 joins"
        )
        mark = picks.mark()
        await eventually(lambda: picks.recent(20, mark), timeout=10, message="calls go on")
