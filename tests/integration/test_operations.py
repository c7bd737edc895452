"""Operations: metrics, readiness, the push switch, acknowledgements, admin auth, shutdown, logs."""

from __future__ import annotations

import asyncio
import json
import re
import sys

import grpc
import pytest
from noderegistry.v1 import registry_pb2 as pb

from client_sdk import ClientConfig, Node, RegistrationState, RegistryClient
from registry_service.errors import StoreUnavailableError
from registry_service.store._etcdpb import rpc_pb2 as etcd_pb
from tests.support.api import WatchRecorder, node, register
from tests.support.frontends import stub as stub_for
from tests.support.http import get, metric, put
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
FAST = ClientConfig(call_timeout_seconds=3, retry_initial_seconds=0.05, retry_max_seconds=0.5)


def admin_url(frontend) -> str:
    return f"http://127.0.0.1:{frontend.admin.port}"


async def test_metrics_follow_nodes_subscribers_and_rpcs(start_frontend, connect):
    frontend = await start_frontend()
    admin, stub = admin_url(frontend), connect(frontend)
    nodes = lambda: metric(admin, "noderegistry_nodes", datacenter="dc1", type="data")  # noqa: E731

    recorder = WatchRecorder(stub).start()
    await eventually(lambda: metric(admin, "noderegistry_watch_subscribers"), message="subscriber")
    await register(stub, node("m1"), ttl=3)
    with pytest.raises(grpc.aio.AioRpcError):
        await register(stub, node("BAD"))
    await recorder.wait_for_node("m1")
    await eventually(lambda: metric(admin, "noderegistry_evictor_leader"), message="leads")
    assert await nodes() == 1
    assert (
        await metric(admin, "grpc_server_handled_total", grpc_method="Register", grpc_code="OK")
        == 1
    )
    assert (
        await metric(
            admin, "grpc_server_handled_total", grpc_method="Register", grpc_code="INVALID_ARGUMENT"
        )
        == 1
    )
    assert (
        await metric(
            admin, "grpc_server_started_total", grpc_method="WatchNodes", grpc_type="server_stream"
        )
        == 1
    )
    for stage in ("commit_to_received", "received_to_queued", "queued_to_written"):
        assert await metric(admin, "noderegistry_change_stage_seconds_count", stage=stage) >= 1
    watch_sent = await metric(admin, "grpc_server_msg_sent_total", grpc_method="WatchNodes")
    assert watch_sent >= 2  # the snapshot and m1's delta
    assert await metric(admin, "grpc_server_msg_received_total", grpc_method="Register") == 2
    assert await metric(admin, "noderegistry_watch_events_sent_total") >= 1
    assert await metric(admin, "noderegistry_etcd_request_seconds_count", operation="txn") >= 1

    # m1 stops renewing: it expires, is evicted, and the gauge follows.
    await recorder.wait_for_node("m1", present=False, timeout=10)
    await eventually(lambda: metric(admin, "noderegistry_evictions_total", cause="EXPIRED"))
    assert await nodes() == 0
    await recorder.close()
    await eventually(lambda: _is_zero(metric(admin, "noderegistry_watch_subscribers")))
    assert (
        await metric(
            admin, "grpc_server_handled_total", grpc_method="WatchNodes", grpc_code="CANCELLED"
        )
        == 1
    )


async def _is_zero(value) -> bool:
    return await value == 0


async def test_readyz_stays_ready_and_says_degraded_while_etcd_is_down(own_etcd, start_frontend):
    # Ready means "can serve": without etcd the frontend serves its last lists (stale), so /readyz
    # stays 200 and says degraded, with the metric; 503 is for not loaded or shutting down.
    frontend = await start_frontend(own_etcd.endpoint)
    admin = admin_url(frontend)
    assert (await get(f"{admin}/healthz"))[0] == 200
    status, body = await get(f"{admin}/readyz")
    assert (status, body["ready"], body["degraded"], body["reason"]) == (200, True, False, "ok")
    assert await metric(admin, "noderegistry_store_connected") == 1

    own_etcd.stop()
    status, body = await eventually(lambda: _degraded(f"{admin}/readyz"), timeout=20)
    assert status == 200 and body["ready"] and not body["store_connected"]
    assert "etcd" in body["reason"] and body["reason"].startswith("degraded")
    assert await metric(admin, "noderegistry_store_connected") == 0
    own_etcd.start()
    await asyncio.to_thread(own_etcd.wait_ready)
    status, body = await eventually(lambda: _not_degraded(f"{admin}/readyz"), timeout=20)
    assert status == 200 and body["reason"] == "ok"
    assert await metric(admin, "noderegistry_store_connected") == 1

    stopping = asyncio.create_task(frontend.stop())
    status, body = await eventually(lambda: _status_and_body(f"{admin}/readyz", 503), timeout=10)
    assert body == {**body, "ready": False, "reason": "shutting down"}
    await stopping


async def _degraded(url: str):
    status, body = await get(url)
    return (status, body) if body["degraded"] else None


async def _not_degraded(url: str):
    status, body = await get(url)
    return None if body["degraded"] else (status, body)


async def _status_and_body(url: str, wanted: int):
    status, body = await get(url)
    return (status, body) if status == wanted else None


async def _status_is(url: str, status: int) -> bool:
    return (await get(url))[0] == status


