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
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

from registry_service.errors import StoreCompactedError, StoreError, StoreUnavailableError
from registry_service.retry import Backoff, ThrottledLog
from registry_service.store._etcdpb import rpc_pb2 as pb
from registry_service.store._etcdpb import rpc_pb2_grpc as pb_grpc
from registry_service.store.etcd_client.connection import EtcdConnection, describe
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
    """Watches on the streams' endpoint, and whether etcd is reachable with a quorum (the
    frontend's `connected`, D22, D43): the last watch stream is up AND the last quorum probe on
    its endpoint answered.

    The probe is a linearizable read (count only, of the watched prefix) sent on the stream's
    endpoint when neither an event nor a probe has confirmed etcd for half of
    `outage_detection_seconds`, with a deadline of `outage_detection_seconds`: an outage is noticed
    within 1.75 times that (measured: 1.7 s by default), and an idle frontend probes twice a
    second. Progress notifications cannot tell: a member without a leader still
    answers them. etcd itself cancels a `hasleader` watch only some seconds after losing its
    leader. When the probe fails, every etcd call in flight is abandoned (it would wait out its
    deadline) and the stream moves to the next endpoint.
    """

    def __init__(self, connection: EtcdConnection) -> None:
        self._connection = connection
        self._stream_up = False
        self._quorum = False
        self.connected = False
        self.connected_since = 0.0  # monotonic time `connected` last became true
        self.up = asyncio.Event()  # set once `connected` has first become true
        self._confirmed_at = 0.0  # the last event or answered probe: etcd committed then
        self._read_deadline: asyncio.Timeout | None = None
        self._abandon_stream = False
        self._probe_log = ThrottledLog(log, "etcd quorum probe")
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        """Calls `listener()` (in the event loop, at once) each time `connected` flips, so that
        whoever serves lists says stale or fresh when it happens (D81)."""
        self._listeners.append(listener)

    def _set(self, *, stream_up: bool | None = None, quorum: bool | None = None) -> None:
        if stream_up is not None:
            self._stream_up = stream_up
        if quorum is not None:
            self._quorum = quorum
        connected = self._stream_up and self._quorum
        if connected and not self.connected:
            self.connected_since = time.monotonic()
            self.up.set()
        changed, self.connected = connected != self.connected, connected
        if changed:
            for listener in self._listeners:
                listener()

    async def watch(self, prefix: bytes, start_revision: int) -> AsyncIterator[WatchItem]:
        """Yields every revision that changed a key under prefix, from start_revision on, in order.

        Each revision is yielded exactly once even across reconnects: after any stream error the
        watch is reopened (on the next endpoint) from the last yielded revision + 1. A heartbeat is
        yielded for every response without events (progress). A stream that says nothing for
        `watch_stale_seconds`, despite progress requests every third of that, is reopened, and so
        is one whose endpoint fails the quorum probe.

        Raises:
            StoreCompactedError: the next revision to deliver has been compacted; re-list.
        """
        connection = self._connection
        next_revision = start_revision
        backoff = Backoff()
        stale = connection.config.watch_stale_seconds
        interruptions = ThrottledLog(log, "etcd watch")
        while True:
            endpoint = connection.endpoint
            self._abandon_stream = False
            call = connection.stub(pb_grpc.WatchStub).Watch(metadata=await connection.metadata())
            helpers: list[asyncio.Task[None]] = []
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
                helpers = [
                    asyncio.create_task(_request_progress(call, stale / 3)),
                    asyncio.create_task(self._probe_quorum(prefix, endpoint)),
                ]
                while True:
                    if self._abandon_stream:
                        raise StoreUnavailableError("its endpoint failed the quorum probe")
                    async with asyncio.timeout(stale) as self._read_deadline:
                        response = await call.read()
                    self._read_deadline = None
                    if response is grpc.aio.EOF:
                        raise StoreUnavailableError("etcd closed the watch stream")
                    backoff.reset()
                    if not self._stream_up:
                        interruptions.succeeded()
                    self._set(stream_up=True)
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
                    self._confirmed_at = time.monotonic()
                    for batch in group_by_revision(response.events):
                        yield batch
                        next_revision = batch.revision + 1
            except (grpc.aio.AioRpcError, StoreUnavailableError, TimeoutError) as err:
                self._set(stream_up=False)
                reason = "it failed the quorum probe" if self._abandon_stream else describe(err)
                interruptions.failed(
                    f"on {endpoint} interrupted ({reason}); resuming at {next_revision}"
                )
                connection.stream_failed(err)
            finally:
                self._read_deadline = None
                for helper in helpers:
                    helper.cancel()
                call.cancel()
            await backoff.wait()

    async def _probe_quorum(self, prefix: bytes, endpoint: str) -> None:
        """While the stream on `endpoint` is open: probe at once, then whenever it is quiet."""
        detection = self._connection.config.outage_detection_seconds
        while True:
            if not self._quorum or time.monotonic() - self._confirmed_at >= detection / 2:
                try:
                    await self._connection.call(
                        "probe",
                        lambda ep: self._connection.stub(pb_grpc.KVStub, ep).Range,
                        pb.RangeRequest(key=prefix, count_only=True),
                        idempotent=True,
                        endpoint=endpoint,
                        timeout_seconds=detection,
                    )
                except StoreError as err:
                    self._lost_quorum(endpoint, err)
                else:
                    self._confirmed_at = time.monotonic()
                    self._probe_log.succeeded()
                    self._set(quorum=True)
            await asyncio.sleep(detection / 4)

    def _lost_quorum(self, endpoint: str, err: StoreError) -> None:
        was_connected = self.connected
        self._set(quorum=False)
        abandoned = self._connection.abort_calls(
            f"etcd at {endpoint} gave no linearizable answer within "
            f"{self._connection.config.outage_detection_seconds:g}s (no leader or quorum?)"
        )
        self._probe_log.failed(
            f"{endpoint} failed ({err}); serving stale lists, refusing writes"
            + (f", {abandoned} etcd calls abandoned" if abandoned else "")
            if was_connected
            else f"{endpoint} failed ({err})"
        )
        if len(self._connection.config.endpoints) > 1:  # the stream moves to the next one
            self._abandon_stream = True
            if self._read_deadline is not None:
                self._read_deadline.reschedule(asyncio.get_running_loop().time())


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
