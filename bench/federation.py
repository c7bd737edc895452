"""Cross-datacenter propagation (docs/design.md §10): a change registered in datacenter A,
until a subscriber in datacenter B has it, beside the same change reaching a subscriber in A.

Two registries on loopback, each its own etcd and one frontend, each following the other: the WAN
is loopback here, so the figure is the registry's own cost of the extra hop (the follower's
stream, and B's fan-out), to which a real link adds its round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import socket
import statistics
import time
from pathlib import Path
from typing import Any

import grpc.aio
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from registry_service.process.embedded_etcd import EtcdServer


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _quantile(values: list[float], q: int) -> float:
    """The q-th percentile (q 50 or 99), as `statistics.quantiles` cuts the sample."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


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
    bench: Any, etcd: EtcdServer, name: str, port: int, remote: str, log: Path
) -> str:
    process = bench.processes.start(
        "-m",
        "registry_service",
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--admin-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--etcd-endpoints",
        etcd.endpoint,
        "--cluster",
        "bench-federation",
        "--workers",
        "1",
        "--datacenter",
        name,
        "--remote-datacenters",
        remote,
        log=log,
    )
    line = await asyncio.to_thread(process.stdout.readline)
    return str(re.search(r"serving on (\S+)", line).group(1))  # type: ignore[union-attr]


async def cross_datacenter(bench: Any) -> None:
    """Adds the cross-datacenter figures (p50, p99) to the bench's results (bench.run.Bench), the
    same changes' delivery in their own datacenter as their baseline."""
    changes = bench.config["changes"]
    print(f"cross-datacenter propagation ({changes} changes)", flush=True)
    etcd2 = EtcdServer(
        data_dir=bench.workdir / "etcd-dc2",
        client_port=_port(),
        peer_port=_port(),
        name="bench-dc2",
    )
    etcd2.start()
    await asyncio.to_thread(etcd2.wait_ready)
    ports = {"dc1": _port(), "dc2": _port()}
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
            _quantile(other, q) * 1000,
            "ms",
            "same datacenter",
            _quantile(same, q) * 1000,
            changes=changes,
        )
