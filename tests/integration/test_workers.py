"""`serve --workers 2`: two frontend processes on one port, kept running by a supervisor."""

from __future__ import annotations

import asyncio
import os
import re
import signal

import grpc
import pytest

from tests.support.api import node, node_ids, register
from tests.support.frontends import stub as stub_for
from tests.support.http import metric
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
    admins = re.findall(r"http://[\d.]+:\d+", line)
    assert len(pids) == 2 and len(admins) == 2

    for i in range(20):
        await _register_on_new_connection(supervisor.address, f"n{i}")
    served = [await metric(a, "grpc_server_handled_total", grpc_method="Register") for a in admins]
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is not alive
        return stat.read().split()[2] != "Z"
