"""The gRPC probe: grpc.health.v1 Health/Check of a service; SERVING passes.

A channel per target is kept between probes (a channel costs far more to make than a call).
Its reconnect backoff is kept short: grpc's default grows to two minutes, and a service that
comes back must be seen passing within its check's interval, not minutes later.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from registry_service.core.check_state import ProbeResult

_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.enable_retries", 0),
)
_SERVING = health_pb2.HealthCheckResponse.SERVING


class GrpcProbes:
    """Health Checks over one kept channel per target."""

    def __init__(self, user_agent: str) -> None:
        self._options = (*_CHANNEL_OPTIONS, ("grpc.primary_user_agent", user_agent))
        self._stubs: dict[str, tuple[grpc.aio.Channel, Any]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def _check_call(self, target: str) -> Any:
        entry = self._stubs.get(target)
        if entry is None:
            channel = grpc.aio.insecure_channel(target, options=self._options)
            entry = self._stubs[target] = (channel, health_pb2_grpc.HealthStub(channel).Check)
        return entry[1]

    async def probe(self, target: str, service: str, timeout_seconds: float) -> ProbeResult:
        """One grpc.health.v1 Check of `service` at `target`: SERVING passes."""
        call = self._check_call(target)
        try:
            response = await call(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_seconds
            )
        except grpc.aio.AioRpcError as err:
            if err.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
                return ProbeResult(False, f"timed out after {timeout_seconds:g}s")
            details = " ".join((err.details() or "").split())[:200]
            return ProbeResult(False, f"{err.code().name}: {details}")
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        return ProbeResult(response.status == _SERVING, status)

    def keep_only(self, targets: set[str]) -> None:
        """Closes the channels of targets no longer probed here."""
        for target in [target for target in self._stubs if target not in targets]:
            channel, _ = self._stubs.pop(target)
            task = asyncio.get_running_loop().create_task(channel.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Closes every channel (the keeper stops)."""
        channels = [channel for channel, _ in self._stubs.values()]
        self._stubs.clear()
        for channel in channels:
            with contextlib.suppress(Exception):
                await channel.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
