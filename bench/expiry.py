"""Expiry figures: how late a silent node is REMOVED at every subscriber while registrations run,
and how long a mass expiry takes to be removed, against etcd deleting the same number of leased
keys by itself (the same run)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Iterator

import grpc.aio
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from bench.harness import Bench
from bench.leases import grant
from bench.stats import percentile
from registry_service.store._etcdpb import rpc_pb2 as etcd_pb
from registry_service.store._etcdpb import rpc_pb2_grpc as etcd_grpc
from registry_service.store.etcd_client import prefix_end

SILENT_TTL = 3
MASS_TTL = 10


async def removals(
    stub: registry_pb2_grpc.RegistryStub,
    node_type: str,
    seen: dict[str, float],
    count: int,
    done: asyncio.Event,
) -> None:
    """Records when each node of `node_type` is REMOVED on one WatchNodes stream; sets `done`
    once `count` were."""
    call = stub.WatchNodes(pb.WatchNodesRequest(scope=pb.Scope(types=[node_type])))
    with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
        async for message in call:
            if message.WhichOneof("message") == "delta":
                now = time.monotonic()
                for event in message.delta.events:
                    if event.type == pb.EVENT_TYPE_REMOVED:
                        seen[event.node.id] = now
                if len(seen) >= count:
                    done.set()
    call.cancel()


async def silent_nodes(bench: Bench, count: int, subscribers: int = 5) -> None:
    """`count` nodes registered a few milliseconds apart and never renewed, while another client
    keeps registering; each one's delay is from its Register reply + TTL to its REMOVED at the
    last of `subscribers` watchers (the lease starts before the reply: an upper bound)."""
    print(f"silent nodes: {count} at TTL {SILENT_TTL}, registrations running", flush=True)
    seen: list[dict[str, float]] = [{} for _ in range(subscribers)]
    done = [asyncio.Event() for _ in range(subscribers)]
    watchers = [
        asyncio.create_task(removals(bench.stub, "silent", s, count, d))
        for s, d in zip(seen, done, strict=True)
    ]
    churning = asyncio.create_task(churn(bench))
    await asyncio.sleep(0.5)  # the watchers' snapshots
    replied: dict[str, float] = {}
    for i in range(count):
        node_id = f"s{i}-{secrets.token_hex(2)}"
        node = pb.Node(id=node_id, type="silent", datacenter="dc1", address="10.0.0.1:7000")
        await bench.stub.Register(pb.RegisterRequest(node=node, ttl_seconds=SILENT_TTL))
        replied[node_id] = time.monotonic()
        await asyncio.sleep(0.02)
    try:
        async with asyncio.timeout(SILENT_TTL + 60):
            await asyncio.gather(*(d.wait() for d in done))
    finally:
        churning.cancel()
        for watcher in watchers:
            watcher.cancel()
    delays = [max(s[node_id] for s in seen) - replied[node_id] - SILENT_TTL for node_id in replied]
    p99 = percentile(delays, 99)
    bench.results.add(
        f"silent node -> REMOVED at every subscriber, after the TTL, p99 ({count})",
        p99,
        "s",
        p50=round(percentile(delays, 50), 3),
        worst=round(max(delays), 3),
        nodes=count,
        subscribers=subscribers,
    )
    bench.results.goal(
        f"silent node -> REMOVED p99 <= TTL + 1 s ({count} nodes, registrations running)",
        p99 <= 1.0,
        f"TTL + {p99:.2f} s (p50 TTL + {percentile(delays, 50):.2f} s)",
    )


async def churn(bench: Bench) -> None:
    """Registrations running in the background: register then deregister, 8 at a time."""

    async def worker() -> None:
        while True:
            node = pb.Node(
                id=f"c-{secrets.token_hex(4)}",
                type="churn",
                datacenter="dc1",
                address="10.0.0.1:7000",
            )
            with contextlib.suppress(grpc.aio.AioRpcError):
                response = await bench.stub.Register(pb.RegisterRequest(node=node, ttl_seconds=30))
                key = pb.NodeKey(datacenter="dc1", type="churn", id=node.id)
                await bench.stub.Deregister(pb.DeregisterRequest(key=key, token=response.token))

    workers = [asyncio.create_task(worker()) for _ in range(8)]
    try:
        await asyncio.Event().wait()
    finally:
        for task in workers:
            task.cancel()


async def registered_and_renewed(bench: Bench, count: int) -> float:
    """Registers `count` nodes of type `mass` at TTL MASS_TTL in chunks, renewing every one
    registered so far after each chunk (registering them all takes longer than the TTL), then
    once more; returns when that last round ended: every lease expires at most TTL later."""
    renewals: list[pb.Renewal] = []
    call = bench.stub.KeepAlive()

    async def renew_all() -> float:
        await call.write(pb.KeepAliveRequest(renewals=renewals))
        response = await call.read()
        failed = sum(1 for result in response.results if result.code != 0)
        assert not failed, f"{failed} renewals refused"
        return time.monotonic()

    for start in range(0, count, 1000):
        registered, _ = await bench.register_many(min(1000, count - start), MASS_TTL, "mass")
        for response in registered:
            node = response.node
            key = pb.NodeKey(datacenter=node.datacenter, type=node.type, id=node.id)
            renewals.append(pb.Renewal(key=key, token=response.token))
        await renew_all()
    ended = await renew_all()
    await call.done_writing()
    call.cancel()
    return ended


async def put_leased(bench: Bench, prefix: bytes, pending: Iterator[tuple[int, int]]) -> None:
    for i, lease in pending:
        await bench.etcd_client.kv.put(prefix + str(i).encode(), b"x", lease)


async def leased_and_renewed(bench: Bench, count: int, prefix: bytes) -> float:
    """The same for bare etcd: leased keys in chunks, every lease renewed after each chunk."""
    leases: list[int] = []
    for start in range(0, count, 1000):
        chunk = await grant(bench, min(1000, count - start), MASS_TTL)
        pending = iter(enumerate(chunk, start=len(leases)))
        await asyncio.gather(*(put_leased(bench, prefix, pending) for _ in range(64)))
        leases += chunk
        await bench.etcd_client.renewer.renew_many(leases)
    ttls = await bench.etcd_client.renewer.renew_many(leases)
    assert all(ttls), "a lease was lost while granting"
    return time.monotonic()


async def mass_expiry(bench: Bench, count: int) -> None:
    """`count` registrations renewed together, then silent: from the end of that last round plus
    the TTL to the last REMOVED (the budget is raised for this figure: bench frontend settings).
    The baseline is etcd alone: as many leased keys, renewed together, until etcd deleted the
    last (etcd revokes expired leases at a bounded pace)."""
    print(f"mass expiry: {count} registrations at TTL {MASS_TTL} stop renewing", flush=True)
    seen: dict[str, float] = {}
    all_seen = asyncio.Event()
    watcher = asyncio.create_task(removals(bench.stub, "mass", seen, count, all_seen))
    await asyncio.sleep(0.5)
    ended = await registered_and_renewed(bench, count)
    try:
        async with asyncio.timeout(MASS_TTL + 300):
            await all_seen.wait()
    finally:
        watcher.cancel()
    ours = max(seen.values()) - ended - MASS_TTL
    our_half = percentile(list(seen.values()), 50) - ended - MASS_TTL

    prefix = f"/bench/mass/{secrets.token_hex(2)}/".encode()
    deleted: list[float] = []
    all_deleted = asyncio.Event()
    watching = asyncio.create_task(etcd_deletes(bench, prefix, deleted, count, all_deleted))
    await asyncio.sleep(0.5)
    ended = await leased_and_renewed(bench, count, prefix)
    try:
        async with asyncio.timeout(MASS_TTL + 300):
            await all_deleted.wait()
    finally:
        watching.cancel()
    theirs = max(deleted) - ended - MASS_TTL
    their_half = percentile(deleted, 50) - ended - MASS_TTL
    bench.results.add(
        f"mass expiry: last of {count} REMOVED, after the TTL",
        ours,
        "s",
        "etcd deleting as many leased keys",
        theirs,
        nodes=count,
        half_removed_after=round(our_half, 3),
        etcd_half_deleted_after=round(their_half, 3),
    )
    print(
        f"    half of them: TTL + {our_half:.2f} s (etcd alone: TTL + {their_half:.2f} s)",
        flush=True,
    )
    bench.results.goal(
        f"{count:,} expiring at once removed within 10 s (budget raised)",
        ours <= 10.0,
        f"TTL + {ours:.1f} s (etcd alone: TTL + {theirs:.1f} s)",
    )


async def etcd_deletes(
    bench: Bench, prefix: bytes, deleted: list[float], count: int, done: asyncio.Event
) -> None:
    call = bench.etcd_client.connection.stub(etcd_grpc.WatchStub).Watch()
    await call.write(
        etcd_pb.WatchRequest(
            create_request=etcd_pb.WatchCreateRequest(key=prefix, range_end=prefix_end(prefix))
        )
    )
    try:
        while True:
            response = await call.read()
            now = time.monotonic()
            deleted.extend(now for e in response.events if e.type == etcd_pb.Event.DELETE)
            if len(deleted) >= count:
                done.set()
    finally:
        call.cancel()
