"""One cluster, one control surface (docs/design.md §9, issue 12): two frontends on one etcd, one of
them a supervisor with two workers, operated with the `noderegistry admin` CLI.

Plan of the scenario tests:
1. Frontend A runs in this process, frontend B as `serve --workers 2`; each of the three serving
   processes gets watchers (B's through separate connections, until both workers have some).
2. One CLI command against A's admin port switches pushes off: every worker of both follows
   (read from each process's own gauge); a change is held everywhere; a restarted frontend comes
   up off; `push on` resyncs every watcher (PUSH_RESUMED) with the held change.
3. Convergence asked of A, then of B's host port, lists the same subscribers: all of both.
"""

from __future__ import annotations

import json
import time

import grpc.aio
import pytest
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from client_sdk import ClientConfig, RegistryClient
from tests.support.api import WatchRecorder, node, register
from tests.support.cli import run_cli
from tests.support.http import get, metric
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
FAST = ClientConfig(call_timeout_seconds=3, retry_initial_seconds=0.05, retry_max_seconds=0.5)


def admin_of(frontend) -> str:
    return f"http://127.0.0.1:{frontend.admin.port}"


def host_admin_of(process) -> str:
    return process.ready_line.split("admin ")[1].rstrip(")\n")


async def admin(*args: str, endpoint: str, token: str = "") -> dict:
    """`noderegistry admin ARGS -o json` against one admin port; its JSON document."""
    flags = ["--admin-endpoints", endpoint, "-o", "json"]
    if token:
        flags += ["--token", token]
    status, out, err = await run_cli("admin", *args, *flags)
    assert status == 0, err
    return json.loads(out)


class Watchers:
    """Raw WatchNodes streams, each on its own connection (so the kernel spreads B's over its
    workers)."""

    def __init__(self) -> None:
        self.channels: list[grpc.aio.Channel] = []
        self.recorders: list[WatchRecorder] = []

    async def open(self, address: str) -> WatchRecorder:
        channel = grpc.aio.insecure_channel(
            address, options=[("grpc.use_local_subchannel_pool", 1)]
        )
        self.channels.append(channel)
        recorder = WatchRecorder(registry_pb2_grpc.RegistryStub(channel)).start()
        self.recorders.append(recorder)
        await recorder.wait_for(lambda r: r.snapshots(), message="snapshot")
        return recorder

    async def on_every_worker(self, address: str, host_admin: str, workers: int = 2) -> None:
        async def spread() -> bool:
            await self.open(address)
            listed = (await get(f"{host_admin}/admin/subscribers"))[1]["subscribers"]
            return len({s["worker"] for s in listed}) == workers

        await eventually(spread, timeout=30, message="watchers on every worker")

    async def close(self) -> None:
        for recorder in self.recorders:
            await recorder.close()
        for channel in self.channels:
            await channel.close()


async def push_gauges(frontend, host_admin: str) -> list[float]:
    """noderegistry_push_enabled of A and of each worker of B (each process's own gauge)."""
    return [
        await metric(admin_of(frontend), "noderegistry_push_enabled"),
        *[await metric(host_admin, "noderegistry_push_enabled", worker=w) for w in ("0", "1")],
    ]


@pytest.fixture
async def two_frontends(etcd, start_frontend, spawn_frontend):
    """(A in process, B's host admin URL, Watchers): one watcher on A, some on each worker of B."""
    a = await start_frontend()
    b = await spawn_frontend(etcd.endpoint, workers=2)
    b_admin = host_admin_of(b)
    watchers = Watchers()
    await watchers.open(a.address)
    await watchers.on_every_worker(b.address, b_admin)
    yield a, b_admin, watchers
    await watchers.close()


