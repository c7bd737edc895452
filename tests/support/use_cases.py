"""The use cases of one frontend composed over the in-memory store (tests/support/memory_store.py),
as the composition root composes them over etcd: a started watch hub over the store, then the
registry (Register, KeepAlive, Deregister) and the reads (GetNodes, WatchNodes, AckWatch).
Several frontends over one store are several frontends of one etcd."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from registry_service.core.reads import Reads, ReadsConfig
from registry_service.core.registry import Registry, RegistryConfig
from registry_service.datacenters import Datacenters
from registry_service.domain import Limits, Node, WatchMessage
from registry_service.hub.subscription import Subscription
from registry_service.hub.watch_hub import HubConfig, WatchHub
from tests.support.memory_store import MemoryStore

ADDRESS = "10.0.0.7:7000"


def node(node_id: str, datacenter: str = "dc1", node_type: str = "data", **metadata: str) -> Node:
    return Node(node_id, node_type, datacenter, ADDRESS, metadata)


@dataclass
class Frontend:
    store: MemoryStore
    hub: WatchHub
    registry: Registry
    reads: Reads

    async def caught_up(self) -> None:
        """Waits until this frontend's view holds every write the store committed."""
        assert await self.hub.wait_for_revision(self.store.revision, timeout=5)

    async def close(self) -> None:
        await self.hub.close()


MakeFrontend = Callable[..., Awaitable[Frontend]]  # the `frontend_over` fixture's factory


async def start_frontend(
    store: MemoryStore,
    *,
    limits: Limits | None = None,
    datacenters: Datacenters | None = None,
    coalesce_seconds: float = 0.5,
    sync_timeout_seconds: float = 5.0,
    **hub_options: Any,
) -> Frontend:
    """A frontend's use cases over `store`; `hub_options` are the watch hub's (HubConfig)."""
    limits = limits or Limits()
    hub_options.setdefault("progress_seconds", 600.0)  # no progress messages between deltas
    hub = WatchHub(store, HubConfig(**hub_options), store_connected=lambda: store.connected)
    await hub.start()
    registry = Registry(
        store,
        hub,
        RegistryConfig(limits=limits, keepalive_coalesce_seconds=coalesce_seconds),
        datacenters=datacenters,
    )
    reads = Reads(store, hub, ReadsConfig(limits=limits, sync_timeout_seconds=sync_timeout_seconds))
    return Frontend(store, hub, registry, reads)


async def next_message(subscription: Subscription, timeout: float = 5.0) -> WatchMessage:
    """The subscription's next message; fails the test after `timeout` seconds without one."""
    return await asyncio.wait_for(anext(subscription), timeout)


@contextlib.asynccontextmanager
async def running(work: Awaitable[Any]) -> AsyncIterator[asyncio.Future[Any]]:
    """Runs `work` in the background for the block, then cancels it."""
    task = asyncio.ensure_future(work)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
