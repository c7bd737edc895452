"""A client process holding many subscriber streams, for the fan-out benchmarks.

    python -m bench.subscribers KIND TARGET STREAMS

KIND is `registry` (WatchNodes streams), `etcd` (one etcd prefix watch per subscriber: what a
hand-rolled etcd script does) or `raw` (the minimal grpc.aio fan-out server of bench/raw_fanout.py).
It prints `ready <n>` once every stream is open (n: opens the server shed and the client
retried), then `seen <marker> <time>` when every one of its streams has received the change
carrying <marker>; <time> is the latest CLOCK_MONOTONIC receipt (comparable across processes on
one machine). It stops when stdin closes.
"""

from __future__ import annotations

import asyncio
import collections
import random
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc

from registry_service.store._etcdpb import rpc_pb2 as etcd_pb
from registry_service.store._etcdpb import rpc_pb2_grpc as etcd_grpc
from registry_service.store.etcd_client import prefix_end

PREFIX = b"/bench/fanout/"


class Tally:
    def __init__(self, streams: int) -> None:
        self.streams = streams
        self.reopened = 0
        self.open_streams = 0
        self.all_open = asyncio.Event()
        self.count: collections.Counter[str] = collections.Counter()
        self.latest: dict[str, float] = {}

    def saw(self, marker: str) -> None:
        now = time.monotonic()
        self.count[marker] += 1
        self.latest[marker] = max(self.latest.get(marker, 0.0), now)
        if self.count[marker] == self.streams:
            print(f"seen {marker} {self.latest.pop(marker):.6f}", flush=True)
            del self.count[marker]


# A gRPC server sheds calls it cannot accept fast enough (gRPC core cancels pending requests
# beyond `grpc.server.max_pending_requests`, 1,000, with rising probability): thousands of
# subscribers connecting at once get some CANCELLED, and retry after a jittered pause, as the SDK
# does. Counted and reported, never hidden.
_SHED = frozenset(
    {grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}
)
_OPEN_ATTEMPTS = 30


async def open_with_retry(open_stream: Callable[[], Awaitable[Any]], tally: Tally) -> Any:
    """Opens one stream (retrying shed opens) and counts it; the last one sets `all_open`."""
    for attempt in range(_OPEN_ATTEMPTS):
        try:
            call = await open_stream()
            tally.open_streams += 1
            if tally.open_streams == tally.streams:
                tally.all_open.set()
            return call
        except grpc.aio.AioRpcError as err:
            if err.code() not in _SHED or attempt == _OPEN_ATTEMPTS - 1:
                raise
            tally.reopened += 1
            await asyncio.sleep(random.uniform(0.05, min(2.0, 0.1 * 2**attempt)))
    raise AssertionError("unreachable")


async def registry_stream(channel: grpc.aio.Channel, tally: Tally, acks: bool = False) -> None:
    """One WatchNodes stream; with `acks` it acknowledges every delta at once (one stream per
    process does, so that the frontend's written -> acknowledged stage has a sample), without
    waiting for the answer: a stream blocked on its ack would read the next change late."""
    stub = registry_pb2_grpc.RegistryStub(channel)
    subscription = ""
    acking: set[asyncio.Future[Any]] = set()

    async def open_stream() -> Any:
        nonlocal subscription
        call = stub.WatchNodes(pb.WatchNodesRequest(scope=pb.Scope(types=["bench"])))
        subscription = (await call.read()).subscription_id  # the snapshot
        return call

    call = await open_with_retry(open_stream, tally)
    while True:
        message = await call.read()
        if message.WhichOneof("message") == "delta":
            for event in message.delta.events:
                if event.type == pb.EVENT_TYPE_ADDED:
                    tally.saw(event.node.id)
            if acks:
                ack = asyncio.ensure_future(
                    stub.AckWatch(
                        pb.AckWatchRequest(
                            subscription_id=subscription, revision=message.delta.revision
                        )
                    )
                )
                acking.add(ack)
                ack.add_done_callback(acking.discard)


async def etcd_stream(channel: grpc.aio.Channel, tally: Tally) -> None:
    async def open_stream() -> Any:
        call = etcd_grpc.WatchStub(channel).Watch()
        await call.write(
            etcd_pb.WatchRequest(
                create_request=etcd_pb.WatchCreateRequest(key=PREFIX, range_end=prefix_end(PREFIX))
            )
        )
        await call.read()  # created
        return call

    call = await open_with_retry(open_stream, tally)
    while True:
        response = await call.read()
        for event in response.events:
            if event.type == etcd_pb.Event.PUT:
                tally.saw(event.kv.key[len(PREFIX) :].decode())


async def raw_stream(channel: grpc.aio.Channel, tally: Tally) -> None:
    async def open_stream() -> Any:
        call = channel.unary_stream("/bench.Raw/Subscribe")(b"")
        await call.read()  # hello
        return call

    call = await open_with_retry(open_stream, tally)
    while True:
        tally.saw((await call.read()).decode())


STREAMS = {"registry": registry_stream, "etcd": etcd_stream, "raw": raw_stream}


async def main(kind: str, target: str, streams: int) -> None:
    tally = Tally(streams)
    channels = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(max(1, streams // 100))
    ]
    tasks = [
        asyncio.create_task(
            STREAMS[kind](
                channels[i % len(channels)],
                tally,
                **({"acks": i == 0} if kind == "registry" else {}),
            )
        )
        for i in range(streams)
    ]
    await tally.all_open.wait()
    print(f"ready {tally.reopened}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for task in tasks:
        task.cancel()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
