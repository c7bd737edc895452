"""100,000 nodes in one datacenter, 4 metadata keys each (issue 21): a frontend's cold start to
serving, a new subscriber's full snapshot, the relist after its etcd history was compacted, and its
resident memory; each beside etcd itself doing the least the same step needs (reading every
member record; its own memory for the same data).

The nodes are registered through a loading frontend (two workers) at TTL 3600, so that no renewal
runs during the row. The measured frontend reaches etcd through a link the bench can cut
(bench/link.py): cut, changes made through the loader, etcd compacted, healed: the frontend's watch
can no longer resume and it must relist.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from typing import Any

import grpc
import grpc.aio
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from bench.harness import Bench
from bench.link import Link
from bench.retrying import register_retrying
from bench.stack import own_etcd, start_frontend
from bench.system import rss_bytes, settled_rss
from registry_service.store.etcd_client import EtcdClient, EtcdConfig

CLUSTER = "bench-scale"
METADATA = {"zone": "a", "version": "2.4.1", "role": "data", "rack": "r17"}
BIG_MESSAGES = [("grpc.max_receive_message_length", 512 * 1024 * 1024)]


async def register_nodes(target: str, count: int, in_flight: int, node_type: str) -> float:
    """Registers `count` nodes (TTL 3600); returns the registrations per second."""
    run = secrets.token_hex(2)
    pending = iter(range(count))
    started = time.monotonic()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)

        async def worker() -> None:
            for i in pending:
                node = pb.Node(
                    id=f"{node_type}-{run}-{i:06d}",
                    type=node_type,
                    datacenter="dc1",
                    address=f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}:7000",
                    metadata=METADATA,
                )
                key = f"{run}-{i}"
                request = pb.RegisterRequest(node=node, ttl_seconds=3600, idempotency_key=key)
                await register_retrying(stub, request)

        await asyncio.gather(*(worker() for _ in range(in_flight)))
    return count / (time.monotonic() - started)


class Subscriber:
    """One WatchNodes stream of every node: when its snapshot came, and the deltas after it."""

    def __init__(self, target: str) -> None:
        self._channel = grpc.aio.insecure_channel(target, options=BIG_MESSAGES)
        self.opened = time.monotonic()
        self.snapshot_at = 0.0
        self.snapshot_nodes = 0
        self.deltas: list[tuple[float, bool, set[str]]] = []  # (when, relisted, node ids)
        self._changed = asyncio.Event()
        stub = registry_pb2_grpc.RegistryStub(self._channel)
        self._task = asyncio.create_task(self._read(stub.WatchNodes(pb.WatchNodesRequest())))

    async def _read(self, call: Any) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError):
            async for message in call:
                kind = message.WhichOneof("message")
                if kind == "snapshot" and not self.snapshot_at:
                    self.snapshot_at = time.monotonic()
                    self.snapshot_nodes = sum(len(d.nodes) for d in message.snapshot.datacenters)
                elif kind == "delta":
                    ids = {event.node.id for event in message.delta.events}
                    self.deltas.append((time.monotonic(), message.delta.relisted, ids))
                self._changed.set()

    async def wait(self, done: Any, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                self._changed.clear()
                await self._changed.wait()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._channel.close()


async def hundred_thousand_nodes(bench: Bench) -> None:
    config = bench.config["scale"]
    label = f"{config['nodes']:,} nodes" + config.get("label", "")
    print(f"scale: {label} in one datacenter, 4 metadata keys each", flush=True)
    async with own_etcd(bench.workdir, "scale") as etcd:
        etcd_client = EtcdClient(EtcdConfig(endpoints=(etcd.endpoint,)))
        link = Link(etcd.endpoint)
        await link.start()
        try:
            figures = await _measure(bench, config, etcd.endpoint, etcd_client, link)
            figures["etcd_rss"] = rss_bytes(etcd.process.pid)
        finally:
            await link.close()
            await etcd_client.close()
    _report(bench, config, label, figures)


async def _measure(
    bench: Bench, config: dict[str, Any], endpoint: str, etcd_client: EtcdClient, link: Link
) -> dict[str, Any]:
    nodes, figures = config["nodes"], {}
    workdir, processes = bench.workdir, bench.processes
    loader = await start_frontend(
        processes, endpoint, workdir / "frontend-scale-loader.log", workers=2, cluster=CLUSTER
    )
    figures["load_rate"] = await register_nodes(loader.target, nodes, config["in_flight"], "data")
    print(f"    registered at {figures['load_rate']:.0f}/s (two workers)", flush=True)
    started = time.monotonic()
    members = f"/noderegistry/{CLUSTER}/members/".encode()
    _, kvs = await etcd_client.kv.range_prefix(members)
    figures["etcd_read"] = time.monotonic() - started
    figures["record_bytes"] = sum(len(kv.value) for kv in kvs)
    started = time.monotonic()
    reader = processes.start("-m", "bench.etcd_floor", "read", endpoint, members.decode())
    await asyncio.to_thread(reader.wait)
    figures["process_read"] = time.monotonic() - started

    started = time.monotonic()
    frontend = await start_frontend(
        processes, link.endpoint, workdir / "frontend-scale.log", cluster=CLUSTER
    )
    figures["cold_start"] = time.monotonic() - started
    async with grpc.aio.insecure_channel(frontend.target, options=BIG_MESSAGES) as channel:
        stub = registry_pb2_grpc.RegistryStub(channel)
        started = time.monotonic()
        answer = await stub.GetNodes(pb.GetNodesRequest(consistency=pb.CONSISTENCY_CACHED))
        figures["get_nodes"] = time.monotonic() - started
        figures["served"] = sum(len(d.nodes) for d in answer.datacenters)
    figures["rss"] = await settled_rss(frontend.pid)

    subscriber = Subscriber(frontend.target)
    try:
        await subscriber.wait(lambda: subscriber.snapshot_at, timeout=120)
        figures["snapshot"] = subscriber.snapshot_at - subscriber.opened
        figures["snapshot_nodes"] = subscriber.snapshot_nodes
        figures["relist"] = await _relist(config, loader.target, etcd_client, link, subscriber)
    finally:
        await subscriber.close()
        processes.stop(frontend.process)
        processes.stop(loader.process)
    return figures


async def _relist(
    config: dict[str, Any],
    loader: str,
    etcd_client: EtcdClient,
    link: Link,
    subscriber: Subscriber,
) -> float | None:
    """Cuts the frontend off, registers nodes through the loader, compacts etcd, heals; the time
    from the heal to the subscriber holding the relisted difference (None: not within 60 s)."""
    link.cut()
    await register_nodes(loader, config["relist_changes"], 32, "moved")
    revision = await etcd_client.kv.current_revision(b"/")
    await etcd_client.kv.compact(revision)
    healed = time.monotonic()
    link.heal()

    def relisted() -> bool:
        wanted = config["relist_changes"]
        return any(flag and len(ids) >= wanted for _, flag, ids in subscriber.deltas)

    try:
        await subscriber.wait(relisted, timeout=60)
    except TimeoutError:
        return None
    return next(at for at, flag, ids in subscriber.deltas if flag) - healed


def _report(bench: Bench, config: dict[str, Any], label: str, figures: dict[str, Any]) -> None:
    results, nodes = bench.results, config["nodes"]
    results.add(
        f"scale, {label}: frontend cold start to serving",
        figures["cold_start"],
        "s",
        "a Python process of the etcd client starting and reading every member record",
        figures["process_read"],
        served=figures["served"],
        get_nodes_seconds=round(figures["get_nodes"], 3),
        registrations_per_second_loading=round(figures["load_rate"]),
    )
    results.add(
        f"scale, {label}: a new subscriber's full snapshot",
        figures["snapshot"],
        "s",
        "reading every member record from etcd",
        figures["etcd_read"],
        nodes=figures["snapshot_nodes"],
    )
    relist = figures["relist"]
    if relist is None:
        results.not_measured(f"scale, {label}: relist after compaction", "no relist within 60 s")
    else:
        results.add(
            f"scale, {label}: relist after compaction (link healed -> subscriber has it)",
            relist,
            "s",
            "reading every member record from etcd",
            figures["etcd_read"],
            changes=config["relist_changes"],
        )
    results.add(
        f"scale, {label}: frontend RSS",
        figures["rss"] / 2**20,
        "MiB",
        "etcd's RSS with the same data",
        figures["etcd_rss"] / 2**20,
        record_mib=round(figures["record_bytes"] / 2**20, 1),
    )
    measured = nodes >= 100_000
    why = "" if measured else f" (this profile has {nodes:,} nodes; the goal is for 100,000)"
    checks = (
        ("frontend cold start to serving <= 10 s", figures["cold_start"] <= 10, "cold_start", "s"),
        ("a new subscriber's full snapshot <= 1 s", figures["snapshot"] <= 1, "snapshot", "s"),
        ("relist after compaction <= 5 s", relist is not None and relist <= 5, "relist", "s"),
        ("frontend RSS <= 400 MB", figures["rss"] <= 400e6, "rss", "B"),
    )
    for name, met, key, unit in checks:
        value = figures[key]
        shown = "none within 60 s" if value is None else f"{value:.3g} {unit}"
        if key == "rss":
            shown = f"{value / 1e6:.0f} MB"
        results.goal(f"{label}: {name}", met if measured else None, shown + why)
