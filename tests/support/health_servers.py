"""Services to check, on loopback: a gRPC health server, an HTTP server and a TCP listener whose
health the test sets, each recording who probed it and when (docs/design.md §13)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True)
class Probe:
    """One probe a server received: when (monotonic), of what, from whom (the user agent)."""

    at: float
    what: str
    user_agent: str


@dataclass
class Probes:
    """Every probe a server received, in order."""

    seen: list[Probe] = field(default_factory=list)

    def record(self, what: str, user_agent: str) -> None:
        self.seen.append(Probe(time.monotonic(), what, user_agent))

    def of(self, what: str, since: float = 0.0) -> list[Probe]:
        return [probe for probe in self.seen if probe.what == what and probe.at >= since]

    def count(self, what: str) -> int:
        return len(self.of(what))


class _RecordingHealth(HealthServicer):
    def __init__(self, probes: Probes) -> None:
        super().__init__()
        self._probes = probes

    async def Check(self, request, context):
        agent = dict(context.invocation_metadata() or ()).get("user-agent", "")
        self._probes.record(request.service, agent)
        return await super().Check(request, context)


class GrpcHealthServer:
    """grpc.health.v1 on 127.0.0.1; `set(service, serving)`; `stop()` and `start()` again on the
    same port (the service's health server going away and coming back)."""

    def __init__(self) -> None:
        self.probes = Probes()
        self.port = 0
        self._statuses: dict[str, bool] = {}
        self._server: grpc.aio.Server | None = None
        self._servicer: _RecordingHealth | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> GrpcHealthServer:
        self._server = grpc.aio.server()
        self._servicer = _RecordingHealth(self.probes)
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, self._server)
        self.port = self._server.add_insecure_port(f"127.0.0.1:{self.port}")
        await self._server.start()
        for service, serving in self._statuses.items():
            await self._servicer.set(service, SERVING if serving else NOT_SERVING)
        return self

    async def set(self, service: str, serving: bool) -> None:
        self._statuses[service] = serving
        if self._servicer is not None:
            await self._servicer.set(service, SERVING if serving else NOT_SERVING)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0)
            self._server = self._servicer = None


class HttpHealthServer:
    """An HTTP/1.1 server on 127.0.0.1 answering every GET 200, or 503 while `healthy` is
    False; records each request's path and User-Agent."""

    def __init__(self) -> None:
        self.probes = Probes()
        self.healthy = True
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> HttpHealthServer:
        self._server = await asyncio.start_server(self._answer, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = (await reader.readline()).decode("latin-1").split()
            agent = ""
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "user-agent":
                    agent = value.strip()
            self.probes.record(request[1] if len(request) > 1 else "", agent)
            status = "200 OK" if self.healthy else "503 Service Unavailable"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


class TcpListener:
    """A TCP listener on 127.0.0.1 that accepts and closes; `stop()` frees the port, `start()`
    listens on it again."""

    def __init__(self) -> None:
        self.port = 0
        self.accepted = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> TcpListener:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
