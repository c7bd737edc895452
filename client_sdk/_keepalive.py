"""The client's one KeepAlive stream, multiplexing the renewals of all its registrations (D12).

Renewals asked for in the same event-loop step go out as one message (`renewals`, D47); the
registrations align their renewals to a grid shared by the session (`next_renewal_in`), so a
client that holds many sends one message per tick for all of them. Each client's grid has its own
random phase, so that a fleet started together does not renew in step. A frontend that predates
batching answers such a message as a request with no key; the session then falls back to one
message per registration on that stream.

A stream is not abandoned for one late answer (D70). A renewal that gets no answer within its
deadline fails with `LateAnswerError`, the stream stays, and the registration asks again at once
(in the next batch, on the same stream); an answer that comes after all is still taken: an OK
answers the retry that is waiting for it. The stream is abandoned only when it is dead: the RPC
failed, or nothing at all came back on it for two deadlines while renewals were waiting.
Registrations that failed for any other reason retry together, at the session's one retry point
(`retry_point`), so that their retries stay batched too.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import grpc
import grpc.aio
from noderegistry.v1 import registry_pb2 as pb

from client_sdk import _convert
from client_sdk._backoff import Backoff
from client_sdk._errors import (
    RegistryError,
    RegistryRPCError,
    RegistryUnavailableError,
    StatusCode,
    error_for_number,
)
from client_sdk._models import NodeKey
from client_sdk._transport import Transport, error_from_rpc, one_line

Answer: TypeAlias = pb.KeepAliveResponse | pb.RenewalResult
log = logging.getLogger("client_sdk")

# Requests of one registration still waiting for their answers; beyond this the oldest is
# forgotten (its answer, if it ever comes, is taken by the next one of the same token).
_ASKED_KEPT_PER_KEY = 16
# A stream is dead when nothing at all came back on it for this many renewal deadlines while
# renewals were waiting (one late answer is not a dead stream).
_DEAD_AFTER_DEADLINES = 2


class LateAnswerError(RegistryUnavailableError):
    """No answer within the renewal's deadline, on a stream that is still alive: ask again."""


@dataclass(slots=True)
class _Asked:
    """One renewal request on the stream: its token and whoever waits for its answer."""

    token: str
    waiter: asyncio.Future[Answer]


