"""The ceiling of a Python frontend: a minimal grpc.aio server that pushes one small message to
every open stream, nothing else (no etcd, no protobuf, no filtering); and Echo, a unary call that
does nothing, whose CPU cost is the floor of any unary RPC such as Register.

    python -m bench.raw_fanout   (prints its port; Push(b"marker") broadcasts the marker)
"""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio


class Fanout:
    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[bytes]] = set()

    async def subscribe(self, request: bytes, context: grpc.aio.ServicerContext):  # type: ignore[no-untyped-def]
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.queues.add(queue)
        try:
            yield b"hello"
            while True:
                yield await queue.get()
        finally:
            self.queues.discard(queue)

    async def push(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        for queue in self.queues:
            queue.put_nowait(request)
        return b""


async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


async def main() -> None:
    fanout = Fanout()
    identity = lambda data: data  # noqa: E731
    handlers = grpc.method_handlers_generic_handler(
        "bench.Raw",
        {
            "Subscribe": grpc.unary_stream_rpc_method_handler(fanout.subscribe, identity, identity),
            "Push": grpc.unary_unary_rpc_method_handler(fanout.push, identity, identity),
            "Echo": grpc.unary_unary_rpc_method_handler(echo, identity, identity),
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handlers,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main())
