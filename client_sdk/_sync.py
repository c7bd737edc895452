"""A synchronous facade for scripts and services that are not async.

The async client runs on an event loop in one background thread; each call here waits for its
result. Watch callbacks are called in that background thread: keep them short.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, TypeVar

from client_sdk._client import RegistryClient
from client_sdk._config import ClientConfig, WatchConfig
from client_sdk._models import Consistency, Node, NodeEvent, NodeList, RegistrationState, Scope
from client_sdk._registration import Registration
from client_sdk._watch import NodeWatch

T = TypeVar("T")


class SyncRegistration:
    """A Registration driven from synchronous code."""

    def __init__(self, client: SyncRegistryClient, registration: Registration) -> None:
        self._client = client
        self._registration = registration

    @property
    def node(self) -> Node:
        return self._registration.node

    @property
    def state(self) -> RegistrationState:
        return self._registration.state

    def drain(self, grace_seconds: float = 0.0) -> None:
        self._client._run(self._registration.drain(grace_seconds))

    def close(self) -> None:
        self._client._run(self._registration.close())


class SyncNodeWatch:
    """A NodeWatch driven from synchronous code; `on_event` runs in the client's thread."""

    def __init__(
        self,
        client: SyncRegistryClient,
        watch: NodeWatch,
        on_event: Callable[[NodeEvent], None] | None,
    ) -> None:
        self._client = client
        self._watch = watch
        self._forwarder: asyncio.Task[None] | None = None
        if on_event is not None:
            self._forwarder = client._run(self._start_forwarding(on_event))

    async def _start_forwarding(self, on_event: Callable[[NodeEvent], None]) -> asyncio.Task[None]:
        events = self._watch.events()  # subscribed now: nothing after this call is missed

        async def forward() -> None:
            async for event in events:
                on_event(event)

        return asyncio.create_task(forward())

    def current(self) -> NodeList:
        return self._client._run(self._current())

    async def _current(self) -> NodeList:
        return self._watch.current()

    def close(self) -> None:
        self._client._run(self._close())

    async def _close(self) -> None:
        if self._forwarder is not None:
            self._forwarder.cancel()
        await self._watch.close()


class SyncRegistryClient:
    """RegistryClient for synchronous code: same arguments, same errors, blocking calls.

    Use it as `with SyncRegistryClient("127.0.0.1:50051") as client:`.
    """

    def __init__(self, targets: str | Sequence[str], *, config: ClientConfig | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="noderegistry-client", daemon=True
        )
        self._thread.start()
        self._client: RegistryClient = self._run(self._make(targets, config))

    @staticmethod
    async def _make(targets: str | Sequence[str], config: ClientConfig | None) -> RegistryClient:
        return RegistryClient(targets, config=config)

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def __enter__(self) -> SyncRegistryClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def register(self, node: Node, *, ttl_seconds: int = 0) -> SyncRegistration:
        return SyncRegistration(
            self, self._run(self._client.register(node, ttl_seconds=ttl_seconds))
        )

    def get_nodes(
        self, scope: Scope | None = None, *, consistency: Consistency = Consistency.LINEARIZABLE
    ) -> NodeList:
        return self._run(self._client.get_nodes(scope, consistency=consistency))

    def watch_nodes(
        self,
        scope: Scope | None = None,
        *,
        on_event: Callable[[NodeEvent], None] | None = None,
        config: WatchConfig | None = None,
    ) -> SyncNodeWatch:
        return SyncNodeWatch(
            self, self._run(self._client.watch_nodes(scope, config=config)), on_event
        )

    def close(self) -> None:
        if not self._loop.is_running():
            return
        self._run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
