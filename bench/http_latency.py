"""How long a change takes to reach HTTP clients, beside gRPC watchers in the same run: one
frontend process (its own etcd), S event streams (/v1/watch), S gRPC WatchNodes streams and S
blocking reads (/v1/nodes?index=...) open at once; R registrations one after the other, each timed
from before its Register to the moment each client has it.

    python -m bench.http_latency [--streams 50] [--changes 40]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import grpc.aio
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from registry_service.process.embedded_etcd import EtcdServer
from tests.support.http_api import EventStream
from tests.support.ports import free_port
from tests.support.waiting import eventually


def _summary(name: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{name:<22} median {statistics.median(ordered) * 1000:7.2f} ms   "
        f"p99 {p99 * 1000:7.2f} ms   ({len(ordered)} deliveries)"
    )


async def _grpc_watch(
    stub: registry_pb2_grpc.RegistryStub, arrivals: dict[int, list[float]]
) -> None:
    async for message in stub.WatchNodes(pb.WatchNodesRequest(scope=pb.Scope(types=["bench"]))):
        if message.HasField("delta"):
            arrivals.setdefault(message.delta.revision, []).append(time.monotonic())


async def _sse_watch(stream: EventStream, arrivals: dict[int, list[float]]) -> None:
    while (event := await stream.next(timeout=600)) is not None:
        if event.name == "delta" and event.id is not None:
            arrivals.setdefault(event.id, []).append(time.monotonic())


async def _blocking_read(session: aiohttp.ClientSession, url: str, index: int) -> float:
    async with session.get(f"{url}&index={index}&wait=60s") as response:
        await response.read()
    return time.monotonic()


async def run(streams: int, changes: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        port = free_port()
        etcd = EtcdServer(data_dir=Path(directory) / "etcd", client_port=port, peer_port=port + 1)
        etcd.start()
        etcd.wait_ready()
        frontend = subprocess.Popen(
            [sys.executable, "-m", "registry_service", "serve", "--listen", "127.0.0.1:0",
             "--admin-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--workers", "1",
             "--etcd-endpoints", etcd.endpoint, "--max-streams-per-peer", "100000"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            assert frontend.stdout is not None
            line = frontend.stdout.readline()
            target = re.search(r"serving on (\S+)", line).group(1)  # type: ignore[union-attr]
            api = re.search(r"api (http://\S+)/v1/", line).group(1)  # type: ignore[union-attr]
            await _measure(target, api, streams, changes)
        finally:
            frontend.terminate()
            frontend.wait(30)
            etcd.stop()


async def _measure(target: str, api: str, streams: int, changes: int) -> None:
    sse: dict[int, list[float]] = {}
    grpc_arrivals: dict[int, list[float]] = {}
    blocking: list[float] = []
    channel = grpc.aio.insecure_channel(target)
    stub = registry_pb2_grpc.RegistryStub(channel)
    events = [await EventStream.open(f"{api}/v1/watch?type=bench") for _ in range(streams)]
    for stream in events:
        await stream.next_change()  # the snapshot
    readers = [asyncio.create_task(_sse_watch(s, sse)) for s in events]
    watchers = [asyncio.create_task(_grpc_watch(stub, grpc_arrivals)) for _ in range(streams)]
    url = f"{api}/v1/nodes?type=bench&consistency=cached"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.sleep(1)  # the gRPC streams' snapshots (not timed)
        for index in range(changes):
            async with session.get(url) as response:
                current = (await response.json())["index"]
            reads = [
                asyncio.create_task(_blocking_read(session, url, current)) for _ in range(streams)
            ]
            await asyncio.sleep(0.2)  # the reads reach the frontend and wait (not timed)
            node = pb.Node(id=f"n{index}", type="bench", datacenter="dc1", address="10.0.0.1:1")
            started = time.monotonic()
            answer = await stub.Register(pb.RegisterRequest(node=node, ttl_seconds=60))
            blocking.extend(t - started for t in await asyncio.gather(*reads))
            await eventually(
                lambda revision=answer.revision: (
                    len(sse.get(revision, [])) >= streams
                    and len(grpc_arrivals.get(revision, [])) >= streams
                ),
                timeout=60,
                interval=0.005,
                message="every stream has the change",
            )
            sse[answer.revision] = [t - started for t in sse[answer.revision]]
            grpc_arrivals[answer.revision] = [t - started for t in grpc_arrivals[answer.revision]]
    for task in (*readers, *watchers):
        task.cancel()
    for stream in events:
        await stream.close()
    await channel.close()
    print(f"{streams} clients of each kind, {changes} registrations, one frontend process")
    print(_summary("gRPC WatchNodes", [t for ts in grpc_arrivals.values() for t in ts]))
    print(_summary("SSE /v1/watch", [t for ts in sse.values() for t in ts]))
    print(_summary("blocking /v1/nodes", blocking))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--changes", type=int, default=40)
    args = parser.parse_args()
    asyncio.run(run(args.streams, args.changes))


if __name__ == "__main__":
    main()
