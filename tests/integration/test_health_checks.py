"""Health checks the registry runs (docs/design.md §13), against real services on loopback (a
gRPC health server, an HTTP server, a TCP listener), real frontends and real etcd, through the
SDK: a failing node turns FAILING within interval x failures + 1 s, stays listed, is not offered
to healthy-only readers, and passes again after its passing threshold."""

from __future__ import annotations

import grpc
import pytest
from noderegistry.v1 import registry_pb2 as pb

from client_sdk import (
    Check,
    EventType,
    Health,
    Node,
    NodeList,
    RegistryClient,
    RemovalReason,
    Scope,
)
from registry_service.domain import AuditCause, NodeKey
from tests.support.health_servers import GrpcHealthServer, HttpHealthServer, TcpListener
from tests.support.ports import free_port
from tests.support.sdk import FAST
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

INTERVAL = 1.0
FAILURES = 2
PASSES = 2
# A failure is seen within this (the bound): the next probe within an interval, the
# last of `failures` probes within interval x failures, then one write and the watch.
FAILING_BOUND = INTERVAL * FAILURES + 1
PASSING_BOUND = INTERVAL * PASSES + 1


def _node(node_id: str) -> Node:
    # The node's own port serves nothing: each check names the port it probes.
    return Node(node_id, "data", "dc1", f"127.0.0.1:{free_port()}")


def _health(nodes: NodeList, node_id: str) -> Health | None:
    return next((node.health for node in nodes if node.id == node_id), None)


def _check(kind: str, port: int, target: str = "") -> Check:
    timing = {
        "interval_seconds": INTERVAL,
        "timeout_seconds": 0.5,
        "failures_before_failing": FAILURES,
        "passes_before_passing": PASSES,
    }
    if kind == "grpc":
        return Check.grpc(target, port=port, **timing)
    if kind == "http":
        return Check.http(target or "/", port=port, **timing)
    return Check.tcp(port=port, **timing)


@pytest.fixture
async def services():
    """The services a test checks; stopped after it."""
    started: list[GrpcHealthServer | HttpHealthServer | TcpListener] = []

    async def start(service):
        started.append(service)
        return await service.start()

    yield start
    for service in started:
        await service.stop()


async def test_a_failing_grpc_check_turns_the_node_failing_yet_listed_then_passing_again(
    start_frontend, services
):
    service = await services(GrpcHealthServer())
    await service.set("data.v1", True)
    frontend = await start_frontend()
    async with RegistryClient(frontend.address, config=FAST) as client:
        registration = await client.register(
            _node("d1"), checks=[_check("grpc", service.port, "data.v1")]
        )
        assert registration.node.health is Health.PASSING  # nothing is known against it yet
        everything = await client.watch_nodes(Scope.of(types="data"))
        healthy = await client.watch_nodes(Scope.of(types="data", healthy_only=True))
        events = healthy.events()
        await eventually(lambda: service.probes.count("data.v1") >= 1, timeout=INTERVAL + 3)

        # 1. The service stops serving: FAILING within its bound, after `failures` probes.
        failed_at = service.probes.seen[-1].at
        await service.set("data.v1", False)
        listed = await everything.wait_for(
            lambda nodes: _health(nodes, "d1") is Health.FAILING, timeout=FAILING_BOUND
        )
        assert len(service.probes.of("data.v1", since=failed_at)) >= FAILURES
        # Still a member, UP, listed; not offered to healthy-only readers.
        (node,) = listed.nodes
        assert (node.id, node.status.value, node.available) == ("d1", "UP", False)
        await healthy.wait_for(lambda nodes: len(nodes) == 0, timeout=2)
        removed = await anext(aiter(events))  # the snapshot's node, then its removal
        if removed.type is EventType.ADDED:
            removed = await anext(aiter(events))
        assert (removed.type, removed.reason) == (EventType.REMOVED, RemovalReason.UNHEALTHY)
        assert len(await client.get_nodes(Scope.of(types="data", healthy_only=True))) == 0
        assert _health(await client.get_nodes(Scope.of(types="data")), "d1") is Health.FAILING

        # 2. The check's output is in the audit, with its cause.
        trail = await frontend.operations.audit(NodeKey("dc1", "data", "d1"))
        (failing,) = [entry for entry in trail if entry.cause is AuditCause.HEALTH_FAILING]
        assert "NOT_SERVING" in failing.detail and "data.v1" in failing.detail

        # 3. Serving again: PASSING after `passes` passed probes, and offered again.
        recovered_at = service.probes.seen[-1].at
        await service.set("data.v1", True)
        await everything.wait_for(
            lambda nodes: _health(nodes, "d1") is Health.PASSING, timeout=PASSING_BOUND
        )
        assert len(service.probes.of("data.v1", since=recovered_at)) >= PASSES
        back = await healthy.wait_for(lambda nodes: len(nodes) == 1, timeout=2)
        assert back.nodes[0].available
        added = await anext(aiter(events))
        assert (added.type, added.node.id) == (EventType.ADDED, "d1")
        events.close()


