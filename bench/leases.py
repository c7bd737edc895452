"""Lease figures: how many registrations one frontend core keeps alive at TTL 10, for a client that
holds many (one message per round for all of them) and for one registration per client, and what
etcd spends per renewal against bare leases kept alive over etcd's own LeaseKeepAlive."""

from __future__ import annotations

import asyncio
import contextlib

import grpc.aio
from noderegistry.v1 import registry_pb2 as pb

from bench.harness import Bench

TTL = 10


async def hold(bench: Bench, kind: str, target: str, lines: list[str]) -> dict[str, float]:
    """Runs the renewer processes of `kind` over `lines` for the profile's hold time; the CPU
    share (cores) the frontend and etcd used meanwhile, and the renewals refused."""
    count = bench.config["processes"]
    renewers = []
    for i in range(count):
        process = bench.processes.start(
            "-m",
            "bench.renewers",
            kind,
            target,
            str(TTL),
            stdin=True,
            log=bench.workdir / "renew.log",
        )
        assert process.stdin is not None
        process.stdin.write("\n".join(lines[i::count]) + "\n")
        process.stdin.close()
        renewers.append(process)
    try:
        for process in renewers:
            assert process.stdout is not None
            line = await asyncio.to_thread(process.stdout.readline)
            if line.strip() != "ready":
                log = (bench.workdir / "renew.log").read_text()[-2000:]
                raise RuntimeError(f"{kind} renewers failed: {line!r}\n{log}")
        before = bench.cpu_now()
        await asyncio.sleep(bench.config["hold"])
        used = bench.cpu_since(before)
        return {name: seconds / bench.config["hold"] for name, seconds in used.items()}
    finally:
        for process in renewers:
            process.kill()
            process.wait()


async def lease_figures(bench: Bench, nodes: int) -> None:
    print(f"keepalive of {nodes} registrations at TTL {TTL}", flush=True)
    registered, _ = await bench.register_many(nodes, TTL, "lease")
    watcher = bench.stub.WatchNodes(pb.WatchNodesRequest(scope=pb.Scope(types=["lease"])))
    removed = [0]

    async def count_removals() -> None:
        async for message in watcher:
            if message.WhichOneof("message") == "delta":
                removed[0] += sum(e.type == pb.EVENT_TYPE_REMOVED for e in message.delta.events)

    counting = asyncio.create_task(count_removals())
    lines = [f"{r.node.datacenter} {r.node.type} {r.node.id} {r.token}" for r in registered]
    try:
        many = await hold(bench, "registry", bench.target, lines)
        single = await hold(bench, "single", bench.target, lines)
    finally:
        counting.cancel()
        watcher.cancel()
    await deregister(bench, registered)
    leases = await grant(bench, nodes)
    direct = await hold(bench, "etcd", bench.etcd.endpoint, [str(lease) for lease in leases])
    await revoke(bench, leases)

    renewals_per_second = nodes / (TTL / 3)
    for name, share, goal in (
        ("many per client", many, 30_000),
        ("one per client", single, 16_000),
    ):
        per_core = nodes / max(share["frontend"], 1e-3)
        bench.results.add(
            f"leases per frontend core at TTL {TTL}, {name} ({nodes})",
            per_core,
            "leases",
            nodes=nodes,
            frontend_cpu=round(share["frontend"], 3),
            etcd_cpu=round(share["etcd"], 3),
            frontend_us_per_renewal=round(share["frontend"] / renewals_per_second * 1e6, 1),
        )
        bench.results.goal(
            f"leases per frontend core at TTL {TTL} >= {goal:,}, {name}",
            per_core >= goal,
            f"{nodes} leases used {share['frontend']:.3f} core -> about {per_core:.0f} per core",
        )
    ours = many["etcd"] / renewals_per_second
    theirs = direct["etcd"] / renewals_per_second
    bench.results.add(
        f"etcd CPU per renewal ({nodes})",
        ours * 1e6,
        "us",
        "direct LeaseKeepAlive",
        theirs * 1e6,
        nodes=nodes,
        one_per_client_us=round(single["etcd"] / renewals_per_second * 1e6, 1),
    )
    bench.results.goal(
        "etcd CPU per renewal <= 1.1x direct LeaseKeepAlive",
        ours <= 1.1 * theirs,
        f"{ours * 1e6:.1f} vs {theirs * 1e6:.1f} us: {ours / max(theirs, 1e-9):.2f}x",
    )
    bench.results.add(f"false expiries while renewing ({nodes})", removed[0], "nodes", nodes=nodes)
    bench.results.goal(f"zero false expiry ({nodes} leases)", removed[0] == 0, f"{removed[0]}")


async def deregister(bench: Bench, registered: list[pb.RegisterResponse]) -> None:
    """Deregistered rather than left to expire: their evictions would otherwise run behind the
    figures that follow."""
    pending = iter(registered)

    async def worker() -> None:
        for response in pending:
            node = response.node
            key = pb.NodeKey(datacenter=node.datacenter, type=node.type, id=node.id)
            with contextlib.suppress(grpc.aio.AioRpcError):
                await bench.stub.Deregister(pb.DeregisterRequest(key=key, token=response.token))

    await asyncio.gather(*(worker() for _ in range(64)))


async def grant(bench: Bench, count: int, ttl: int = TTL) -> list[int]:
    leases: list[int] = []
    pending = iter(range(count))

    async def worker() -> None:
        for _ in pending:
            leases.append(await bench.etcd_client.lease.grant(ttl))

    await asyncio.gather(*(worker() for _ in range(64)))
    return leases


async def revoke(bench: Bench, leases: list[int]) -> None:
    pending = iter(leases)

    async def worker() -> None:
        for lease in pending:
            await bench.etcd_client.lease.revoke(lease)

    await asyncio.gather(*(worker() for _ in range(64)))
