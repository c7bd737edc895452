"""A synchronous facade for scripts and services that are not async.

The async client runs on an event loop in one background thread; each call here waits for its
result, with the same arguments and the same errors as the async API. Callbacks (`on_event`,
`on_state_change`, `on_reregistered`) run in that background thread: keep them short. Blocking
iterators (`events()`, `state_changes()`) hand the same items to the caller's thread instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from client_sdk._bridge import LoopThread, SyncStream, start_pump
from client_sdk._checks import Check
from client_sdk._client import RegistryClient
from client_sdk._closing import Closing
from client_sdk._config import ClientConfig, WatchConfig
from client_sdk._models import (
    Consistency,
    Health,
    Node,
    NodeEvent,
    NodeKey,
    NodeList,
    NodeStatus,
    RegistrationState,
    Scope,
)
from client_sdk._registration import Registration
from client_sdk._transport import Targets
from client_sdk._watch import NodeWatch


class SyncRegistration(Closing):
    """A `Registration` driven from synchronous code; `with` deregisters it on exit.

    Made by `SyncRegistryClient.register`, never directly. Renewals run in the client's
    background thread.
    """

    def __init__(self, loop: LoopThread, registration: Registration) -> None:
        self._loop = loop
        self._registration = registration

    @property
    def node(self) -> Node:
        """The node as the registry stores it (canonical address, incarnation, status)."""
        return self._registration.node

    @property
    def key(self) -> NodeKey:
        """The node's key: (datacenter, type, id)."""
        return self._registration.key

    @property
    def incarnation(self) -> int:
        """The node's incarnation; a new one after each re-registration."""
        return self._registration.incarnation

    @property
    def ttl_seconds(self) -> int:
        """The TTL the registry granted."""
        return self._registration.ttl_seconds

    @property
    def state(self) -> RegistrationState:
        """ACTIVE, SUSPENDED, LOST, HELD or CLOSED, as the background renewals last saw it."""
        return self._registration.state

    def state_changes(self, timeout_seconds: float | None = None) -> SyncStream[RegistrationState]:
        """Every state from this call on, as a blocking iterator that ends after CLOSED.

        Args:
            timeout_seconds: how long the iterator waits for the next state before it raises
                TimeoutError; None waits as long as it takes.

        Returns:
            The iterator; use it in `with` or close it when done.
        """
        return SyncStream(self._loop, self._registration.state_changes, timeout_seconds)

    def update(
        self,
        *,
        address: str | None = None,
        metadata: dict[str, str] | None = None,
        status: NodeStatus | None = None,
        health: Health | None = None,
    ) -> Node:
        """Changes the registered node in place (same incarnation); watchers see UPDATED.

        Args:
            address: a new `host:port`; None keeps the current one.
            metadata: new metadata, replacing all of it; None keeps the current one.
            status: UP or DRAINING; None keeps the current one.
            health: PASSING or FAILING, the node's own report (see `Registration.update`);
                None keeps the current one.

        Returns:
            The node as the registry now stores it.

        Raises:
            InvalidArgumentError: a value breaks a rule (checked here, or by the frontend).
            RegistryUnavailableError: no frontend could be reached.
        """
        return self._loop.run(
            self._registration.update(
                address=address, metadata=metadata, status=status, health=health
            )
        )

    def drain(self, grace_seconds: float = 0.0) -> None:
        """Marks the node DRAINING, waits, then deregisters (see `Registration.drain`).

        Args:
            grace_seconds: how long to wait between the two.
        """
        self._loop.run(self._registration.drain(grace_seconds))

    def detach(self) -> str:
        """Stops renewing without deregistering (see `Registration.detach`).

        Returns:
            The registration token, for `SyncRegistryClient.deregister` (here or elsewhere).
        """
        return self._loop.run(self._registration.detach())

    def close(self) -> None:
        """Stops renewing and deregisters; idempotent."""
        self._loop.run(self._registration.close())

    def deregister(self) -> None:
        """As `close()`, but raises when the registry could not be told.

        See `Registration.deregister`.
        """
        self._loop.run(self._registration.deregister())


class SyncNodeWatch(Closing):
    """A `NodeWatch` driven from synchronous code; `with` closes it on exit.

    Made by `SyncRegistryClient.watch_nodes`, never directly. The stream is read in the client's
    background thread.
    """

    def __init__(self, loop: LoopThread, watch: NodeWatch) -> None:
        self._loop = loop
        self._watch = watch

    @property
    def revision(self) -> int:
        """The revision the stream is complete up to (see `NodeWatch.revision`)."""
        return self._watch.revision

    @property
    def revisions(self) -> dict[str, int]:
        """Per remote datacenter, its registry's revision (see NodeWatch.revisions)."""
        return self._watch.revisions

    @property
    def stale(self) -> bool:
        """The view may be out of date (see NodeWatch.stale)."""
        return self._watch.stale

    def current(self) -> NodeList:
        """The local view, read in the client's thread (never half-applied)."""
        return self._loop.run(self._current())

    async def _current(self) -> NodeList:
        return self._watch.current()

    def events(self, timeout_seconds: float | None = None) -> SyncStream[NodeEvent]:
        """Every change of the view from this call on, as a blocking iterator.

        Args:
            timeout_seconds: how long the iterator waits for the next event before it raises
                TimeoutError; None waits as long as it takes.

        Returns:
            The iterator; it ends when the watch closes. Use it in `with` or close it when done.
        """
        return SyncStream(self._loop, self._watch.events, timeout_seconds)

    def wait_for(self, predicate: Callable[[NodeList], object], timeout: float) -> NodeList:
        """Blocks until the view satisfies a condition (see `NodeWatch.wait_for`).

        Args:
            predicate: called in the client's thread with `current()` after every change; true
                ends the wait.
            timeout: seconds to wait at most.

        Returns:
            The first list for which `predicate` was true.

        Raises:
            TimeoutError: not within `timeout` seconds.
            RegistryError: the watch ended first.
        """
        return self._loop.run(self._watch.wait_for(predicate, timeout))

    def close(self) -> None:
        """Ends the watch, its callback and its event iterators; idempotent."""
        self._loop.run(self._watch.close())


