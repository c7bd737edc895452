"""Registration rows: Registers per second and their latency beside what a hand-written etcd client
does per registration (a lease, then a guarded put), the frontend's memory and CPU per Register,
and etcd's CPU per registration against that baseline driven at the registry's own rate."""

from __future__ import annotations

import asyncio
import secrets
import time

import grpc.aio
from noderegistry.v1 import registry_pb2 as pb

from bench import zookeeper
from bench.harness import Bench
from bench.stats import percentile
from bench.system import cpu_seconds, rss_bytes
from registry_service.store._etcdpb import rpc_pb2 as etcd_pb
from registry_service.store.etcd_client import EtcdClient


async def direct_registrations(
    client: EtcdClient, nodes: int, ttl: int, rate: float = 0.0, in_flight: int = 64
) -> list[float]:
    """What a hand-written etcd client does per registration: a lease, then a guarded put,
    `in_flight` at a time; paced at `rate` per second when given. Returns the latencies."""
    latencies: list[float] = []
    queue = iter(range(nodes))
    run = secrets.token_hex(2)
    started = time.monotonic()

    async def worker() -> None:
        for i in queue:
            if rate:
                await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
            begun = time.monotonic()
            lease = await client.lease.grant(ttl)
            key = f"/bench/direct/{run}/{i}".encode()
            await client.kv.txn(
                etcd_pb.TxnRequest(
                    compare=[
                        etcd_pb.Compare(
                            key=key,
                            target=etcd_pb.Compare.CompareTarget.VERSION,
                            result=etcd_pb.Compare.CompareResult.EQUAL,
                            version=0,
                        )
                    ],
                    success=[
                        etcd_pb.RequestOp(
                            request_put=etcd_pb.PutRequest(
                                key=key, value=b'{"address":"10.0.0.1:7000"}', lease=lease
                            )
                        )
                    ],
                )
            )
            latencies.append(time.monotonic() - begun)

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return latencies


async def registrations(bench: Bench, nodes: int, ttl: int) -> list[pb.RegisterResponse]:
    print(f"registrations: {nodes} with 64 in flight", flush=True)
    rss_before = rss_bytes(bench.frontend.pid)
    cpu = bench.cpu_now()
    started = time.monotonic()
    responses, latencies = await bench.register_many(nodes, ttl, "load")
    rate = nodes / (time.monotonic() - started)
    await asyncio.sleep(0.5)  # the watch events and evictor wake-ups this caused
    ours = bench.cpu_since(cpu)
    await asyncio.sleep(0.5)
    per_node = (rss_bytes(bench.frontend.pid) - rss_before) / nodes

    started = time.monotonic()
    direct_latencies = await direct_registrations(bench.etcd_client, nodes, ttl)
    direct_rate = nodes / (time.monotonic() - started)
    bench.results.add(
        f"registrations/s ({nodes}, 64 in flight)",
        rate,
        "/s",
        "direct etcd (lease + txn)",
        direct_rate,
        nodes=nodes,
    )
    bench.results.add(
        f"register p99 ({nodes})",
        percentile(latencies, 99) * 1000,
        "ms",
        "direct etcd",
        percentile(direct_latencies, 99) * 1000,
        nodes=nodes,
    )
    bench.results.add(f"frontend memory per node ({nodes})", per_node, "bytes", nodes=nodes)
    per_register = ours["frontend"] / nodes
    floor = await unary_floor(bench)
    bench.results.add(
        f"frontend CPU per Register ({nodes})",
        per_register * 1e6,
        "us",
        "raw grpc.aio unary call (the floor of any RPC)",
        floor * 1e6,
        nodes=nodes,
    )
    etcd_client_floor = await etcd_client_cpu(bench)
    whole_floor = floor + etcd_client_floor
    bench.results.add(
        f"frontend CPU per Register against its floor ({nodes})",
        per_register * 1e6,
        "us",
        "raw grpc.aio unary call + a Python etcd client's lease + txn",
        whole_floor * 1e6,
        nodes=nodes,
        unary_us=round(floor * 1e6, 1),
        etcd_client_us=round(etcd_client_floor * 1e6, 1),
    )
    bench.results.goal(
        f"frontend CPU per Register <= 1.5x its floor ({nodes})",
        per_register <= 1.5 * whole_floor,
        f"{per_register * 1e6:.0f} us vs {floor * 1e6:.0f} + {etcd_client_floor * 1e6:.0f} us: "
        f"{per_register / whole_floor:.2f}x",
    )
    if nodes == bench.config["nodes"][0]:
        await beside_zookeeper(bench, nodes, rate, direct_rate)
    bench.results.goal(
        f"registrations/s >= 0.5x direct etcd ({nodes})",
        rate >= 0.5 * direct_rate,
        f"{rate:.0f}/s vs {direct_rate:.0f}/s: {rate / direct_rate:.2f}x",
    )
    bench.results.goal(
        f"frontend CPU per Register <= 500 us ({nodes})",
        per_register <= 500e-6,
        f"{per_register * 1e6:.0f} us (a raw grpc.aio unary call alone: {floor * 1e6:.0f} us)",
    )
    if nodes <= 10_000:
        # etcd's CPU per operation falls as its load rises (more proposals per raft round
        # and fsync), so the baseline runs at the registry's own rate.
        cpu = bench.cpu_now()
        await direct_registrations(bench.etcd_client, nodes, ttl, rate=rate)
        await asyncio.sleep(0.5)
        direct = bench.cpu_since(cpu)
        ratio = ours["etcd"] / max(direct["etcd"], 1e-9)
        bench.results.add(
            f"etcd CPU per registration ({nodes})",
            ours["etcd"] / nodes * 1e6,
            "us",
            f"direct lease + txn at the same {rate:.0f}/s",
            direct["etcd"] / nodes * 1e6,
            nodes=nodes,
        )
        bench.results.goal(
            f"etcd CPU per registration <= 1.5x direct lease + put ({nodes})",
            ratio <= 1.5,
            f"{ours['etcd'] / nodes * 1e6:.0f} vs {direct['etcd'] / nodes * 1e6:.0f} us: "
            f"{ratio:.2f}x",
        )
    if nodes >= 10_000 or nodes == max(bench.config["nodes"]):
        bench.results.goal(
            f"memory per node <= 2 KB ({nodes})", per_node <= 2000, f"{per_node:.0f} B"
        )
    return responses


