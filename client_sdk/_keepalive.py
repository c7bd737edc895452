"""The client's one KeepAlive stream, multiplexing the renewals of all its registrations (D12).

Renewals asked for in the same event-loop step go out as one message (`renewals`, D47); the
registrations align their renewals to a shared grid (`KeepAliveSession.next_renewal_in`), so a
client that holds many sends one message per tick for all of them. A frontend that predates
batching answers such a message as a request with no key; the session then falls back to one
message per registration on that stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Any, TypeAlias

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

Answer: TypeAlias = pb.KeepAliveResponse | pb.RenewalResult


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
        self._waiting: dict[NodeKey, list[asyncio.Future[Answer]]] = {}
        self._write_lock = asyncio.Lock()
        self._batch: list[pb.Renewal] = []
        self._flush_scheduled = False
        self._batches_understood = True  # this stream's frontend answers `renewals`
        self._tokens: dict[NodeKey, str] = {}  # the token of each renewal still waiting
        self._flushes: set[asyncio.Task[None]] = set()
        self._grid_origin = time.monotonic()

    def _open(self) -> Any:
        if self._call is None:
            self._target = self._transport.target
            self._call = self._transport.stub(self._target).KeepAlive(
                metadata=self._transport.metadata
            )
            self._reader = asyncio.create_task(self._read(self._call), name="keepalive-reader")
            self._batches_understood = True
        return self._call

    def next_renewal_in(self, interval_seconds: float) -> float:
        """Seconds until a registration renewing every `interval_seconds` renews next.

        The next point of a grid shared by the session, at least a quarter interval away:
        registrations of one TTL thus renew at the same moments, in one message.
        """
        elapsed = time.monotonic() - self._grid_origin + interval_seconds / 4
        return (
            math.ceil(elapsed / interval_seconds) * interval_seconds
            - elapsed
            + (interval_seconds / 4)
        )

    async def _read(self, call: Any) -> None:
        error: RegistryError
        try:
            async for response in call:
                if response.results:
                    for result in response.results:
                        self._deliver(result)
                elif not response.key.id and self._batches_understood:
                    # A frontend from before batching: it read a batch as a request without
                    # a key. One message per registration from now on, on this stream.
                    self._batches_understood = False
                    await self._resend_singly(call)
                else:
                    self._deliver(response)
            error = RegistryUnavailableError(StatusCode.UNAVAILABLE, "KeepAlive stream ended")
        except grpc.aio.AioRpcError as err:
            error = error_from_rpc(err, self._target)
        except asyncio.CancelledError:
            error = RegistryUnavailableError(StatusCode.CANCELLED, "KeepAlive stream closed")
        self._broken(call, error)

    def _deliver(self, answer: Answer) -> None:
        key = NodeKey(answer.key.datacenter, answer.key.type, answer.key.id)
        waiters = self._waiting.get(key)
        if waiters:
            future = waiters.pop(0)
            if not waiters:
                del self._waiting[key]
                self._tokens.pop(key, None)
            if not future.done():
                future.set_result(answer)

    async def _resend_singly(self, call: Any) -> None:
        """Asks again, one message each, for every renewal still waiting for its answer."""
        async with self._write_lock:
            for key, waiters in list(self._waiting.items()):
                token = self._tokens.get(key, "")
                for _ in waiters:
                    await call.write(pb.KeepAliveRequest(key=_convert.key_to_pb(key), token=token))

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
        self._tokens.clear()

    async def renew(self, key: NodeKey, token: str, timeout: float) -> int:
        """Renews one registration; returns the seconds it now has.

        Raises:
            NodeNotFoundError: the lease is gone or the token does not match (re-register).
            RegistryUnavailableError: no answer (stream broken, or timeout).
            RegistryRPCError: any other per-registration code.
        """
        call = self._open()
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        self._tokens[key] = token
        self._batch.append(pb.Renewal(key=_convert.key_to_pb(key), token=token))
        if not self._flush_scheduled:
            # Every renewal asked for in this event-loop step goes out in one message.
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._schedule_flush)
        try:
            async with asyncio.timeout(timeout):
                response = await future
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as err:
            self._broken(call, RegistryUnavailableError(StatusCode.UNAVAILABLE, str(err)))
            raise RegistryUnavailableError(
                StatusCode.UNAVAILABLE, f"KeepAlive to {self._target} failed"
            ) from err
        except TimeoutError:
            silent = f"no KeepAlive answer from {self._target} within {timeout:.3g} s"
            self._broken(call, RegistryUnavailableError(StatusCode.DEADLINE_EXCEEDED, silent))
            if self._reader is not None:
                self._reader.cancel()
            with contextlib.suppress(Exception):
                call.cancel()
            raise RegistryUnavailableError(StatusCode.DEADLINE_EXCEEDED, silent) from None
        if response.code != 0:
            raise error_for_number(response.code, response.message)
        return int(response.ttl_seconds)

    def _schedule_flush(self) -> None:
        self._flush_scheduled = False
        batch, self._batch = self._batch, []
        if batch:
            task = asyncio.create_task(self._flush(self._open(), batch))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _flush(self, call: Any, batch: list[pb.Renewal]) -> None:
        """Writes one batch of renewals.

        One message (or one per renewal, for a frontend from before batching, or a batch of
        one). A failed write fails the renewals' waits (broken).
        """
        try:
            async with self._write_lock:
                if len(batch) == 1 or not self._batches_understood:
                    for renewal in batch:
                        await call.write(pb.KeepAliveRequest(key=renewal.key, token=renewal.token))
                else:
                    await call.write(pb.KeepAliveRequest(renewals=batch))
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as err:
            self._broken(call, RegistryUnavailableError(StatusCode.UNAVAILABLE, str(err)))

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