class SyncRegistryClient(Closing):
    """RegistryClient for synchronous code: same arguments, same errors, blocking calls.

    The async client runs on an event loop in a background thread of its own; callbacks run in
    that thread, so keep them short. Use it as
    `with SyncRegistryClient("127.0.0.1:50051") as client:`.

    Args:
        targets: the frontends, as `RegistryClient` takes them.
        config: timeouts, TLS, bearer token, retry pacing.
        home_datacenter: with a mapping of datacenters to frontends, whose frontends serve reads
            and watches (default: the mapping's first).

    Raises:
        InvalidArgumentError: as `RegistryClient` raises it.
    """

    def __init__(
        self,
        targets: Targets,
        *,
        config: ClientConfig | None = None,
        home_datacenter: str = "",
    ) -> None:
        self._loop = LoopThread("noderegistry-client")
        try:
            self._client = self._loop.run(self._make(targets, config, home_datacenter))
        except BaseException:
            self._loop.stop()
            raise

    @staticmethod
    async def _make(
        targets: Targets,
        config: ClientConfig | None,
        home_datacenter: str,
    ) -> RegistryClient:
        return RegistryClient(targets, config=config, home_datacenter=home_datacenter)

    def register(
        self,
        node: Node,
        *,
        ttl_seconds: int = 0,
        on_reregistered: Callable[[SyncRegistration], object] | None = None,
        on_state_change: Callable[[RegistrationState], object] | None = None,
        checks: Sequence[Check] = (),
    ) -> SyncRegistration:
        """Registers `node` and keeps it registered until closed (see RegistryClient.register).

        Args:
            node: the node to register.
            ttl_seconds: the lease TTL to ask for; 0 takes the registry's default.
            on_reregistered: called after the registration was lost and made anew.
            on_state_change: called with every state after this call returns (it is ACTIVE then).
            checks: health checks the registry runs against the node.

        Returns:
            The registration, ACTIVE, renewing in the background until it is closed.

        Raises:
            InvalidArgumentError: a field breaks the registry's rules.
            AlreadyExistsError: the node is registered live by another owner.
            RegistryUnavailableError: no frontend could be reached.
        """
        made: list[SyncRegistration] = []

        def reregistered(_: Registration) -> None:
            if on_reregistered is not None:
                on_reregistered(made[0])

        async def register() -> Registration:
            registration = await self._client.register(
                node, ttl_seconds=ttl_seconds, on_reregistered=reregistered, checks=checks
            )
            if on_state_change is not None:  # subscribed before any later change can happen
                start_pump(registration.state_changes(), on_state_change, "on_state_change")
            return registration

        made.append(SyncRegistration(self._loop, self._loop.run(register())))
        return made[0]

    def deregister(self, key: NodeKey, token: str) -> int:
        """Deregisters a registration by its token (see `RegistryClient.deregister`).

        Args:
            key: the node's key.
            token: the registration token `detach()` returned.

        Returns:
            The etcd revision of the removal.
        """
        return self._loop.run(self._client.deregister(key, token))

    def get_nodes(
        self, scope: Scope | None = None, *, consistency: Consistency = Consistency.LINEARIZABLE
    ) -> NodeList:
        """Reads the nodes of a scope once (see `RegistryClient.get_nodes`).

        Args:
            scope: which nodes; default: all.
            consistency: LINEARIZABLE (default) or CACHED.

        Returns:
            The list, per datacenter, at an etcd revision.
        """
        return self._loop.run(self._client.get_nodes(scope, consistency=consistency))

    def watch_nodes(
        self,
        scope: Scope | None = None,
        *,
        on_event: Callable[[NodeEvent], object] | None = None,
        config: WatchConfig | None = None,
    ) -> SyncNodeWatch:
        """Starts a watch of a scope's nodes (see `RegistryClient.watch_nodes`).

        Args:
            scope: which nodes; default: all.
            on_event: called in the client's thread with every change after this call returns.
            config: the shrink guard, acknowledgements and silence timeout of the watch.

        Returns:
            The watch, started: `current()` is valid at once.
        """

        async def watch_nodes() -> NodeWatch:
            watch = await self._client.watch_nodes(scope, config=config)
            if on_event is not None:  # subscribed before any later change can happen
                start_pump(watch.events(), on_event, "on_event")
            return watch

        return SyncNodeWatch(self._loop, self._loop.run(watch_nodes()))

    def close(self) -> None:
        """Deregisters every registration, ends every watch, stops the background thread."""
        if self._loop.running:
            self._loop.run(self._client.close())
            self._loop.stop()
