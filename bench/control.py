"""Rows of the control path: a silent node's eviction, and an operator's push switch followed by
every frontend process."""

from __future__ import annotations

import asyncio
import secrets
import statistics
import time

import aiohttp
from noderegistry.v1 import registry_pb2 as pb
from prometheus_client.parser import text_string_to_metric_families

from bench.harness import Bench, bench_node


async def evictor_settled(admin: str) -> None:
    """Waits until the frontend's evictor leads and has swept past the grace that follows its
    connecting to etcd (`evictor_outage_grace_seconds`): the eviction row measures a running
    registry, not the first seconds of a frontend just started."""
    async with aiohttp.ClientSession() as session, asyncio.timeout(60):
        while True:
            async with session.get(f"{admin}/admin/evictor") as response:
                status = await response.json()
            if status["leader"] and status["last_sweep"] and not status["held_by_outage"]:
                return
            await asyncio.sleep(0.2)  # a bounded poll of a status page (60 s at the most)


async def eviction(bench: Bench) -> None:
    print("eviction: 5 nodes stop renewing (TTL 3)", flush=True)
    await evictor_settled(bench.admin)
    watcher = bench.stub.WatchNodes(pb.WatchNodesRequest(scope=pb.Scope(types=["evict"])))
    registered_at = {}
    for i in range(5):
        node_id = f"e{i}-{secrets.token_hex(2)}"
        await bench.stub.Register(
            pb.RegisterRequest(node=bench_node(node_id, "evict"), ttl_seconds=3)
        )
        registered_at[node_id] = time.monotonic()
    delays = []
    async with asyncio.timeout(30):
        async for message in watcher:
            if message.WhichOneof("message") != "delta":
                continue
            for event in message.delta.events:
                if event.type == pb.EVENT_TYPE_REMOVED:
                    delays.append(time.monotonic() - registered_at[event.node.id] - 3)
            if len(delays) == 5:
                break
    watcher.cancel()
    bench.results.add(
        "eviction: REMOVED after the TTL, median",
        statistics.median(delays),
        "s",
        worst=round(max(delays), 3),
    )


async def push_switch(bench: Bench) -> None:
    """One operator command (PUT /admin/push on one frontend) until every worker of two
    frontends applies it, read from each process's own gauge (docs/design.md §9)."""
    print("push switch: 3 processes (2 frontends, one with 2 workers) follow", flush=True)
    second = await bench.start_frontend(workers=2)
    gauges = [(bench.admin, ""), (second.admin, "0"), (second.admin, "1")]
    times = []
    async with aiohttp.ClientSession() as session:

        async def followed(enabled: bool) -> bool:
            for admin, worker in gauges:
                async with session.get(f"{admin}/metrics") as response:
                    text = await response.text()
                (family,) = (
                    f
                    for f in text_string_to_metric_families(text)
                    if f.name == "noderegistry_push_enabled"
                )
                values = [s.value for s in family.samples if s.labels.get("worker", "") == worker]
                if values != [float(enabled)]:
                    return False
            return True

        for _ in range(max(1, bench.config["changes"] // 5)):
            for enabled in (False, True):
                started = time.monotonic()
                body = {"enabled": enabled}
                async with session.put(f"{bench.admin}/admin/push", json=body) as response:
                    assert response.status == 200, await response.text()
                async with asyncio.timeout(30):
                    while True:  # polled: each process's gauge is its own
                        if await followed(enabled):
                            break
                        await asyncio.sleep(0.005)
                times.append(time.monotonic() - started)
    bench.processes.stop(second.process)
    bench.results.add(
        "push switch: command -> all 3 processes follow, median",
        statistics.median(times),
        "s",
        worst=round(max(times), 3),
        switches=len(times),
    )
