"""A fake frontend for the SDK's KeepAlive session and registrations: a stream whose answers the
test sends, a Register the test scripts, and a clock the test moves (no network, no sleeps)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import grpc.aio
from noderegistry.v1 import registry_pb2 as pb

from client_sdk import ClientConfig, Node
from client_sdk._models import NodeKey

_END = object()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class FakeCall:
    """One KeepAlive stream: what the client wrote, and the answers the test sends it."""

    def __init__(self) -> None:
        self.written: list[pb.KeepAliveRequest] = []
        self.wrote = asyncio.Event()
        self.cancelled = False
        self._answers: asyncio.Queue[object] = asyncio.Queue()

    async def write(self, request: pb.KeepAliveRequest) -> None:
        self.written.append(request)
        self.wrote.set()

    async def done_writing(self) -> None:
        return None

    def cancel(self) -> bool:
        self.cancelled = True
        self._answers.put_nowait(_END)
        return True

    def answer(self, response: pb.KeepAliveResponse) -> None:
        self._answers.put_nowait(response)

    def fail(self, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        error = grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "gone")
        self._answers.put_nowait(error)

    async def __aiter__(self) -> AsyncIterator[pb.KeepAliveResponse]:
        while True:
            item = await self._answers.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, pb.KeepAliveResponse)
            yield item

    def keys_written(self) -> list[list[str]]:
        """The node ids of each message written, in order."""
        return [
            [r.key.id for r in request.renewals] if request.renewals else [request.key.id]
            for request in self.written
        ]


class FakeStub:
    def __init__(self, transport: FakeTransport) -> None:
        self._transport = transport

    def KeepAlive(self, metadata: Any = ()) -> FakeCall:
        call = FakeCall()
        self._transport.calls.append(call)
        return call

    async def Register(
        self, request: pb.RegisterRequest, timeout: float = 0.0, metadata: Any = ()
    ) -> pb.RegisterResponse:
        self._transport.registers.append(request)
        step = self._transport.register_steps.pop(0) if self._transport.register_steps else None
        if isinstance(step, BaseException):
            raise step
        node = request.node
        node.incarnation = 1
        return pb.RegisterResponse(
            node=node,
            ttl_seconds=request.ttl_seconds,
            token="t1",
            session_lease=bool(request.session) and self._transport.knows_sessions,
        )


class FakeTransport:
    """Stands in for client_sdk._transport.Transport: one target, fake stubs."""

    def __init__(self, config: ClientConfig | None = None) -> None:
        self.config = config or ClientConfig(sleep=self.sleep)
        self.target = "frontend-a"
        self.metadata: tuple[tuple[str, str], ...] = ()
        self.calls: list[FakeCall] = []
        self.failed_over: list[str] = []
        self.registers: list[pb.RegisterRequest] = []
        self.register_steps: list[BaseException | None] = []
        self.knows_sessions = True  # False: a frontend from before shared session leases
        self.slept: list[float] = []
        self.sleeping: list[asyncio.Future[None]] = []

    def stub(self, target: str) -> FakeStub:
        return FakeStub(self)

    def fail_over(self, failed_target: str) -> None:
        self.failed_over.append(failed_target)

    async def unary(self, method: str, request: Any) -> Any:
        from client_sdk._transport import error_from_rpc

        try:
            return await getattr(self.stub(self.target), method)(request)
        except grpc.aio.AioRpcError as err:
            raise error_from_rpc(err, self.target) from err

    async def sleep(self, seconds: float) -> None:
        """Records the wait and parks until the test releases it (`release_sleeps`)."""
        self.slept.append(seconds)
        parked = asyncio.get_running_loop().create_future()
        self.sleeping.append(parked)
        await parked

    def release_sleeps(self) -> int:
        parked, self.sleeping = self.sleeping, []
        for future in parked:
            if not future.done():
                future.set_result(None)
        return len(parked)


def ok(key: NodeKey, ttl: int = 9) -> pb.RenewalResult:
    return pb.RenewalResult(
        key=pb.NodeKey(datacenter=key.datacenter, type=key.type, id=key.id), ttl_seconds=ttl
    )


def refused(key: NodeKey, code: grpc.StatusCode) -> pb.RenewalResult:
    return pb.RenewalResult(
        key=pb.NodeKey(datacenter=key.datacenter, type=key.type, id=key.id),
        code=code.value[0],
        message=code.name,
    )


def batch(*results: pb.RenewalResult) -> pb.KeepAliveResponse:
    return pb.KeepAliveResponse(results=list(results))


def node(node_id: str) -> Node:
    return Node(node_id, "data", "dc1", "10.0.0.1:7000")


def rpc_error(
    code: grpc.StatusCode, details: str = "", trailing: tuple[tuple[str, str], ...] = ()
) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailing), details or code.name
    )


async def settle(condition: Callable[[], bool], steps: int = 200) -> None:
    """Lets the event loop run until `condition` holds (a bounded number of steps, no sleep)."""
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")
