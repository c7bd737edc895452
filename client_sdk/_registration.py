"""Registrations that never silently vanish.

A `Registration` renews at TTL/3 over the client's one KeepAlive stream. When no frontend answers it
is SUSPENDED (the lease may still be alive) and keeps trying; when the registry says the lease is
gone it is LOST and registers again, with the same identity and a new incarnation, and calls the
callback. It never gives up: retries are jittered and capped, never stopped. `close()` deregisters.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
from noderegistry.v1 import registry_pb2 as pb

from client_sdk import _convert
from client_sdk._errors import (
    NodeNotFoundError,
    RegistryError,
    RegistryRPCError,
    RegistryUnavailableError,
    error_for_number,
    from_rpc_error,
)
from client_sdk._models import Node, NodeKey, NodeStatus, RegistrationState
from client_sdk._transport import Transport

log = logging.getLogger("client_sdk")

ReregisteredCallback = Callable[["Registration"], Awaitable[None] | None]


class Backoff:
    def __init__(self, transport: Transport, maximum: float | None = None) -> None:
        self._config = transport.config
        self._maximum = maximum or self._config.retry_max_seconds
        self._next = self._config.retry_initial_seconds

    def reset(self) -> None:
        self._next = self._config.retry_initial_seconds

    async def wait(self) -> None:
        delay = min(self._next, self._maximum) * random.uniform(0.5, 1.0)
        self._next = min(self._next * 2, self._maximum)
        await self._config.sleep(delay)


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
            error = RegistryUnavailableError(grpc.StatusCode.UNAVAILABLE, "KeepAlive stream ended")
        except grpc.aio.AioRpcError as err:
            error = from_rpc_error(err, self._target)
        except asyncio.CancelledError:
            error = RegistryUnavailableError(grpc.StatusCode.CANCELLED, "KeepAlive stream closed")
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
            self._broken(call, RegistryUnavailableError(grpc.StatusCode.UNAVAILABLE, str(err)))
            raise RegistryUnavailableError(
                grpc.StatusCode.UNAVAILABLE, f"KeepAlive to {self._target} failed"
            ) from err
        except TimeoutError:
            self._broken(call, RegistryUnavailableError(grpc.StatusCode.DEADLINE_EXCEEDED, "t/o"))
            if self._reader is not None:
                self._reader.cancel()
            with contextlib.suppress(Exception):
                call.cancel()
            raise RegistryUnavailableError(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"no KeepAlive answer from {self._target}"
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


class Registration:
    """A node registered with the registry, kept alive in the background until closed.

    Use `state` / `state_changes()` to observe it, `on_reregistered` (given to
    `RegistryClient.register`) to learn of a new incarnation, `drain()` to announce a departure,
    and `close()` to deregister.
    """

    def __init__(
        self,
        transport: Transport,
        session: KeepAliveSession,
        node: Node,
        ttl_seconds: int,
        on_reregistered: ReregisteredCallback | None,
    ) -> None:
        self._transport = transport
        self._session = session
        self._wanted = node
        self._ttl_requested = ttl_seconds
        self._on_reregistered = on_reregistered
        self._node = node
        self._ttl = ttl_seconds
        self._token = ""
        self._state = RegistrationState.LOST
        self._listeners: set[asyncio.Queue[RegistrationState]] = set()
        self._task: asyncio.Task[None] | None = None
        self.reregistrations = 0

    # -- public -------------------------------------------------------------------------------

    @property
    def node(self) -> Node:
        """The node as the registry stores it (canonical address, incarnation, status)."""
        return self._node

    @property
    def key(self) -> NodeKey:
        return self._node.key

    @property
    def incarnation(self) -> int:
        return self._node.incarnation

    @property
    def ttl_seconds(self) -> int:
        """The TTL the registry granted."""
        return self._ttl

    @property
    def renew_interval_seconds(self) -> float:
        return self._ttl / 3

    @property
    def state(self) -> RegistrationState:
        return self._state

    async def state_changes(self) -> AsyncIterator[RegistrationState]:
        """Yields every state from now on, until CLOSED (which it yields last)."""
        queue: asyncio.Queue[RegistrationState] = asyncio.Queue()
        self._listeners.add(queue)
        try:
            while True:
                state = await queue.get()
                yield state
                if state is RegistrationState.CLOSED:
                    return
        finally:
            self._listeners.discard(queue)

    async def update(
        self,
        *,
        address: str | None = None,
        metadata: dict[str, str] | None = None,
        status: NodeStatus | None = None,
    ) -> Node:
        """Changes the registered node in place (same incarnation); watchers see UPDATED."""
        changes: dict[str, Any] = {}
        if address is not None:
            changes["address"] = address
        if metadata is not None:
            changes["metadata"] = metadata
        if status is not None:
            changes["status"] = status
        self._wanted = dataclasses.replace(self._wanted, **changes)
        await self._register(token=self._token)
        return self._node

    async def drain(self, grace_seconds: float = 0.0) -> None:
        """Marks the node DRAINING (clients stop sending it new work), waits grace_seconds, then
        deregisters."""
        await self.update(status=NodeStatus.DRAINING)
        if grace_seconds > 0:
            await self._transport.config.sleep(grace_seconds)
        await self.close()

    async def close(self) -> None:
        """Stops renewing and deregisters (reason DEREGISTERED); idempotent."""
        if self._state is RegistrationState.CLOSED:
            return
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._token:
            request = pb.DeregisterRequest(key=_convert.key_to_pb(self.key), token=self._token)
            try:
                await self._transport.unary("Deregister", request)
            except NodeNotFoundError:
                pass  # already gone
            except RegistryRPCError as err:
                log.warning("could not deregister %s (its TTL will end it): %s", self.key, err)
        self._set_state(RegistrationState.CLOSED)

    # -- internals ----------------------------------------------------------------------------

    def _set_state(self, state: RegistrationState) -> None:
        if state is not self._state:
            log.info("registration %s: %s -> %s", self.key, self._state.value, state.value)
            self._state = state
            for queue in self._listeners:
                queue.put_nowait(state)

    async def _register(self, token: str = "") -> None:
        """One Register call, retried on other frontends with the same idempotency key."""
        request = pb.RegisterRequest(
            node=_convert.node_to_pb(self._wanted),
            ttl_seconds=self._ttl_requested,
            idempotency_key=secrets.token_urlsafe(18),
            token=token,
        )
        response = await self._transport.unary("Register", request)
        self._node = _convert.node_from_pb(response.node)
        self._ttl = response.ttl_seconds
        self._token = response.token

    async def start(self) -> None:
        """Registers (errors go to the caller) and starts renewing in the background."""
        await self._register()
        self._set_state(RegistrationState.ACTIVE)
        self._task = asyncio.create_task(self._keep_alive(), name=f"keepalive-{self.key}")

    async def _keep_alive(self) -> None:
        sleep = self._transport.config.sleep
        backoff = Backoff(self._transport, maximum=self.renew_interval_seconds)
        while True:
            await sleep(
                self.renew_interval_seconds if self._state is RegistrationState.ACTIVE else 0
            )
            try:
                await self._session.renew(self.key, self._token, self.renew_interval_seconds)
                backoff.reset()
                self._set_state(RegistrationState.ACTIVE)
            except NodeNotFoundError:
                self._set_state(RegistrationState.LOST)
                await self._reregister()
            except RegistryError as err:
                if self._state is RegistrationState.ACTIVE:
                    log.warning("registration %s: renewal failed: %s", self.key, err)
                self._set_state(RegistrationState.SUSPENDED)
                await backoff.wait()

    async def _reregister(self) -> None:
        backoff = Backoff(self._transport)
        while True:
            try:
                await self._register()
            except RegistryError as err:
                log.warning("registration %s: re-register failed (retrying): %s", self.key, err)
                await backoff.wait()
                continue
            self.reregistrations += 1
            self._set_state(RegistrationState.ACTIVE)
            if self._on_reregistered is not None:
                try:
                    result = self._on_reregistered(self)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("registration %s: on_reregistered callback failed", self.key)
            return
