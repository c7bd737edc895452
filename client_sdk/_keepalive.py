"""The client's one KeepAlive stream, multiplexing the renewals of all its registrations (D12)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc
import grpc.aio
from noderegistry.v1 import registry_pb2 as pb

from client_sdk import _convert
from client_sdk._errors import (
    RegistryError,
    RegistryUnavailableError,
    StatusCode,
    error_for_number,
)
from client_sdk._models import NodeKey
from client_sdk._transport import Transport, error_from_rpc


class KeepAliveSession:
    """The client's one KeepAlive stream, shared by all its registrations.

    A renewal waits for the answer about its own node; if the stream breaks, every waiting renewal
    fails with RegistryUnavailableError and the next one opens a new stream on the next frontend.
    """

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._call: Any = None
        self._target = ""
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[NodeKey, list[asyncio.Future[pb.KeepAliveResponse]]] = {}
        self._write_lock = asyncio.Lock()

    def _open(self) -> Any:
        if self._call is None:
            self._target = self._transport.target
            self._call = self._transport.stub(self._target).KeepAlive(
                metadata=self._transport.metadata
            )
            self._reader = asyncio.create_task(self._read(self._call), name="keepalive-reader")
        return self._call

    async def _read(self, call: Any) -> None:
        error: RegistryError
        try:
            async for response in call:
                key = NodeKey(response.key.datacenter, response.key.type, response.key.id)
                waiters = self._waiting.get(key)
                if waiters:
                    future = waiters.pop(0)
                    if not future.done():
                        future.set_result(response)
            error = RegistryUnavailableError(StatusCode.UNAVAILABLE, "KeepAlive stream ended")
        except grpc.aio.AioRpcError as err:
            error = error_from_rpc(err, self._target)
        except asyncio.CancelledError:
            error = RegistryUnavailableError(StatusCode.CANCELLED, "KeepAlive stream closed")
        self._broken(call, error)

    def _broken(self, call: Any, error: RegistryError) -> None:
        if self._call is not call:
            return
        self._call = None
        if isinstance(error, RegistryUnavailableError):
            self._transport.fail_over(self._target)
        for waiters in self._waiting.values():
            for future in waiters:
                if not future.done():
                    future.set_exception(error)
        self._waiting.clear()

    async def renew(self, key: NodeKey, token: str, timeout: float) -> int:
        """Renews one registration; returns the seconds it now has.

        Raises:
            NodeNotFoundError: the lease is gone or the token does not match (re-register).
            RegistryUnavailableError: no answer (stream broken, or timeout).
            RegistryRPCError: any other per-registration code.
        """
        call = self._open()
        future: asyncio.Future[pb.KeepAliveResponse] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        try:
            async with self._write_lock:
                await call.write(pb.KeepAliveRequest(key=_convert.key_to_pb(key), token=token))
            async with asyncio.timeout(timeout):
                response = await future
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as err:
            self._broken(call, RegistryUnavailableError(StatusCode.UNAVAILABLE, str(err)))
            raise RegistryUnavailableError(
                StatusCode.UNAVAILABLE, f"KeepAlive to {self._target} failed"
            ) from err
        except TimeoutError:
            self._broken(call, RegistryUnavailableError(StatusCode.DEADLINE_EXCEEDED, "t/o"))
            if self._reader is not None:
                self._reader.cancel()
            with contextlib.suppress(Exception):
                call.cancel()
            raise RegistryUnavailableError(
                StatusCode.DEADLINE_EXCEEDED, f"no KeepAlive answer from {self._target}"
            ) from None
        if response.code != 0:
            raise error_for_number(response.code, response.message)
        return int(response.ttl_seconds)

    async def close(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await call.done_writing()
            call.cancel()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