class KeepAliveSession:
    """The client's one KeepAlive stream, shared by all its registrations.

    A renewal waits for the answer about its own node. When the stream breaks (or is found dead),
    every waiting renewal fails with RegistryUnavailableError and the next one opens a new stream
    on the next frontend.

    Args:
        transport: the frontends of the registry.
        clock: monotonic seconds (tests drive a fake one).
        phase: where in each renewal interval this client's grid lies, in [0, 1); random unless
            a test fixes it.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        clock: Callable[[], float] = time.monotonic,
        phase: float | None = None,
    ) -> None:
        self._transport = transport
        self._clock = clock
        self._call: Any = None
        self._target = ""
        self._reader: asyncio.Task[None] | None = None
        self._asked: dict[NodeKey, collections.deque[_Asked]] = {}
        self._write_lock = asyncio.Lock()
        self._batch: list[pb.Renewal] = []
        self._flush_scheduled = False
        self._batches_understood = True  # this stream's frontend answers `renewals`
        self._flushes: set[asyncio.Task[None]] = set()
        self._grid_origin = clock()
        self._phase = random.random() if phase is None else phase
        # When the stream last showed life: it answered, or renewals began to wait on it.
        self._heard_at = clock()
        config = transport.config
        self._retry_backoff = Backoff.from_config(config)
        self._retry: asyncio.Future[None] | None = None
        self._retry_sleeps: set[asyncio.Task[None]] = set()
        self.streams_opened = 0
        """How many KeepAlive streams this session opened (a new one only when one died)."""
        self.id = secrets.token_urlsafe(16)
        """The session's id, sent with each Register: the registrations this client renews
        together share one lease per TTL in the registry (D73)."""

    def _open(self) -> Any:
        if self._call is None:
            self._target = self._transport.target
            self._call = self._transport.stub(self._target).KeepAlive(
                metadata=self._transport.metadata
            )
            self.streams_opened += 1
            self._heard_at = self._clock()
            self._reader = asyncio.create_task(self._read(self._call), name="keepalive-reader")
            self._batches_understood = True
        return self._call

    def now(self) -> float:
        """The session's clock (monotonic seconds), which its registrations share."""
        return self._clock()

    def next_renewal_in(self, interval_seconds: float) -> float:
        """Seconds until a registration renewing every `interval_seconds` renews next.

        The next point of a grid shared by the session (offset by its phase), at least a quarter
        interval away: registrations of one TTL thus renew at the same moments, in one message,
        and two clients started together do not.
        """
        shift = self._phase * interval_seconds
        elapsed = self._clock() - self._grid_origin - shift + interval_seconds / 4
        return (
            math.ceil(elapsed / interval_seconds) * interval_seconds
            - elapsed
            + (interval_seconds / 4)
        )

    async def retry_point(self, cap_seconds: float) -> None:
        """Waits for the session's next retry, shared by every registration that failed.

        The first to arrive sets it (the session's backoff: jittered, doubling, at most
        `cap_seconds`); the others join it, so that their retries go out as one message. A
        renewal answered OK resets the backoff.
        """
        retry = self._retry
        if retry is None or retry.done():
            retry = self._retry = asyncio.get_running_loop().create_future()
            delay = min(self._retry_backoff.next_delay(), cap_seconds)
            sleeper = asyncio.create_task(self._sleep_then_release(delay, retry))
            self._retry_sleeps.add(sleeper)
            sleeper.add_done_callback(self._retry_sleeps.discard)
        await asyncio.shield(retry)

    async def _sleep_then_release(self, seconds: float, retry: asyncio.Future[None]) -> None:
        try:
            await self._transport.config.sleep(seconds)
        finally:
            if not retry.done():
                retry.set_result(None)

    async def _read(self, call: Any) -> None:
        error: RegistryError
        try:
            async for response in call:
                self._heard_at = self._clock()
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
        """Hands an answer to the oldest request of its key.

        If that request's renewal gave up waiting (late), an OK answer still renews: it answers
        the next request of the same token that is still waiting (the retry).
        """
        key = NodeKey(answer.key.datacenter, answer.key.type, answer.key.id)
        asked = self._asked.get(key)
        if not asked:
            return
        oldest = asked.popleft()
        if not asked:
            del self._asked[key]
        if not oldest.waiter.done():
            oldest.waiter.set_result(answer)
            return
        if answer.code != 0 or not asked:
            return
        for later in asked:
            if later.token == oldest.token and not later.waiter.done():
                later.waiter.set_result(answer)
                return

    async def _resend_singly(self, call: Any) -> None:
        """Asks again, one message each, for every renewal still waiting for its answer."""
        async with self._write_lock:
            for key, asked in list(self._asked.items()):
                for request in list(asked):
                    await call.write(
                        pb.KeepAliveRequest(key=_convert.key_to_pb(key), token=request.token)
                    )

    def _broken(self, call: Any, error: RegistryError) -> None:
        if self._call is not call:
            return
        self._call = None
        if isinstance(error, RegistryUnavailableError):
            self._transport.fail_over(self._target)
        waiting = sum(len(asked) for asked in self._asked.values())
        if waiting and not (
            isinstance(error, RegistryRPCError) and error.code is StatusCode.CANCELLED
        ):
            # One line for the stream, not one per registration that was waiting on it.
            log.warning("KeepAlive stream broke: %s; %d renewal(s) will retry", error, waiting)
        for asked in self._asked.values():
            for request in asked:
                if not request.waiter.done():
                    request.waiter.set_exception(error)
        self._asked.clear()

    def _abandon(self, call: Any, error: RegistryError) -> None:
        """The stream is dead: every waiting renewal fails, the next one opens a new stream."""
        self._broken(call, error)
        if self._reader is not None:
            self._reader.cancel()
        with contextlib.suppress(Exception):
            call.cancel()

    def _dead(self, deadline_seconds: float) -> bool:
        """Nothing came back for `_DEAD_AFTER_DEADLINES` deadlines while renewals waited."""
        return self._clock() - self._heard_at >= _DEAD_AFTER_DEADLINES * deadline_seconds

    async def renew(self, key: NodeKey, token: str, timeout: float) -> int:
        """Renews one registration; returns the seconds it now has.

        Args:
            key: the registration's node.
            token: its registration token.
            timeout: the renewal's deadline, in seconds.

        Raises:
            NodeNotFoundError: the lease is gone or the token does not match (re-register).
            LateAnswerError: no answer within `timeout` on a stream that is alive: ask again.
            RegistryUnavailableError: the stream broke, or is dead (nothing came back on it for
                two deadlines); the next renewal opens a new one.
            RegistryRPCError: any other per-registration code.
        """
        call = self._open()
        waiter: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        if not self._asked:
            self._heard_at = self._clock()  # the silence that counts starts now
        asked = self._asked.setdefault(key, collections.deque())
        if len(asked) >= _ASKED_KEPT_PER_KEY:
            asked.popleft()
        asked.append(_Asked(token, waiter))
        self._batch.append(pb.Renewal(key=_convert.key_to_pb(key), token=token))
        if not self._flush_scheduled:
            # Every renewal asked for in this event-loop step goes out in one message.
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._schedule_flush)
        try:
            async with asyncio.timeout(timeout):
                response = await waiter
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as err:
            error = self._stream_error(err)
            self._broken(call, error)
            raise error from err
        except TimeoutError:
            silent = f"no KeepAlive answer from {self._target} within {timeout:.3g} s"
            if call is self._call and not self._dead(timeout):
                raise LateAnswerError(StatusCode.DEADLINE_EXCEEDED, silent) from None
            dead = f"{silent}; nothing came back on the stream for {2 * timeout:.3g} s"
            self._abandon(call, RegistryUnavailableError(StatusCode.DEADLINE_EXCEEDED, dead))
            raise RegistryUnavailableError(StatusCode.DEADLINE_EXCEEDED, dead) from None
        if response.code != 0:
            raise error_for_number(response.code, response.message)
        self._retry_backoff.reset()
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
            self._broken(call, self._stream_error(err))

    def _stream_error(self, err: grpc.aio.AioRpcError | asyncio.InvalidStateError) -> RegistryError:
        """A broken stream, whatever grpc's code: UNAVAILABLE.

        The renewals move to the next frontend; the error is one line naming the frontend (never
        grpc's multi-line error object).
        """
        if isinstance(err, grpc.aio.AioRpcError):
            cause = f"{err.code().name}: {one_line(err.details() or '')}"
        else:
            cause = "closed"
        return RegistryUnavailableError(
            StatusCode.UNAVAILABLE, f"KeepAlive stream to {self._target} failed ({cause})"
        )

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
        for sleeper in list(self._retry_sleeps):
            sleeper.cancel()