async def beside_zookeeper(bench: Bench, nodes: int, rate: float, direct_rate: float) -> None:
    """As many registrations in ZooKeeper (an ephemeral znode each, 64 sessions with one create
    in flight each), just after the registry's and etcd's."""
    figure = f"registrations/s ({nodes}, 64 in flight), beside ZooKeeper"
    goal = f"registrations/s >= 0.5x ZooKeeper's ({nodes})"
    server = await bench.zookeeper()
    if server is None:
        bench.results.not_measured(figure, bench.zookeeper_missing)
        bench.results.goal(goal, None, bench.zookeeper_missing)
        return
    theirs = await zookeeper.registrations(bench.processes, server.hosts, nodes)
    bench.results.add(
        figure,
        rate,
        "/s",
        "ZooKeeper: an ephemeral znode each, 64 sessions",
        theirs["rate"],
        nodes=nodes,
        direct_etcd_per_second=round(direct_rate, 1),
        zookeeper_p99_ms=round(theirs["p99_seconds"] * 1000, 3),
    )
    bench.results.goal(
        goal,
        rate >= 0.5 * theirs["rate"],
        f"{rate:.0f}/s vs ZooKeeper's {theirs['rate']:.0f}/s: {rate / theirs['rate']:.2f}x "
        f"(direct etcd {direct_rate:.0f}/s)",
    )


async def etcd_client_cpu(bench: Bench, calls: int = 3000) -> float:
    """CPU seconds the project's etcd client spends per lease grant + guarded put, in a process
    of its own (bench/etcd_floor.py); measured once per run."""
    if "etcd_client_cpu" not in bench.measured:
        process = bench.processes.start(
            "-m", "bench.etcd_floor", "register", bench.etcd.endpoint, str(calls)
        )
        assert process.stdout is not None
        line = await asyncio.to_thread(process.stdout.readline)
        await asyncio.to_thread(process.wait)
        bench.measured["etcd_client_cpu"] = float(line)
    return bench.measured["etcd_client_cpu"]


async def unary_floor(bench: Bench, calls: int = 3000) -> float:
    """CPU seconds the raw grpc.aio server spends per unary call that does nothing."""
    async with grpc.aio.insecure_channel(bench.raw_target) as channel:
        echo = channel.unary_unary("/bench.Raw/Echo")
        queue = iter(range(calls))

        async def worker() -> None:
            for _ in queue:
                await echo(b"x" * 120)

        before = cpu_seconds(bench.raw.pid)
        await asyncio.gather(*(worker() for _ in range(64)))
        return (cpu_seconds(bench.raw.pid) - before) / calls
