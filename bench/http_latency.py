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
from collections.abc import Callable
from pathlib import Path

import aiohttp
import grpc.aio
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from bench.stack import start_etcd


def _summary(name: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{name:<22} median {statistics.median(ordered) * 1000:7.2f} ms   "
        f"p99 {p99 * 1000:7.2f} ms   ({len(ordered)} deliveries)"
    )


class Arrivals:
    """When each client got each revision; wakes whoever waits for a count."""

    def __init__(self) -> None:
        self.at: dict[int, list[float]] = {}
        self.snapshots = 0
        self._changed = asyncio.Condition()

    async def saw(self, revision: int | None) -> None:
        """A delta of `revision` arrived now (None: a snapshot)."""
        async with self._changed:
            if revision is None:
                self.snapshots += 1
            else:
                self.at.setdefault(revision, []).append(time.monotonic())
            self._changed.notify_all()

    async def wait(self, enough: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(enough)


async def _grpc_watch(stub: registry_pb2_grpc.RegistryStub, arrivals: Arrivals) -> None:
    async for message in stub.WatchNodes(pb.WatchNodesRequest(scope=pb.Scope(types=["bench"]))):
        if message.HasField("delta"):
            await arrivals.saw(message.delta.revision)


async def _sse_watch(session: aiohttp.ClientSession, url: str, arrivals: Arrivals) -> None:
    """One /v1/watch event stream: `event:` and `id:` lines, an event ends at an empty line."""
    headers = {"Accept": "text/event-stream"}
    async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout()) as response:
        fields: dict[str, str] = {}
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
                continue
            if fields.get("event") == "snapshot":
                await arrivals.saw(None)
            elif fields.get("event") == "delta" and fields.get("id"):
                await arrivals.saw(int(fields["id"].split(",")[0]))
            fields = {}


async def _blocking_read(session: aiohttp.ClientSession, url: str, index: int) -> float:
    async with session.get(f"{url}&index={index}&wait=60s") as response:
        await response.read()
    return time.monotonic()


async def run(streams: int, changes: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        etcd = await start_etcd(Path(directory) / "etcd")
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
    sse, grpc_arrivals = Arrivals(), Arrivals()
    blocking: list[float] = []
    channel = grpc.aio.insecure_channel(target)
    stub = registry_pb2_grpc.RegistryStub(channel)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        readers = [
            asyncio.create_task(_sse_watch(session, f"{api}/v1/watch?type=bench", sse))
            for _ in range(streams)
        ]
        await sse.wait(lambda: sse.snapshots >= streams, timeout=60)
        watchers = [asyncio.create_task(_grpc_watch(stub, grpc_arrivals)) for _ in range(streams)]
        url = f"{api}/v1/nodes?type=bench&consistency=cached"
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
            revision = answer.revision
            for arrivals in (sse, grpc_arrivals):
                await arrivals.wait(
                    lambda a=arrivals, r=revision: len(a.at.get(r, [])) >= streams, timeout=60
                )
                arrivals.at[revision] = [t - started for t in arrivals.at[revision]]
        for task in (*readers, *watchers):
            task.cancel()
    await channel.close()
    print(f"{streams} clients of each kind, {changes} registrations, one frontend process")
    print(_summary("gRPC WatchNodes", [t for ts in grpc_arrivals.at.values() for t in ts]))
    print(_summary("SSE /v1/watch", [t for ts in sse.at.values() for t in ts]))
    print(_summary("blocking /v1/nodes", blocking))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--changes", type=int, default=40)
    args = parser.parse_args()
    asyncio.run(run(args.streams, args.changes))


if __name__ == "__main__":
    main()
