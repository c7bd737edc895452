"""etcd's Watch API: the watch half of list-at-R-then-watch-from-R+1.

Events come grouped per revision and are resumed from the last delivered revision + 1 after any
stream error; progress requests serve as a staleness watchdog; a compacted start revision is
`StoreCompactedError`. Timeouts use `asyncio.timeout()`, never `asyncio.wait_for()` (D9).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

from registry_service.errors import StoreCompactedError, StoreUnavailableError
from registry_service.store._etcdpb import rpc_pb2 as pb
from registry_service.store._etcdpb import rpc_pb2_grpc as pb_grpc
from registry_service.store.etcd_client.connection import Backoff, EtcdConnection, describe
from registry_service.store.etcd_client.kv import prefix_end

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """All events of one etcd revision under the watched prefix."""

    revision: int
    events: tuple[pb.Event, ...]


@dataclass(frozen=True, slots=True)
class WatchHeartbeat:
    """The watch is alive; etcd was at `revision` (it says nothing about events still in flight)."""

    revision: int


WatchItem = WatchBatch | WatchHeartbeat


class EtcdWatcher:
    """Watches on the streams' endpoint, and whether the last one is up (the frontend's view of
    "etcd is reachable and has a leader", D22)."""

    def __init__(self, connection: EtcdConnection) -> None:
        self._connection = connection
        self.connected = False
        self.connected_since = 0.0  # monotonic time the current watch stream came up
        self.up = asyncio.Event()  # set once a watch stream has first come up

    async def watch(self, prefix: bytes, start_revision: int) -> AsyncIterator[WatchItem]:
        """Yields every revision that changed a key under prefix, from start_revision on, in order.

        Each revision is yielded exactly once even across reconnects: after any stream error the
        watch is reopened (on the next endpoint) from the last yielded revision + 1. A heartbeat is
        yielded for every response without events (progress). A stream that says nothing for
        `watch_stale_seconds`, despite progress requests every third of that, is reopened.

        Raises:
            StoreCompactedError: the next revision to deliver has been compacted; re-list.
        """
        connection = self._connection
        next_revision = start_revision
        backoff = Backoff()
        stale = connection.config.watch_stale_seconds
        while True:
            call = connection.stub(pb_grpc.WatchStub).Watch(metadata=await connection.metadata())
            pinger: asyncio.Task[None] | None = None
            try:
                await call.write(
                    pb.WatchRequest(
                        create_request=pb.WatchCreateRequest(
                            key=prefix,
                            range_end=prefix_end(prefix),
                            start_revision=next_revision,
                            progress_notify=True,
                        )
                    )
                )
                pinger = asyncio.create_task(_request_progress(call, stale / 3))
                while True:
                    async with asyncio.timeout(stale):
                        response = await call.read()
                    if response is grpc.aio.EOF:
                        raise StoreUnavailableError("etcd closed the watch stream")
                    backoff.reset()
                    if not self.connected:
                        self.connected_since = time.monotonic()
                        self.up.set()
                    self.connected = True
                    if response.compact_revision:
                        raise StoreCompactedError(
                            f"etcd compacted revision {next_revision}; it keeps history from "
                            f"{response.compact_revision}"
                        )
                    if response.canceled:
                        raise StoreUnavailableError(
                            f"etcd canceled the watch: {response.cancel_reason}"
                        )
                    if not response.events:
                        if not response.created:
                            yield WatchHeartbeat(int(response.header.revision))
                        continue
                    for batch in group_by_revision(response.events):
                        yield batch
                        next_revision = batch.revision + 1
            except (grpc.aio.AioRpcError, StoreUnavailableError, TimeoutError) as err:
                self.connected = False
                log.warning(
                    "etcd watch on %s interrupted (%s); resuming at %d",
                    connection.endpoint,
                    describe(err),
                    next_revision,
                )
                connection.stream_failed(err)
            finally:
                if pinger is not None:
                    pinger.cancel()
                call.cancel()
            await backoff.wait()


async def _request_progress(call: Any, interval: float) -> None:
    with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
        while True:
            await asyncio.sleep(interval)
            await call.write(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))


def group_by_revision(events: Sequence[pb.Event]) -> list[WatchBatch]:
    """Splits one watch response's events into one batch per revision, in order."""
    batches: list[WatchBatch] = []
    current: list[pb.Event] = []
    revision = 0
    for event in events:
        if current and event.kv.mod_revision != revision:
            batches.append(WatchBatch(revision, tuple(current)))
            current = []
        revision = event.kv.mod_revision
        current.append(event)
    if current:
        batches.append(WatchBatch(revision, tuple(current)))
    return batches
