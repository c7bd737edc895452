"""Cross-datacenter propagation (docs/design.md §10): a change registered in datacenter A,
until a subscriber in datacenter B has it, beside the same change reaching a subscriber in A.

Two registries on loopback, each its own etcd and one frontend, each following the other: the WAN
is loopback here, so the figure is the registry's own cost of the extra hop (the follower's
stream, and B's fan-out), to which a real link adds its round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from pathlib import Path
from typing import Any

import grpc.aio
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from bench.harness import Bench
from bench.stack import start_etcd, start_frontend
from bench.stats import quantile_inclusive
from bench.system import free_port
from registry_service.process.embedded_etcd import EtcdServer


class Arrivals:
    """One federated WatchNodes stream: when each node id first arrived (monotonic)."""

    def __init__(self, target: str) -> None:
        self.seen: dict[str, float] = {}
        self._changed = asyncio.Event()
        self._channel = grpc.aio.insecure_channel(target)
        stub = registry_pb2_grpc.RegistryStub(self._channel)
        self._call = stub.WatchNodes(pb.WatchNodesRequest(datacenter_revisions=True))
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError):
            async for message in self._call:
                now = time.monotonic()
                kind = message.WhichOneof("message")
                nodes: list[Any] = []
                if kind == "snapshot":
                    nodes = [n for dc in message.snapshot.datacenters for n in dc.nodes]
                elif kind == "delta":
                    nodes = [e.node for e in message.delta.events]
                for node in nodes:
                    self.seen.setdefault(node.id, now)
                self._changed.set()
                self._changed = asyncio.Event()

    async def arrival(self, node_id: str, timeout: float = 30) -> float:
        async with asyncio.timeout(timeout):
            while node_id not in self.seen:
                await self._changed.wait()
        return self.seen[node_id]

    async def close(self) -> None:
        self._call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._channel.close()


async def _frontend(
    bench: Bench, etcd: EtcdServer, name: str, port: int, remote: str, log: Path
) -> str:
    frontend = await start_frontend(
        bench.processes,
        etcd.endpoint,
        log,
        cluster="bench-federation",
        listen=f"127.0.0.1:{port}",
        extra=("--datacenter", name, "--remote-datacenters", remote),
    )
    return frontend.target


async def cross_datacenter(bench: Bench) -> None:
    """Adds the cross-datacenter figures (p50, p99) to the bench's results, the same changes'
    delivery in their own datacenter as their baseline."""
    changes = bench.config["changes"]
    print(f"cross-datacenter propagation ({changes} changes)", flush=True)
    etcd2 = await start_etcd(bench.workdir / "etcd-dc2", name="bench-dc2")
    ports = {"dc1": free_port(), "dc2": free_port()}
    try:
        dc1 = await _frontend(
            bench,
            bench.etcd,
            "dc1",
            ports["dc1"],
            f"dc2=127.0.0.1:{ports['dc2']}",
            bench.workdir / "federation-dc1.log",
        )
        dc2 = await _frontend(
            bench,
            etcd2,
            "dc2",
            ports["dc2"],
            f"dc1=127.0.0.1:{ports['dc1']}",
            bench.workdir / "federation-dc2.log",
        )
        local, remote = Arrivals(dc1), Arrivals(dc2)
        async with grpc.aio.insecure_channel(dc1) as channel:
            stub = registry_pb2_grpc.RegistryStub(channel)
            warm = pb.Node(id="warm", type="bench", datacenter="dc1", address="10.0.0.1:1")
            await stub.Register(pb.RegisterRequest(node=warm, ttl_seconds=60))
            await remote.arrival("warm", timeout=60)  # dc2 follows dc1 (it may start later)
            same, other = [], []
            for i in range(changes):
                node_id = f"x{i}-{secrets.token_hex(3)}"
                node = pb.Node(id=node_id, type="bench", datacenter="dc1", address="10.0.0.1:1")
                started = time.monotonic()
                await stub.Register(pb.RegisterRequest(node=node, ttl_seconds=60))
                same.append(await local.arrival(node_id) - started)
                other.append(await remote.arrival(node_id) - started)
        await local.close()
        await remote.close()
    finally:
        await asyncio.to_thread(etcd2.stop)
    for q in (50, 99):
        bench.results.add(
            f"cross-datacenter change->subscriber in the other datacenter p{q}",
            quantile_inclusive(other, q) * 1000,
            "ms",
            "same datacenter",
            quantile_inclusive(same, q) * 1000,
            changes=changes,
        )
