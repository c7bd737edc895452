"""NodeWatch: drives one WatchNodes stream across frontends and reconnects into a `WatchView`.

It resumes from the last revision it applied on whichever frontend answers (one revision per
registry: the frontend's own, and each remote datacenter's it follows), hands every message to the
view (`_view.py`, where the view logic and the shrink guard live), publishes the view's events to
`events()` readers and the raw messages to `steps()` readers, and confirms applied revisions with
`AckWatch`: it opts into acknowledgements (the frontend re-pushes a subscriber that does not
confirm in time), confirms at most once per `ack_interval_seconds`, and confirms what arrived
meanwhile when the interval ends. A stream silent for `silence_timeout_seconds` is abandoned for
the next frontend. A list older than the view is refused (`_view.py`, D80): `steps()` readers get
a stale PROGRESS of that registry at the view's revision in its place, never the older list.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable

import grpc
import grpc.aio
from noderegistry.v1 import registry_pb2 as pb

from client_sdk import _convert
from client_sdk._backoff import Backoff
from client_sdk._broadcast import Broadcast, Subscription
from client_sdk._closing import AsyncClosing
from client_sdk._config import WatchConfig
from client_sdk._errors import RegistryError, StatusCode, WatchClosedError, error_for
from client_sdk._models import NodeEvent, NodeList, Scope, WatchStep, WatchStepKind
from client_sdk._transport import Transport, error_from_rpc
from client_sdk._view import ViewUpdate, WatchView

log = logging.getLogger("client_sdk")

# Ends of a stream after which the watch resumes elsewhere; any other status ends the watch.
_RECONNECT_CODES = frozenset(
    {
        StatusCode.UNAVAILABLE,
        StatusCode.DEADLINE_EXCEEDED,
        StatusCode.CANCELLED,
        StatusCode.UNKNOWN,
        StatusCode.INTERNAL,
        StatusCode.RESOURCE_EXHAUSTED,
    }
)


class EventStream(Subscription[NodeEvent]):
    """The events of a NodeWatch from the moment this stream was made (`NodeWatch.events()`).

    An async iterator of `NodeEvent`s that ends when the watch closes. It is subscribed when it
    is made, so nothing published before its first read is missed. `close()` it when no longer
    needed.
    """


class StepStream(Subscription[WatchStep]):
    """The raw steps of a NodeWatch (`NodeWatch.steps()`).

    An async iterator of `WatchStep`s: first a SNAPSHOT of where the stream stands, then every
    message as the frontends send it, and INTERRUPTED when a stream breaks. It ends when the
    watch closes. `close()` it when no longer needed.
    """


class NodeWatch(AsyncClosing):
    """The nodes of a scope, kept current: `events()` for the changes, `current()` for the list.

    Made and started by `RegistryClient.watch_nodes`, never directly. It resumes from its last
    revision on whichever frontend answers, applies resync snapshots, and holds back suspicious
    shrinks (`WatchConfig`). Close it when done, or use
    `async with await client.watch_nodes(scope) as watch:`, which closes it on exit.

    Attributes:
        scope: the nodes it watches.
        reconnects: how often the stream ended and was resumed (on this or another frontend).
    """

    def __init__(
        self,
        transport: Transport,
        scope: Scope,
        config: WatchConfig,
        clock: Callable[[], float] = time.monotonic,
        on_closed: Callable[[NodeWatch], None] | None = None,
    ) -> None:
        self._transport = transport
        self._clock = clock
        self.scope = scope
        self._config = config
        self._on_closed = on_closed
        self._view = WatchView(config, clock)
        self._events: Broadcast[NodeEvent] = Broadcast()
        self._steps: Broadcast[WatchStep] = Broadcast()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._error: RegistryError | None = None
        self._subscription_id = ""
        self._acked_revision = 0
        self._last_ack = 0.0
        self._ack_task: asyncio.Task[None] | None = None
        self._answered = False  # the current stream brought a message
        self.reconnects = 0
        """How often the stream ended and was resumed (on this or another frontend)."""

    # -- public -------------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        """The revision the stream is complete up to (deltas and progress included)."""
        return self._view.revision

    @property
    def revisions(self) -> dict[str, int]:
        """Per remote datacenter the frontend follows, the revision the stream is complete up to.

        In that datacenter's registry's revisions: what the watch resumes each of them from.
        """
        return self._view.remote_revisions

    @property
    def stale(self) -> bool:
        """Whether the view may be out of date.

        True while the frontend says it cannot reach etcd (its progress messages are marked
        stale), while a remote datacenter is stale (see `current().datacenter_states`), or while
        a suspicious shrink is held back.
        """
        return self._view.stale

    @property
    def error(self) -> RegistryError | None:
        """What ended the watch: a refusal, or `WatchClosedError` once closed; None if it runs."""
        return self._error

    @property
    def resyncs(self) -> int:
        """Resync snapshots applied (the frontend could not resume from the watch's revision)."""
        return self._view.resyncs

    @property
    def shrinks_held(self) -> int:
        """Suspicious shrinks held back so far."""
        return self._view.shrinks_held

    def current(self) -> NodeList:
        """The local view: every node of the scope per datacenter, at its revision.

        Returns:
            The list as last applied; `stale` says whether it may be out of date.
        """
        return self._view.current()

    def events(self) -> EventStream:
        """Every change of the view from the moment of this call, in order.

        The state before the call is `current()`.

        Returns:
            An async iterator that ends when the watch is closed. Close it (or let it end) when
            no longer needed.
        """
        return EventStream(self._events)

    def steps(self) -> StepStream:
        """The stream's messages as the frontends send them, from this call on: for relays.

        Returns:
            An async iterator that starts with a SNAPSHOT of where the stream stands and ends
            when the watch is closed. Close it when done.
        """
        stream = StepStream(self._steps)
        stream._put(
            WatchStep(WatchStepKind.SNAPSHOT, self._view.revision, nodes=self._view.stream_state())
        )
        return stream

    async def wait_for(self, predicate: Callable[[NodeList], object], timeout: float) -> NodeList:
        """Waits until the view satisfies a condition.

        Args:
            predicate: called with `current()` after every change; true ends the wait.
            timeout: seconds to wait at most.

        Returns:
            The first list for which `predicate` was true.

        Raises:
            TimeoutError: not within `timeout` seconds.
            RegistryError: the watch ended first (`WatchClosedError` once closed, or what ended
                it).
        """
        async with asyncio.timeout(timeout):
            while not predicate(nodes := self.current()):
                if self._error is not None:
                    raise self._error
                await self._changed.wait()
        return nodes

    async def close(self) -> None:
        """Ends the stream and every `events()` and `steps()` reader; idempotent."""
        if self._ack_task is not None:
            self._ack_task.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._error is None:
            self._fail(WatchClosedError("the watch was closed"))
        if self._on_closed is not None:
            self._on_closed(self)

    # -- stream -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Opens the stream; returns once the first snapshot is applied. `watch_nodes` calls it.

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
        self._events.end()
        self._steps.end()
        self._notify()

    def _notify(self) -> None:
        """Wakes every `wait_for` (the view, its revision or the watch's state moved)."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _run(self) -> None:
        backoff = Backoff.from_config(self._transport.config)
        attempts_without_answer = 0
        while True:
            target = self._transport.target
            request = pb.WatchNodesRequest(
                scope=_convert.scope_to_pb(self.scope),
                healthy_only=self.scope.healthy_only,
                resume_revision=self._view.revision,
                acknowledge=self._config.ack_interval_seconds > 0,
                datacenter_revisions=True,
                resume_revisions=self._view.remote_revisions,
            )
            call = self._transport.stub(target).WatchNodes(
                request, metadata=self._transport.metadata
            )
            self._answered = False
            try:
                if await self._read(call, target):
                    ended = "sent a relisted difference older than the watch's view; resuming"
                else:
                    ended = "ended the watch"
                error = error_for(StatusCode.UNAVAILABLE, f"frontend {target} {ended}")
            except TimeoutError:
                silence = self._config.silence_timeout_seconds
                error = error_for(
                    StatusCode.UNAVAILABLE, f"frontend {target} sent nothing for {silence:g}s"
                )
            except grpc.aio.AioRpcError as err:
                error = error_from_rpc(err, target)
                if error.code not in _RECONNECT_CODES:
                    self._fail(error)
                    return
            finally:
                call.cancel()
            self._steps.publish(WatchStep(WatchStepKind.INTERRUPTED, self._view.revision))
            if self._answered:
                attempts_without_answer = 0
                backoff.reset()
            attempts_without_answer += 1
            self.reconnects += 1
            self._transport.fail_over(target)
            if (
                self._ready is not None
                and not self._ready.done()
                and (attempts_without_answer >= len(self._transport.targets))
            ):
                self._fail(await self._transport.explain(error, target))
                return
            log.info("watch: %s; resuming from revision %d", error, self._view.revision)
            if error.retry_after_seconds:  # an overloaded frontend said when to come back
                await self._transport.config.sleep(error.retry_after_seconds)
            else:
                await backoff.wait()

    async def _read(self, call: AsyncIterator[pb.WatchNodesResponse], target: str) -> bool:
        """Applies the stream's messages until it ends (`_answered`: one came).

        Returns:
            True when a message could not be applied and the stream must be resumed.

        Raises:
            TimeoutError: the stream fell silent for `silence_timeout_seconds` (0: never).
        """
        silence = self._config.silence_timeout_seconds
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(loop.time() + silence if silence else None) as quiet:
            async for message in call:
                self._answered = True
                if silence:
                    quiet.reschedule(loop.time() + silence)
                if message.subscription_id:
                    self._subscription_id = message.subscription_id
                if self._apply(message):
                    return True
                self._maybe_ack(target)
        return False

    def _apply(self, message: pb.WatchNodesResponse) -> bool:
        """Hands one stream message to the view and publishes what changed.

        Returns:
            True when the view could not apply it and the stream must be resumed.
        """
        kind = message.WhichOneof("message")
        if kind == "snapshot":
            snapshot = message.snapshot
            nodes = _convert.snapshot_nodes(snapshot)
            states = _convert.snapshot_states(snapshot)
            step = WatchStep(
                WatchStepKind.SNAPSHOT,
                snapshot.revision,
                snapshot.datacenter,
                nodes=NodeList(
                    snapshot.revision,
                    _convert.datacenters_from_pb(list(snapshot.datacenters)),
                    datacenter_states=states,
                ),
                resync=snapshot.resync,
            )
            update = self._view.apply_snapshot(
                nodes,
                snapshot.revision,
                resync=snapshot.resync,
                states=states,
                datacenter=snapshot.datacenter,
            )
        elif kind == "delta":
            delta = message.delta
            events = tuple(_convert.event_from_pb(e, delta.revision) for e in delta.events)
            step = WatchStep(
                WatchStepKind.DELTA,
                delta.revision,
                delta.datacenter,
                events=events,
                relisted=delta.relisted,
            )
            update = self._view.apply_delta(
                events, delta.revision, relisted=delta.relisted, datacenter=delta.datacenter
            )
        elif kind == "progress":
            progress = message.progress
            step = WatchStep(
                WatchStepKind.PROGRESS,
                progress.revision,
                progress.datacenter,
                stale=progress.stale,
                age_seconds=progress.age_seconds,
            )
            update = self._view.apply_progress(
                progress.revision,
                stale=progress.stale,
                age_seconds=progress.age_seconds,
                datacenter=progress.datacenter,
            )
        else:
            return False
        self._steps.publish(self._applied(step, update))
        self._publish(update)
        if kind == "snapshot" and self._ready is not None and not self._ready.done():
            self._ready.set_result(None)
        return update.resume

    def _applied(self, step: WatchStep, update: ViewUpdate) -> WatchStep:
        """The step as the view took it.

        A refused part older than the view (D80) becomes a stale PROGRESS at the view's revision
        (in a whole list: the view's own part).
        """
        if not update.refused:
            return step
        if step.kind is WatchStepKind.SNAPSHOT and not step.datacenter:
            state = self._view.stream_state()
            return dataclasses.replace(step, revision=state.revision, nodes=state)
        (registry,) = update.refused
        return WatchStep(
            WatchStepKind.PROGRESS, self._view.held_revision(registry), registry, stale=True
        )

    def _publish(self, update: ViewUpdate) -> None:
        for event in update.events:
            self._events.publish(event)
        self._notify()
        if update.held is not None and self._config.on_suspicious_shrink is not None:
            try:
                self._config.on_suspicious_shrink(update.held)
            except Exception:
                log.exception("watch: on_suspicious_shrink callback failed")

    def _maybe_ack(self, target: str) -> None:
        """Confirms the applied revision to the serving frontend.

        At once when the last confirmation is an interval old, else when the interval ends (one
        task at a time, which confirms the latest revision when it runs).
        """
        if (
            self._config.ack_interval_seconds <= 0
            or not self._subscription_id
            or self._view.revision <= self._acked_revision
            or (self._ack_task is not None and not self._ack_task.done())
        ):
            return
        self._ack_task = asyncio.create_task(self._ack_soon(target, self._subscription_id))

    async def _ack_soon(self, target: str, subscription_id: str) -> None:
        interval = self._config.ack_interval_seconds
        while subscription_id == self._subscription_id:
            delay = interval - (self._clock() - self._last_ack)
            if delay > 0:
                await asyncio.sleep(delay)
            revision = self._view.revision
            if revision <= self._acked_revision or subscription_id != self._subscription_id:
                return
            self._last_ack = self._clock()
            if not await self._ack(target, subscription_id, revision):
                return  # best effort: the next message tries again

    async def _ack(self, target: str, subscription_id: str, revision: int) -> bool:
        request = pb.AckWatchRequest(subscription_id=subscription_id, revision=revision)
        try:
            await self._transport.stub(target).AckWatch(
                request,
                timeout=self._transport.config.call_timeout_seconds,
                metadata=self._transport.metadata,
            )
        except grpc.aio.AioRpcError as err:
            log.debug("watch: ack of revision %d failed: %s", revision, err.code().name)
            return False
        self._acked_revision = max(self._acked_revision, revision)
        return True