async def test_push_switch_holds_deltas_and_resumes_with_a_snapshot(start_frontend, connect):
    frontend = await start_frontend(admin_token="s3cret", watch_progress_seconds=0.2)
    admin, stub = admin_url(frontend), connect(frontend)
    recorder = WatchRecorder(stub).start()
    await recorder.wait_for(lambda r: r.snapshots())
    assert (await put(f"{admin}/admin/push", {"enabled": False}))[0] == 401
    status, body = await put(f"{admin}/admin/push", {"enabled": False}, "s3cret")
    assert status == 200 and body["enabled"] is False
    assert body["changed_by"] == "token:admin_token"
    assert (await get(f"{admin}/admin/push"))[0] == 401  # reads need the token too
    assert (await get(f"{admin}/admin/push", "s3cret"))[1]["enabled"] is False

    held = await register(stub, node("held"))
    await eventually(lambda: recorder.kinds().count("progress") >= 3)  # time passes, no delta
    assert "held" not in recorder.nodes
    assert all(
        m.progress.revision < held.revision
        for m in recorder.messages
        if m.WhichOneof("message") == "progress"
    )

    assert (await put(f"{admin}/admin/push", {"enabled": True}, "s3cret"))[0] == 200
    await recorder.wait_for_node("held")
    snapshot = recorder.snapshots()[-1]
    assert snapshot.resync and snapshot.resync_reason == pb.RESYNC_REASON_PUSH_RESUMED
    assert not recorder.violations
    assert (await put(f"{admin}/admin/push", {"on": 1}, "s3cret"))[0] == 400
    await recorder.close()


async def test_admin_shows_subscribers_and_their_acknowledged_revision(start_frontend):
    frontend = await start_frontend()
    admin = admin_url(frontend)
    async with RegistryClient(frontend.address, config=FAST) as client:
        watch = await client.watch_nodes()
        await client.register(Node("a1", "data", "dc1", "a1:1"))
        await watch.wait_for(lambda nodes: len(nodes) == 1, 5)

        async def converged() -> bool:
            subscribers = (await get(f"{admin}/admin/subscribers"))[1]["subscribers"]
            return bool(subscribers) and subscribers[0]["converged"]

        await eventually(converged, timeout=10, message="subscriber acknowledged")
        body = (await get(f"{admin}/admin/subscribers"))[1]
        (subscriber,) = body["subscribers"]
        assert subscriber["acked_revision"] == body["revision"]
        assert subscriber["peer"].startswith("ipv4:127.0.0.1:")
        assert await metric(admin, "noderegistry_watch_subscribers_converged") == 1
        nodes = (await get(f"{admin}/admin/nodes?type=data"))[1]
        assert [n["id"] for n in nodes["datacenters"]["dc1"]] == ["a1"]
        evictor = (await get(f"{admin}/admin/evictor"))[1]
        assert evictor["leader"] is True and evictor["frontend"] == frontend.frontend_id


async def test_sigterm_during_streams_clients_fail_over_and_no_node_is_removed(
    etcd, spawn_frontend, start_frontend, connect
):
    doomed = await spawn_frontend(etcd.endpoint)
    survivor = await start_frontend()
    recorder = WatchRecorder(connect(survivor)).start()
    async with RegistryClient([doomed.address, survivor.address], config=FAST) as client:
        registration = await client.register(Node("calm", "data", "dc1", "calm:1"), ttl_seconds=3)
        watch = await client.watch_nodes()
        await recorder.wait_for_node("calm")
        assert await asyncio.to_thread(doomed.terminate) == 0
        await eventually(lambda: watch.reconnects >= 1, timeout=10)
        later = await client.register(Node("later", "data", "dc1", "later:1"))
        await watch.wait_for(lambda nodes: {n.id for n in nodes} == {"calm", "later"}, 10)
        await eventually(lambda: registration.state is RegistrationState.ACTIVE)
        assert [c for c in recorder.changes if c.type == pb.EVENT_TYPE_REMOVED] == []
        await later.close()
    await recorder.close()


async def test_json_logs_carry_request_ids(etcd, tmp_path):
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "registry_service",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--etcd-endpoints",
        etcd.endpoint,
        "--cluster",
        "jsonlogs",
        "--log-format",
        "json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    async with asyncio.timeout(30):
        line = (await process.stdout.readline()).decode()
    address = line.split("serving on ")[1].split()[0]
    channel, stub = stub_for(address)
    registered = await stub.Register(
        pb.RegisterRequest(node=node("logged"), ttl_seconds=30),
        metadata=(("x-request-id", "req-join-1"),),
    )
    await stub.Deregister(
        pb.DeregisterRequest(
            key=pb.NodeKey(datacenter="dc1", type="data", id="logged"), token=registered.token
        )
    )
    await channel.close()
    process.terminate()
    async with asyncio.timeout(30):
        _, err = await process.communicate()
    records = [json.loads(line) for line in err.decode().splitlines() if line.strip()]
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["time"]) for r in records)
    assert any(r["logger"] == "registry_service.app" for r in records)
    transitions = [r for r in records if "transition" in r]
    assert [(r["transition"], r["cause"]) for r in transitions] == [
        ("registered", "REGISTERED"),
        ("deregistered", "DEREGISTERED"),
    ]
    joined, left = transitions
    assert joined["request_id"] == "req-join-1" and left["request_id"] not in ("", "-")
    assert joined["level"] == "INFO"
    assert (joined["datacenter"], joined["type"], joined["id"]) == ("dc1", "data", "logged")
    assert joined["incarnation"] == left["incarnation"] == 1
    assert joined["revision"] == registered.revision < left["revision"]


async def test_etcd_request_errors_are_counted_by_operation_and_code(start_frontend):
    frontend = await start_frontend()
    with pytest.raises(StoreUnavailableError):
        await frontend.client.kv.range(etcd_pb.RangeRequest(key=b"x", revision=10**12))  # future
    assert (
        await metric(
            admin_url(frontend),
            "noderegistry_etcd_request_errors_total",
            operation="range",
            code="OUT_OF_RANGE",
        )
        == 1
    )
