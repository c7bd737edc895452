"""`serve --workers 2`: two frontend processes on one port, kept running by a supervisor."""

from __future__ import annotations

import asyncio
import os
import re
import signal

import grpc
import grpc.aio
import pytest
from noderegistry.v1 import registry_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.support.api import WatchRecorder, node, node_ids, register
from tests.support.frontends import stub as stub_for
from tests.support.http import get, metric
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def _register_on_new_connection(address: str, node_id: str) -> None:
    """Each call opens its own connection, so the kernel spreads them over the workers."""

    async def attempt() -> bool:
        channel, stub = stub_for(address)
        try:
            await register(stub, node(node_id), ttl=30, idempotency_key=f"k-{node_id}")
            return True
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.UNAVAILABLE:  # a connection to a dying worker
                raise
            return False
        finally:
            await channel.close()

    await eventually(attempt, timeout=15, message=node_id)


async def test_two_workers_serve_one_port_and_a_killed_worker_is_replaced(etcd, spawn_frontend):
    supervisor = await spawn_frontend(etcd.endpoint, workers=2)
    line = supervisor.ready_line
    assert "(2 workers" in line
    pids = [int(p) for p in re.search(r"pids ([\d, ]+);", line).group(1).split(", ")]
    admin = _admin_of(supervisor)
    assert len(pids) == 2

    for i in range(20):
        await _register_on_new_connection(supervisor.address, f"n{i}")
    served = [
        await metric(admin, "grpc_server_handled_total", grpc_method="Register", worker=worker)
        for worker in ("0", "1")
    ]
    assert all(count > 0 for count in served), served  # the kernel used both workers
    assert sum(served) == 20

    os.kill(pids[0], signal.SIGKILL)
    for i in range(20, 30):  # the port keeps serving meanwhile
        await _register_on_new_connection(supervisor.address, f"n{i}")
    restarted = await supervisor.read_line()
    assert re.match(r"worker 0 restarted, pid \d+", restarted), restarted
    channel, stub = stub_for(supervisor.address)
    assert await node_ids(stub) == {f"n{i}" for i in range(30)}
    await channel.close()

    new_pid = int(restarted.rsplit(" ", 1)[1])
    assert await asyncio.to_thread(supervisor.terminate) == 0
    for pid in (new_pid, pids[1]):
        await eventually(lambda pid=pid: not _alive(pid), timeout=10, message=f"worker {pid} ended")


async def test_workers_do_not_outlive_a_killed_supervisor(etcd, spawn_frontend):
    supervisor = await spawn_frontend(etcd.endpoint, workers=2)
    pids = [
        int(p) for p in re.search(r"pids ([\d, ]+);", supervisor.ready_line).group(1).split(", ")
    ]
    supervisor.kill()  # SIGKILL: it cannot pass anything on
    for pid in pids:
        await eventually(lambda pid=pid: not _alive(pid), timeout=15, message=f"worker {pid} ended")


def _admin_of(frontend) -> str:
    return re.search(r"admin (http://\S+)\)", frontend.ready_line).group(1)


async def test_one_scrape_of_the_host_shows_every_worker(etcd, spawn_frontend):
    supervisor = await spawn_frontend(etcd.endpoint, workers=2)
    admin = _admin_of(supervisor)
    watches = []

    async def both_workers_have_subscribers() -> bool:
        # Each watch on its own connection (no shared subchannel): the kernel spreads
        # connections over the workers.
        channel = grpc.aio.insecure_channel(
            supervisor.address, options=[("grpc.use_local_subchannel_pool", 1)]
        )
        stub = registry_pb2_grpc.RegistryStub(channel)
        watches.append((channel, WatchRecorder(stub).start()))
        await watches[-1][1].wait_for(lambda r: r.messages, message="snapshot")
        per_worker = [
            await metric(admin, "noderegistry_watch_subscribers", worker=w) for w in ("0", "1")
        ]
        return sum(per_worker) == len(watches) and all(per_worker)

    await eventually(both_workers_have_subscribers, timeout=30, message="both workers watched")

    status, text = await get(f"{admin}/metrics")  # the one scrape
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    subscribers = {
        s.labels["worker"]: s.value for s in families["noderegistry_watch_subscribers"].samples
    }
    assert set(subscribers) == {"0", "1"} and all(subscribers.values())
    assert sum(subscribers.values()) == len(watches)
    memory = families["process_resident_memory_bytes"].samples
    assert {s.labels["worker"] for s in memory} == {"0", "1", "supervisor"}
    assert all(s.value > 0 for s in memory)
    assert {s.labels["worker"]: s.value for s in families["noderegistry_worker_up"].samples} == {
        "0": 1,
        "1": 1,
    }
    assert len(families["noderegistry_build_info"].samples) == 2
    assert not [line for line in text.splitlines() if "_created" in line]

    status, body = await get(f"{admin}/admin/subscribers")
    assert status == 200
    assert {s["worker"] for s in body["subscribers"]} == {"0", "1"}
    assert (await get(f"{admin}/readyz"))[0] == 200  # answered by a worker
    for channel, recorder in watches:
        await recorder.close()
        await channel.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is not alive
        return stat.read().split()[2] != "Z"
