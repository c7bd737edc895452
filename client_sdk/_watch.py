"""A local view of the cluster, kept current by WatchNodes, across frontends and reconnects.

The watch applies the stream to a *shadow* list (exactly what the registry says) and publishes it as
the view that `current()` and `events()` show. One exception, Eureka's client-side protection: when
the shadow has lost a large share of the view's nodes for reasons other than deregistration (an
empty or much smaller list), the view is held back, flagged stale, until the loss has lasted
`shrink_hold_seconds` or the nodes are back. Deliberate departures are never held back.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio
from noderegistry.v1 import registry_pb2 as pb

from client_sdk import _convert
from client_sdk._config import ShrinkReport, WatchConfig
from client_sdk._errors import RegistryError, WatchClosedError, error_for, from_rpc_error
from client_sdk._models import (
    EventType,
    Node,
    NodeEvent,
    NodeKey,
    NodeList,
    RemovalReason,
    Scope,
)
from client_sdk._registration import Backoff
from client_sdk._transport import Transport

log = logging.getLogger("client_sdk")

_RECONNECT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
_END = object()
_Tick = object()  # wakes `wait_for` when the revision moves without a node event


def diff(old: dict[NodeKey, Node], new: dict[NodeKey, Node], revision: int) -> list[NodeEvent]:
    """The events that turn `old` into `new`."""
    events = [
        NodeEvent(EventType.REMOVED, node, revision)
        for key, node in sorted(old.items())
        if key not in new
    ]
    for key, node in sorted(new.items()):
        previous = old.get(key)
        if previous is None:
            events.append(NodeEvent(EventType.ADDED, node, revision))
        elif previous != node:
            events.append(NodeEvent(EventType.UPDATED, node, revision))
    return events


class EventStream:
    """The events of a NodeWatch from the moment it was created (subscribed at creation, so
    nothing published in between is missed)."""

    def __init__(self, listeners: set[asyncio.Queue[object]]) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._listeners = listeners
        listeners.add(self._queue)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> NodeEvent:
        while True:
            item = await self._queue.get()
            if item is _END:
                self.close()
                raise StopAsyncIteration
            if isinstance(item, NodeEvent):
                return item

    def end(self) -> None:
        self._queue.put_nowait(_END)

    def close(self) -> None:
        self._listeners.discard(self._queue)


class NodeWatch:
    """The nodes of a scope, kept current; iterate `events()` for changes, call `current()` for
    the list. Created (and started) by `RegistryClient.watch_nodes`; close it when done."""

    def __init__(
        self,
        transport: Transport,
        scope: Scope,
        config: WatchConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self._clock = clock
        self.scope = scope
        self._config = config
        self._shadow: dict[NodeKey, Node] = {}
        self._view: dict[NodeKey, Node] = {}
        self._deliberate: set[NodeKey] = set()
        self._revision = 0
        self._view_revision = 0
        self._held_since: float | None = None
        self._recent_losses: collections.deque[tuple[float, NodeKey]] = collections.deque()
        self._listeners: set[asyncio.Queue[object]] = set()
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._error: RegistryError | None = None
        self._subscription_id = ""
        self._acked_revision = 0
        self._last_ack = 0.0
        self._ack_task: asyncio.Task[None] | None = None
        self.reconnects = 0
        self.resyncs = 0
        self.shrinks_held = 0
        self._frontend_stale = False

    # -- public -------------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        """The revision the stream is complete up to (deltas and progress included)."""
        return self._revision

    @property
    def stale(self) -> bool:
        """True while the view may be out of date: the frontend said it cannot reach etcd (its
        progress messages are marked stale), or a suspicious shrink is held back."""
        return self._held_since is not None or self._frontend_stale

    def current(self) -> NodeList:
        """The local view: every node of the scope per datacenter, at its revision."""
        datacenters: dict[str, list[Node]] = {}
        for key in sorted(self._view):
            datacenters.setdefault(key.datacenter, []).append(self._view[key])
        revision = self._view_revision if self._held_since is not None else self._revision
        return NodeList(
            revision=revision,
            datacenters={dc: tuple(nodes) for dc, nodes in datacenters.items()},
            stale=self.stale,
        )

    def events(self) -> EventStream:
        """Every change of the view from the moment of this call, in order; an async iterator
        that ends when the watch is closed. Close it (or let it end) when no longer needed."""
        stream = EventStream(self._listeners)
        if self._error is not None:
            stream.end()
        return stream

    async def wait_for(self, predicate: Any, timeout: float) -> NodeList:
        """Waits until predicate(current()) is true; returns that list. Raises TimeoutError."""
        async with asyncio.timeout(timeout):
            while not predicate(self.current()):
                queue: asyncio.Queue[object] = asyncio.Queue()
                self._listeners.add(queue)
                try:
                    if predicate(self.current()):
                        break
                    await queue.get()
                finally:
                    self._listeners.discard(queue)
        return self.current()

    async def close(self) -> None:
        if self._ack_task is not None:
            self._ack_task.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._fail(WatchClosedError("the watch was closed"))

    # -- stream -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Opens the stream and returns once the first snapshot is applied.

        Raises:
            RegistryRPCError: the frontends refused the watch (bad scope) or none could be reached.
        """
        self._ready = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(), name="node-watch")
        await asyncio.shield(self._ready)

    def _fail(self, error: RegistryError) -> None:
        self._error = error
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)
        for queue in self._listeners:
            queue.put_nowait(_END)

    async def _run(self) -> None:
        backoff = Backoff(self._transport)
        attempts_without_answer = 0
        while True:
            target = self._transport.target
            request = pb.WatchNodesRequest(
                scope=_convert.scope_to_pb(self.scope), resume_revision=self._revision
            )
            call = self._transport.stub(target).WatchNodes(
                request, metadata=self._transport.metadata
            )
            try:
                async for message in call:
                    attempts_without_answer = 0
                    backoff.reset()
                    if message.subscription_id:
                        self._subscription_id = message.subscription_id
                    self._apply(message)
                    self._maybe_ack(target)
                error = error_for(grpc.StatusCode.UNAVAILABLE, f"frontend {target} ended the watch")
            except grpc.aio.AioRpcError as err:
                error = from_rpc_error(err, target)
                if err.code() not in _RECONNECT_CODES:
                    self._fail(error)
                    return
            finally:
                call.cancel()
            attempts_without_answer += 1
            self.reconnects += 1
            self._transport.fail_over(target)
            if (
                self._ready is not None
                and not self._ready.done()
                and (attempts_without_answer >= len(self._transport.targets))
            ):
                self._fail(error)
                return
            log.info("watch: %s; resuming from revision %d", error, self._revision)
            await backoff.wait()

    def _maybe_ack(self, target: str) -> None:
        """Confirms the applied revision to the serving frontend, at most once per interval."""
        interval = self._config.ack_interval_seconds
        now = self._clock()
        if (
            interval <= 0
            or not self._subscription_id
            or self._revision <= self._acked_revision
            or now - self._last_ack < interval
            or (self._ack_task is not None and not self._ack_task.done())
        ):
            return
        self._last_ack = now
        self._ack_task = asyncio.create_task(
            self._ack(target, self._subscription_id, self._revision)
        )

    async def _ack(self, target: str, subscription_id: str, revision: int) -> None:
        request = pb.AckWatchRequest(subscription_id=subscription_id, revision=revision)
        try:
            await self._transport.stub(target).AckWatch(
                request,
                timeout=self._transport.config.call_timeout_seconds,
                metadata=self._transport.metadata,
            )
            self._acked_revision = max(self._acked_revision, revision)
        except grpc.aio.AioRpcError as err:  # best effort: the next message acks again
            log.debug("watch: ack of revision %d failed: %s", revision, err.code().name)

    def _apply(self, message: pb.WatchNodesResponse) -> None:
        kind = message.WhichOneof("message")
        if kind == "snapshot":
            snapshot = message.snapshot
            fresh = {
                node.key: node
                for node in (
                    _convert.node_from_pb(n) for dc in snapshot.datacenters for n in dc.nodes
                )
            }
            if snapshot.resync:
                self.resyncs += 1
            self._shadow = fresh
            self._revision = snapshot.revision
            self._publish(None)
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
        elif kind == "delta":
            self._frontend_stale = False  # a change can only come from etcd
            delta = message.delta
            events = [_convert.event_from_pb(e, delta.revision) for e in delta.events]
            for event in events:
                if event.type is EventType.REMOVED:
                    self._shadow.pop(event.node.key, None)
                    if event.reason is RemovalReason.DEREGISTERED:
                        self._deliberate.add(event.node.key)
                else:
                    self._shadow[event.node.key] = event.node
                    self._deliberate.discard(event.node.key)
            self._revision = delta.revision
            self._publish(None if delta.relisted else events)
        elif kind == "progress":
            self._frontend_stale = message.progress.stale
            self._revision = max(self._revision, message.progress.revision)
            self._publish([])

    def _suspicious(self, now: float) -> int:
        """How many nodes the view would lose for no deliberate reason, counting the losses of
        the last `shrink_window_seconds`, if that is a suspicious shrink; else 0."""
        window = self._config.shrink_window_seconds
        while self._recent_losses and now - self._recent_losses[0][0] > window:
            self._recent_losses.popleft()
        pending = sum(
            1 for key in self._view if key not in self._shadow and key not in self._deliberate
        )
        if not pending:
            return 0
        lost = pending + len(self._recent_losses)
        baseline = len(self._view) + len(self._recent_losses)
        threshold = max(self._config.shrink_min_nodes, self._config.shrink_ratio * baseline)
        return lost if lost >= threshold else 0

    def _publish(self, events: list[NodeEvent] | None) -> None:
        """Makes the shadow the view, unless that is a suspicious shrink to hold back.

        `events` are the stream's own events for this step; None means "compute them by diff"
        (snapshots, relisted deltas, releasing a hold).
        """
        now = self._clock()
        lost = self._suspicious(now)
        if lost:
            baseline = len(self._view) + len(self._recent_losses)
            if self._held_since is None:
                self._held_since = now
                self.shrinks_held += 1
                report = ShrinkReport(baseline, baseline - lost, self._revision)
                log.warning(
                    "watch: holding back a suspicious shrink (%d of %d nodes gone at revision %d)",
                    lost,
                    baseline,
                    self._revision,
                )
                if self._config.on_suspicious_shrink is not None:
                    self._config.on_suspicious_shrink(report)
            if now - self._held_since < self._config.shrink_hold_seconds:
                return
            log.warning("watch: the shrink lasted %.0fs; accepting it", now - self._held_since)
            self._recent_losses.clear()
        elif self._held_since is not None:
            log.info("watch: the held-back nodes are back; the view is current again")
        if self._held_since is not None:
            self._held_since = None
            events = None
        if events is None:
            events = diff(self._view, self._shadow, self._revision)
            events = [self._with_reason(event) for event in events]
        for event in events:
            if event.type is EventType.REMOVED and event.reason is not RemovalReason.DEREGISTERED:
                self._recent_losses.append((now, event.node.key))
        self._view = dict(self._shadow)
        self._view_revision = self._revision
        self._deliberate.clear()
        for queue in self._listeners:
            for event in events:
                queue.put_nowait(event)
            if not events:
                queue.put_nowait(_Tick)

    def _with_reason(self, event: NodeEvent) -> NodeEvent:
        if event.type is EventType.REMOVED and event.node.key in self._deliberate:
            return NodeEvent(event.type, event.node, event.revision, RemovalReason.DEREGISTERED)
        return event
