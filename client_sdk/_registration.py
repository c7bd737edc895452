"""Registrations that never silently vanish.

A `Registration` renews at TTL/3 over the client's one KeepAlive stream. When no frontend answers it
is SUSPENDED (the lease may still be alive) and keeps trying; when the registry says the lease is
gone it is LOST and registers again, with the same identity and a new incarnation, and calls the
callback. It never gives up: retries are jittered and capped, never stopped. An operator who
evicts the node with a hold makes it HELD: it registers again once the hold ends (the registry
says when). `close()` deregisters; `detach()` leaves the registration to its TTL and returns its
token.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import math
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from noderegistry.v1 import registry_pb2 as pb

from client_sdk import _convert, _validation
from client_sdk._backoff import Backoff
from client_sdk._broadcast import Broadcast, Subscription
from client_sdk._checks import Check
from client_sdk._closing import AsyncClosing
from client_sdk._errors import (
    FailedPreconditionError,
    NodeNotFoundError,
    RegistryError,
    RegistryRPCError,
    RegistryUnavailableError,
    ResourceExhaustedError,
    StatusCode,
)
from client_sdk._keepalive import KeepAliveSession, LateAnswerError
from client_sdk._models import Health, Node, NodeKey, NodeStatus, RegistrationState
from client_sdk._transport import Transport

log = logging.getLogger("client_sdk")

ReregisteredCallback = Callable[["Registration"], Awaitable[None] | None]


class Registration(AsyncClosing):
    """A node registered with the registry, kept alive in the background until closed.

    Made by `RegistryClient.register`, never directly. Use `state` / `state_changes()` to observe
    it, `on_reregistered` (given to `RegistryClient.register`) to learn of a new incarnation,
    `drain()` to announce a departure, and `close()` to deregister; or
    `async with await client.register(node) as registration:`, which deregisters on exit.

    Attributes:
        reregistrations: how often the lease was lost and the node registered anew.
    """

    def __init__(
        self,
        transport: Transport,
        session: KeepAliveSession,
        node: Node,
        ttl_seconds: int,
        on_reregistered: ReregisteredCallback | None,
        on_closed: Callable[[Registration], None] | None = None,
        checks: Sequence[Check] = (),
    ) -> None:
        _validation.check_node(node)
        _validation.check_ttl(ttl_seconds)
        _validation.check_checks(checks)
        self._checks = tuple(checks)
        self._transport = transport
        self._session = session
        self._wanted = node
        self._ttl_requested = ttl_seconds
        self._on_reregistered = on_reregistered
        self._on_closed = on_closed
        self._node = node
        self._ttl = ttl_seconds
        self._token = ""
        self._session_lease = False  # it rides on the session's shared lease (D73)
        self._state = RegistrationState.LOST
        self._states: Broadcast[RegistrationState] = Broadcast()
        self._task: asyncio.Task[None] | None = None
        self.reregistrations = 0
        """How often the lease was lost and the node registered anew."""

    # -- public -------------------------------------------------------------------------------

    @property
    def node(self) -> Node:
        """The node as the registry stores it (canonical address, incarnation, status)."""
        return self._node

    @property
    def key(self) -> NodeKey:
        """The node's key: (datacenter, type, id)."""
        return self._node.key

    @property
    def incarnation(self) -> int:
        """The node's incarnation; a new one after each re-registration."""
        return self._node.incarnation

    @property
    def ttl_seconds(self) -> int:
        """The TTL the registry granted."""
        return self._ttl

    @property
    def renew_interval_seconds(self) -> float:
        """How often the registration is renewed: a third of the granted TTL."""
        return self._ttl / 3

    @property
    def renew_deadline_seconds(self) -> float:
        """How long a renewal waits for its answer before it asks again: half an interval.

        Room for two misses within the TTL: the last renewal answered was sent at s, so the
        lease lasts until at least s + TTL; the next goes at s + TTL/3, a late one is asked again
        at s + TTL/2 and at s + 2 TTL/3, and that third try still has TTL/6 for its answer.
        """
        return self.renew_interval_seconds / 2

    @property
    def state(self) -> RegistrationState:
        """ACTIVE, SUSPENDED, LOST, HELD or CLOSED, as the background renewals last saw it."""
        return self._state

    def state_changes(self) -> AsyncIterator[RegistrationState]:
        """Every state from this call on, until CLOSED (which it yields last).

        Subscribed at the call: a change between the call and the first read is not missed.

        Returns:
            An async iterator of the states; stop reading it whenever you like.
        """
        subscription = Subscription(self._states)

        async def states() -> AsyncIterator[RegistrationState]:
            try:
                async for state in subscription:
                    yield state
            finally:  # the reader stopped early: unsubscribe
                subscription.close()

        return states()

    async def update(
        self,
        *,
        address: str | None = None,
        metadata: dict[str, str] | None = None,
        status: NodeStatus | None = None,
        health: Health | None = None,
    ) -> Node:
        """Changes the registered node in place (same incarnation); watchers see UPDATED.

        An operator's status (OUT_OF_SERVICE, or a drain) stays while the operator keeps it; the
        returned node shows it.

        Args:
            address: a new `host:port`; None keeps the current one.
            metadata: new metadata, replacing all of it; None keeps the current one.
            status: UP or DRAINING; None keeps the current one.
            health: PASSING or FAILING, the node's own report of its health (a sidecar's local
                check), for a registration without checks the registry runs (with checks, the
                registry's probes decide). A node that flips too often is held FAILING for a
                while (flap damping, `Node.damped`). None keeps the current one.

        Returns:
            The node as the registry now stores it.

        Raises:
            InvalidArgumentError: a value breaks a rule (checked here, or by the frontend).
            RegistryUnavailableError: no frontend could be reached.
        """
        changes: dict[str, Any] = {}
        if address is not None:
            _validation.check_text("address", address)
            changes["address"] = address
        if metadata is not None:
            _validation.check_metadata(metadata)
            changes["metadata"] = metadata
        if status is not None:
            _validation.check_status(status)
            changes["status"] = status
        if health is not None:
            _validation.check_health(health)
            changes["health"] = health
        self._wanted = dataclasses.replace(self._wanted, **changes)
        await self._register(token=self._token)
        return self._node

    async def drain(self, grace_seconds: float = 0.0) -> None:
        """Marks the node DRAINING, waits, then deregisters.

        Watchers see the node UPDATED to DRAINING (pickers stop sending it new work), then
        REMOVED with reason DEREGISTERED.

        Args:
            grace_seconds: how long to wait between the two.

        Raises:
            InvalidArgumentError: a negative `grace_seconds`.
            RegistryUnavailableError: no frontend could be reached to mark it DRAINING.
        """
        _validation.check_seconds("grace_seconds", grace_seconds)
        await self.update(status=NodeStatus.DRAINING)
        if grace_seconds > 0:
            await self._transport.config.sleep(grace_seconds)
        await self.close()

    async def detach(self) -> str:
        """Stops renewing without deregistering, and returns the registration token.

        The node stays registered until its TTL runs out, unless whoever holds the token renews
        it or deregisters it (`RegistryClient.deregister`, `noderegistry deregister`). Keep the
        token secret: it proves ownership. The registration is CLOSED here afterwards.

        A registration that shares its client's session lease (D73) is first moved to a lease
        of its own (one Register call; watchers see it UPDATED, unchanged), so that it lives out
        its TTL alone while the client's other registrations keep renewing.

        Returns:
            The registration token.

        Raises:
            RegistryRPCError: the registration is already closed (FAILED_PRECONDITION), or it
                could not be moved off its session's lease (it is then still renewed, as
                before: try again).
        """
        if self._state is RegistrationState.CLOSED:
            raise RegistryRPCError(
                StatusCode.FAILED_PRECONDITION, f"registration {self.key} is already closed"
            )
        if self._session_lease:
            await self._register(token=self._token, in_session=False)
        await self._stop_renewing()
        token = self._token
        self._finish()
        return token

    async def _stop_renewing(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _finish(self) -> None:
        self._set_state(RegistrationState.CLOSED)
        self._states.end()
        if self._on_closed is not None:
            self._on_closed(self)

    async def close(self) -> None:
        """Stops renewing and deregisters (reason DEREGISTERED); idempotent.

        A registration already gone is fine; when the Deregister fails (no frontend could be
        reached), one warning line is logged and the lease's TTL ends the registration;
        `deregister()` raises it instead.
        """
        try:
            await self.deregister()
        except RegistryRPCError as err:
            log.warning("could not deregister %s (its TTL will end it): %s", self.key, err)

    async def deregister(self) -> None:
        """Stops renewing and deregisters, as `close()`, but raises when that failed.

        The registration is CLOSED here either way; when the registry could not be told, it
        lives on there until its TTL runs out. Does nothing when already closed.

        Raises:
            RegistryRPCError: the Deregister failed (RegistryUnavailableError: no frontend
                answered). A registration already gone (NOT_FOUND) is not an error.
        """
        if self._state is RegistrationState.CLOSED:
            return
        await self._stop_renewing()
        try:
            if self._token:
                request = pb.DeregisterRequest(key=_convert.key_to_pb(self.key), token=self._token)
                with contextlib.suppress(NodeNotFoundError):  # already gone
                    await self._transport.unary("Deregister", request)
        finally:
            self._finish()

    # -- internals ----------------------------------------------------------------------------

    def _set_state(self, state: RegistrationState) -> None:
        if state is not self._state:
            log.info("registration %s: %s -> %s", self.key, self._state.value, state.value)
            self._state = state
            self._states.publish(state)

    async def _register(
        self, token: str = "", patience_seconds: float | None = None, *, in_session: bool = True
    ) -> None:
        """One Register call, retried on other frontends with the same idempotency key.

        In the client's session (its registrations share a lease per TTL, D73) unless
        `in_session` is False. A Register the registry refused as overloaded (RESOURCE_EXHAUSTED
        with a retry pushback) is sent again after the pushback, for up to `patience_seconds`
        (None: the client's `register_overload_wait_seconds`; infinity: until it is taken).
        """
        config = self._transport.config
        patience = config.register_overload_wait_seconds
        patience = patience if patience_seconds is None else patience_seconds
        request = pb.RegisterRequest(
            node=_convert.node_to_pb(self._wanted),
            ttl_seconds=self._ttl_requested,
            idempotency_key=secrets.token_urlsafe(18),
            token=token,
            checks=[_convert.check_to_pb(check) for check in self._checks],
            session=self._session.id if in_session else "",
        )
        waited = 0.0
        while True:
            try:
                response = await self._transport.unary("Register", request)
                break
            except ResourceExhaustedError as err:
                pushback = err.retry_after_seconds
                if pushback is None or waited + pushback > patience:
                    raise
                await config.sleep(pushback)
                waited += pushback
        self._node = _convert.node_from_pb(response.node)
        self._ttl = response.ttl_seconds
        self._token = response.token
        self._session_lease = response.session_lease

    async def start(self) -> None:
        """Registers, then renews in the background; `RegistryClient.register` calls it.

        Raises:
            RegistryRPCError: the first Register failed (the subclass for its status).
        """
        await self._register()
        self._set_state(RegistrationState.ACTIVE)
        self._task = asyncio.create_task(self._keep_alive(), name=f"keepalive-{self.key}")

    async def _keep_alive(self) -> None:
        """Renews on the session's grid until cancelled (D70).

        A late answer is asked again at once, in the next batch on the same stream; the
        registration stays ACTIVE unless its last renewal answered is two intervals old (its
        lease may be about to lapse: SUSPENDED). Any other failure is SUSPENDED, and retries at
        the session's one retry point with every other registration that failed, in one message.
        """
        sleep = self._transport.config.sleep
        clock = self._session.now
        renewed_at = clock()
        wait = "grid"
        while True:
            if wait == "grid":
                # On the session's shared grid: a client's registrations renew in one message.
                await sleep(self._session.next_renewal_in(self.renew_interval_seconds))
            elif wait == "retry":
                await self._session.retry_point(self.renew_interval_seconds)
            try:
                await self._session.renew(self.key, self._token, self.renew_deadline_seconds)
                renewed_at = clock()
                wait = "grid"
                self._set_state(RegistrationState.ACTIVE)
            except LateAnswerError:
                wait = "now"
                if clock() - renewed_at >= 2 * self.renew_interval_seconds:
                    self._set_state(RegistrationState.SUSPENDED)
            except NodeNotFoundError:
                self._set_state(RegistrationState.LOST)
                await self._reregister()
                renewed_at = clock()
                wait = "grid"
            except RegistryError as err:
                # A broken stream was logged once by the session, for all its registrations.
                if self._state is RegistrationState.ACTIVE and not isinstance(
                    err, RegistryUnavailableError
                ):
                    log.warning("registration %s: renewal failed: %s", self.key, err)
                self._set_state(RegistrationState.SUSPENDED)
                wait = "retry"

    async def _reregister(self) -> None:
        backoff = Backoff.from_config(self._transport.config)
        while True:
            try:
                # Refused as overloaded: wait as long as the registry says, however often.
                await self._register(patience_seconds=math.inf)
            except FailedPreconditionError as err:
                if err.retry_after_seconds is None:
                    log.warning(
                        "registration %s: re-register refused (retrying): %s", self.key, err
                    )
                    await backoff.wait()
                    continue
                # An operator evicted the node and holds its id out: wait for the hold to end.
                self._set_state(RegistrationState.HELD)
                log.warning(
                    "registration %s: %s; registering again in %.0fs",
                    self.key,
                    err.message,
                    err.retry_after_seconds,
                )
                await self._transport.config.sleep(err.retry_after_seconds + 0.1)
                continue
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