async def test_one_command_switches_pushes_on_every_worker_of_both_and_a_restart_keeps_it(
    start_frontend, two_frontends
):
    a, b_admin, watchers = two_frontends
    on_a = watchers.recorders[0]
    assert await push_gauges(a, b_admin) == [1, 1, 1]

    started = time.monotonic()
    switched = await admin("push", "off", endpoint=admin_of(a))
    returned = time.monotonic()
    assert switched["enabled"] is False and switched["changed_by"].startswith("ip:")
    await eventually(
        lambda: _all_equal(push_gauges(a, b_admin), 0), timeout=10, message="all switched off"
    )
    flipped = time.monotonic()
    print(
        f"\npush off on 3 processes of 2 frontends: {flipped - started:.2f}s from the command's "
        f"start ({flipped - returned:.2f}s after it returned)"
    )

    held = await register(registry_pb2_grpc.RegistryStub(watchers.channels[0]), node("held"))
    await eventually(
        lambda: all(r.kinds().count("progress") >= 2 for r in watchers.recorders),
        timeout=15,
        message="progress, and no delta, after the change",
    )
    assert all("held" not in r.nodes for r in watchers.recorders)

    restarted = await start_frontend()  # a frontend that starts now starts off
    assert not restarted.operator_state.push_enabled
    assert (await get(f"{admin_of(restarted)}/admin/push"))[1]["enabled"] is False
    late = await watchers.open(restarted.address)

    await admin("push", "on", endpoint=b_admin)  # through the supervisor this time
    for recorder in watchers.recorders:
        await recorder.wait_for_node("held", timeout=15)
        snapshot = recorder.snapshots()[-1]
        assert snapshot.resync and snapshot.resync_reason == pb.RESYNC_REASON_PUSH_RESUMED
        assert snapshot.revision >= held.revision and not recorder.violations
    assert late.snapshots()[-1].resync and on_a.snapshots()[-1].resync
    actions = (await admin("audit", endpoint=admin_of(a)))["operator_actions"]
    assert [a["action"] for a in actions][-2:] == ["push.off", "push.on"]


async def _all_equal(values, expected: float) -> bool:
    return all(value == expected for value in await values)


async def test_convergence_from_either_frontend_lists_every_subscriber_of_both(two_frontends):
    a, b_admin, watchers = two_frontends
    ids = {r.messages[0].subscription_id for r in watchers.recorders}
    b_frontends = {
        w["frontend"] for w in (await get(f"{b_admin}/admin/subscribers"))[1]["workers"].values()
    }
    announced = await admin("frontends", endpoint=b_admin)
    assert {f["id"] for f in announced["frontends"]} == {a.frontend_id, *b_frontends}
    assert {f["admin_url"] for f in announced["frontends"]} == {admin_of(a), b_admin}

    from_a = await admin("subscribers", endpoint=admin_of(a))
    from_b = await admin("subscribers", endpoint=b_admin)
    for answer in (from_a, from_b):
        assert {s["id"] for s in answer["subscribers"]} == ids
        assert set(answer["frontends"]) == {a.frontend_id, *b_frontends}
        assert answer["unreachable"] == []
    on_b = [s for s in from_a["subscribers"] if s["frontend"] in b_frontends]
    assert {s["worker"] for s in on_b} == {"0", "1"}
    # Raw streams never acknowledge: none has converged, and each says so.
    pending = await admin("convergence", endpoint=b_admin)
    assert {s["id"] for s in pending["subscribers"]} == ids
    assert all(not s["acknowledging"] for s in pending["subscribers"])


async def test_a_silent_subscriber_is_re_pushed_and_one_that_never_opted_in_is_not(
    start_frontend, connect
):
    frontend = await start_frontend(ack_deadline_seconds=3.0)
    stub = connect(frontend)
    silent = WatchRecorder(stub, acknowledge=True).start()  # promises, never acknowledges
    plain = WatchRecorder(stub).start()  # never promised
    async with RegistryClient(frontend.address, config=FAST) as client:
        acking = await client.watch_nodes()  # the SDK promises, and acknowledges
        for recorder in (silent, plain):
            await recorder.wait_for(lambda r: r.snapshots(), message="snapshot")
        await register(stub, node("n1"))
        await acking.wait_for(lambda nodes: len(nodes) == 1, 5)
        await silent.wait_for(
            lambda r: len(r.snapshots()) == 2, timeout=15, message="re-pushed as a resync"
        )
        resync = silent.snapshots()[-1]
        assert resync.resync and resync.resync_reason == pb.RESYNC_REASON_UNCONFIRMED
        assert [n.id for dc in resync.datacenters for n in dc.nodes] == ["n1"]
        admin_url = admin_of(frontend)
        assert (
            await metric(admin_url, "noderegistry_watch_resyncs_total", reason="UNCONFIRMED") >= 1
        )
        await eventually(
            lambda: metric(
                admin_url, "noderegistry_change_stage_seconds_count", stage="written_to_acked"
            ),
            message="the SDK's acknowledgements timed",
        )
        assert len(plain.snapshots()) == 1 and not acking.resyncs
        listed = (await get(f"{admin_url}/admin/subscribers"))[1]["subscribers"]
        by_id = {s["id"]: s for s in listed}
        assert by_id[plain.messages[0].subscription_id]["acknowledging"] is False
        assert by_id[silent.messages[0].subscription_id]["acknowledging"] is True
    for recorder in (silent, plain):
        await recorder.close()