@pytest.mark.parametrize("kind", ["http", "tcp"])
async def test_http_and_tcp_checks_turn_a_node_failing_and_passing(start_frontend, services, kind):
    service = await services(HttpHealthServer() if kind == "http" else TcpListener())
    frontend = await start_frontend()
    async with RegistryClient(frontend.address, config=FAST) as client:
        await client.register(_node("w1"), checks=[_check(kind, service.port, "/healthz")])
        watch = await client.watch_nodes(Scope.of(types="data"))
        # 1. Failing: a 503, or nothing listening on the port any more.
        if isinstance(service, HttpHealthServer):
            await eventually(lambda: service.probes.count("/healthz") >= 1, timeout=INTERVAL + 3)
            service.healthy = False
        else:
            await eventually(lambda: service.accepted >= 1, timeout=INTERVAL + 3)
            await service.stop()
        await watch.wait_for(
            lambda nodes: _health(nodes, "w1") is Health.FAILING, timeout=FAILING_BOUND
        )
        # 2. Passing again.
        if isinstance(service, HttpHealthServer):
            service.healthy = True
        else:
            await service.start()
        await watch.wait_for(
            lambda nodes: _health(nodes, "w1") is Health.PASSING, timeout=PASSING_BOUND
        )
    if isinstance(service, HttpHealthServer):
        # The frontend names itself to the service it probes.
        assert service.probes.seen[0].user_agent.endswith(frontend.frontend_id)


async def test_an_owner_reports_its_own_health_when_the_registry_runs_no_check(start_frontend):
    frontend = await start_frontend()
    async with RegistryClient(frontend.address, config=FAST) as client:
        registration = await client.register(_node("s1"))
        assert registration.node.health is Health.UNCHECKED and registration.node.available
        healthy = await client.watch_nodes(Scope.of(types="data", healthy_only=True))
        await healthy.wait_for(lambda nodes: len(nodes) == 1, timeout=5)
        node = await registration.update(health=Health.FAILING)
        assert node.health is Health.FAILING and not node.available
        await healthy.wait_for(lambda nodes: len(nodes) == 0, timeout=5)
        await registration.update(health=Health.PASSING)
        await healthy.wait_for(lambda nodes: len(nodes) == 1, timeout=5)
    trail = await frontend.operations.audit(NodeKey("dc1", "data", "s1"))
    assert [entry.cause for entry in trail] == [
        AuditCause.REGISTERED,
        AuditCause.HEALTH_FAILING,
        AuditCause.HEALTH_PASSING,
        AuditCause.DEREGISTERED,
    ]


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (pb.Check(kind=pb.CHECK_KIND_GRPC, interval_seconds=0.2), "is below the limit 1"),
        (
            pb.Check(kind=pb.CHECK_KIND_TCP, interval_seconds=5, timeout_seconds=6),
            "longer than its interval_seconds",
        ),
        (pb.Check(kind=pb.CHECK_KIND_HTTP, timeout_seconds=30), "health_check_max_timeout"),
        (pb.Check(kind=pb.CHECK_KIND_HTTP, path="healthz"), "must start with /"),
        (pb.Check(kind=pb.CHECK_KIND_TCP, service="x"), "for gRPC checks only"),
        (pb.Check(), "is not GRPC (1), HTTP (2) or TCP (3)"),
    ],
)
async def test_a_malformed_check_is_refused_naming_the_field_and_the_limit(
    start_frontend, connect, check, message
):
    stub = connect(await start_frontend())
    node = pb.Node(id="b1", type="data", datacenter="dc1", address="127.0.0.1:7000")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Register(pb.RegisterRequest(node=node, checks=[check]))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "checks[0]." in refused.value.details() and message in refused.value.details()


async def test_more_checks_than_the_limit_are_refused(start_frontend, connect):
    stub = connect(await start_frontend(health_checks_max_per_node=2))
    node = pb.Node(id="b2", type="data", datacenter="dc1", address="127.0.0.1:7000")
    checks = [pb.Check(kind=pb.CHECK_KIND_TCP)] * 3
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Register(pb.RegisterRequest(node=node, checks=checks))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == (
        "checks has 3 entries; the limit is 2 (health_checks_max_per_node)"
    )
