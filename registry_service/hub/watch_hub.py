"""One etcd watch per process, fanned out to every WatchNodes subscriber of this frontend.

The hub keeps the frontend's `ClusterView` (hub/cluster_view.py) current, a bounded history of the
changes of recent revisions (for resumes), and one bounded queue per subscriber.

Contracts:
- A subscriber sees a snapshot, then one delta per revision that changes its scope, in revision
  order, never a gap: subscribing is synchronous with the view, so nothing falls between the
  snapshot and the first delta.
- A subscriber whose queue fills gets its backlog replaced by one resync snapshot (latest state
  wins); it never slows the others and never holds more than `queue_messages` messages.
- When the store says the watch's revision was compacted, the hub re-reads everything, diffs it
  against its view, and sends the difference as one delta flagged `relisted`.
- A change is handed to the subscriptions a slice at a time (hub/fanout.py), the event loop
  running other work between slices; every subscription still gets every change, in order.
- Idle subscribers get progress messages carrying the hub's revision (as far as every subscription
  has been offered), which never runs behind a delta already queued. When the frontend turns
  stale or fresh (etcd lost or back, `store_connection_changed`) every subscriber gets one at
  once, not at its next idle tick (D81).
- Federation (docs/design.md §10): the remote datacenters this frontend follows (hub/remote_view.py,
  handed in) are served beside the local etcd's, each in its own registry's revisions, to
  subscribers that keep a revision per datacenter; others see the local etcd only, as before.
- Operator state comes from the same watch (docs/design.md §9): the hub applies the control
  changes of each revision to the `OperatorState` it was handed (hub/operator_state.py: the push
  switch and the frontend announcements, read by others through `OperatorView`), and decides from
  the push switch whom it holds back; the initial load reads it, so a frontend starts in the
  stored state.
- Each change is timed per stage (`ChangeStage`) through the `observe` hook: the hub knows when a
  change was written (the record's write time), received and queued; the subscription knows when
  it was written to the stream (told by the transport) and acknowledged.
- The hub's counters (resyncs by reason, relists, etcd's latest revision) are read as one
  read-only `HubStats` (`stats()`); nothing outside the hub writes them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
import types
from collections.abc import Callable, Mapping

from registry_service.domain import (
    ChangeStage,
    DeltaMessage,
    NodeKey,
    NodeList,
    ProgressMessage,
    Registration,
    ResyncReason,
    Scope,
    SnapshotMessage,
    WatchMessage,
)
from registry_service.errors import (
    ShuttingDownError,
    StoreCompactedError,
    StoreError,
    StoreUnavailableError,
)
from registry_service.hub.change_history import ChangeHistory
from registry_service.hub.cluster_view import ClusterView
from registry_service.hub.fanout import SlicedFanout
from registry_service.hub.operator_state import OperatorState
from registry_service.hub.remote_view import RemoteViews
from registry_service.hub.subscription import Subscription
from registry_service.retry import Backoff, ThrottledLog
from registry_service.store.base import RegistryStore, StoreBatch
from registry_service.telemetry import tracing

log = logging.getLogger(__name__)


StageObserver = Callable[[ChangeStage, float], None]


@dataclasses.dataclass(frozen=True, slots=True)
class HubConfig:
    """How the hub keeps history and serves its subscribers."""

    history_revisions: int = 10_000
    """Changed revisions kept for resumes without a resync (`watch_history_revisions`; the
    followed datacenters keep as many each)."""
    queue_messages: int = 1_000
    """Messages queued per subscriber before its backlog collapses into a resync
    (`watch_queue_messages`)."""
    progress_seconds: float = 5.0
    """An idle subscriber gets a progress message this often (`watch_progress_seconds`)."""
    ack_deadline_seconds: float = 0.0
    """A subscriber that opted into acknowledgements and owes one this long is re-pushed
    (`ack_deadline_seconds`); 0: never."""
    slice_subscribers: int = 10
    """Subscriptions a change is handed to before the event loop runs other work
    (`watch_fanout_slice_subscribers`)."""


@dataclasses.dataclass(frozen=True, slots=True)
class HubStats:
    """The hub's counters at one moment (`WatchHub.stats()`): what the metrics report."""

    revision: int
    """The revision the view has applied."""
    etcd_revision: int
    """etcd's latest revision seen by the watch (progress included)."""
    resyncs: Mapping[ResyncReason, int]
    """Resync snapshots owed to subscribers, by reason, since the start (the reasons that
    occurred; any other reads 0)."""
    relists: int
    """Full re-reads of etcd after a compacted watch."""

    @property
    def lag_revisions(self) -> int:
        """How far the view is behind what the watch has seen of etcd."""
        return max(0, self.etcd_revision - self.revision)


class WatchHub:
    """Follows the store's watch and fans its changes out to subscriptions."""

    def __init__(
        self,
        store: RegistryStore,
        config: HubConfig | None = None,
        *,
        operator: OperatorState | None = None,
        remotes: RemoteViews | None = None,
        clock: Callable[[], float] = time.monotonic,
        store_connected: Callable[[], bool] = lambda: True,
        observe: StageObserver | None = None,
    ) -> None:
        """`operator`: where the watch's operator state goes (the hub is its one writer).
        `remotes`: the followed datacenters (fed by the federation's followers); the hub is their
        listener. Both are created by the composition root, which hands their read side to
        others; each defaults to an empty one. `observe(stage, seconds)` times each change's
        stages (a metrics hook)."""
        self._store = store
        self._config = config or HubConfig()
        self._observe: StageObserver = observe or (lambda stage, seconds: None)
        self._store_connected = store_connected
        self._history = ChangeHistory(self._config.history_revisions)
        self._operator = operator if operator is not None else OperatorState()
        self._remotes = remotes if remotes is not None else RemoteViews()
        self._remotes.listen(self._publish_remote)
        self._queue_messages = self._config.queue_messages
        self._progress_seconds = self._config.progress_seconds
        self._clock = clock
        self._subscriptions: dict[str, Subscription] = {}
        self._fanout = SlicedFanout(self._config.slice_subscribers)
        self._ack_deadline = self._config.ack_deadline_seconds
        self._resyncs: collections.Counter[ResyncReason] = collections.Counter()
        self._relists = 0
        self._etcd_revision = 0
        self._view: ClusterView | None = None
        self._advanced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._last_heard = 0.0

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Reads everything, then follows the watch from the next revision in the background."""
        await self._load()
        self._task = asyncio.create_task(self._follow(), name="watch-hub")
        self._ticker = asyncio.create_task(self._tick_progress(), name="watch-progress")

    async def _tick_progress(self) -> None:
        """Wakes idle subscriptions for their progress message: one timer for all of them."""
        interval = self._progress_seconds / 4
        if self._ack_deadline > 0:
            interval = min(interval, self._ack_deadline / 4)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for subscription in list(self._subscriptions.values()):
                subscription.tick(now)
                subscription.check_confirmed(now, self._ack_deadline)

    async def _load(self) -> None:
        state = await self._store.load()
        self._operator.load(state.push_switch, state.frontends)
        self._hold_by_push_switch()
        if self._view is None:
            self._view = ClusterView(state)
        else:
            events = self._view.relist(state)
            self._relists += 1
            if events:
                now = self._clock()
                self._publish(DeltaMessage(state.revision, events, True, now, now), keep=False)
        self._history.reset(state.revision)
        self._last_heard = self._clock()
        self._advance()

    async def _follow(self) -> None:
        while True:
            try:
                async for item in self._store.watch(self.view.revision + 1):
                    self._last_heard = self._clock()
                    self._etcd_revision = max(self._etcd_revision, item.revision)
                    if isinstance(item, StoreBatch):
                        if item.written_at:
                            # Wall clocks: the writer's and ours (skew between hosts shows here).
                            self._observe(
                                ChangeStage.COMMIT_TO_RECEIVED,
                                max(0.0, time.time() - item.written_at),
                            )
                        with tracing.span("watch event fan-out", {"revision": item.revision}):
                            self._fan_out(item)
                        self._advance()
            except StoreCompactedError as err:
                log.warning("watch hub: %s; re-reading every member", err)
                await self._reload()

    def _fan_out(self, batch: StoreBatch) -> None:
        if batch.control and self._operator.apply(batch.control):
            self._hold_by_push_switch()
        events = self.view.apply(batch)
        if events:
            queued_at = self._clock()
            self._observe(ChangeStage.RECEIVED_TO_QUEUED, queued_at - self._last_heard)
            self._publish(DeltaMessage(batch.revision, events, False, self._last_heard, queued_at))

    async def _reload(self) -> None:
        backoff = Backoff(initial=0.5, maximum=10.0)
        failures = ThrottledLog(log, "watch hub: re-read")
        while True:
            try:
                await self._load()
                failures.succeeded()
                return
            except StoreError as err:
                failures.failed(f"failed ({err}); retrying")
                await backoff.wait()

    async def close(self) -> None:
        """Ends every subscription with ShuttingDownError and stops following etcd."""
        for subscription in list(self._subscriptions.values()):
            subscription.fail(
                ShuttingDownError("the frontend is shutting down; reconnect elsewhere")
            )
        self._fanout.cancel()
        for task in (self._task, self._ticker):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # -- state --------------------------------------------------------------------------------

    @property
    def view(self) -> ClusterView:
        """The read model; StoreUnavailableError until the first load."""
        if self._view is None:
            raise StoreUnavailableError("the frontend has not loaded the member list yet")
        return self._view

    @property
    def revision(self) -> int:
        return self._view.revision if self._view else 0

    @property
    def age_seconds(self) -> float:
        """Time since the etcd watch last spoke."""
        return max(0.0, self._clock() - self._last_heard)

    def registration(self, key: NodeKey) -> Registration | None:
        return self._view.registration(key) if self._view else None

    @property
    def stale(self) -> bool:
        """True while etcd cannot be reached: the view is the last one known (store outage)."""
        return not self._store_connected()

    def node_list(
        self, scope: Scope, *, federated: bool = True, ahead: Mapping[str, int] | None = None
    ) -> NodeList:
        """The scope's nodes per datacenter; `federated`: the followed remote datacenters too
        (`ahead`: those a subscriber holds further along, left out while behind here)."""
        local = self.view.node_list(scope, self.age_seconds, self.stale)
        if not (federated and self._remotes):
            return local
        return self._remotes.merged(local, scope, ahead)

    def snapshot(
        self,
        scope: Scope,
        reason: ResyncReason | None = None,
        *,
        federated: bool = False,
        ahead: Mapping[str, int] | None = None,
    ) -> SnapshotMessage:
        return SnapshotMessage(self.node_list(scope, federated=federated, ahead=ahead), reason)

    def progress(self, scope: Scope, *, federated: bool = False) -> list[ProgressMessage]:
        """What an idle subscriber is told: the local etcd's revision, then each followed
        datacenter's in its scope."""
        messages = [
            ProgressMessage(self.published_revision, self.stale, round(self.age_seconds, 3))
        ]
        if federated:
            messages.extend(remote.progress_message() for remote in self._remotes.in_scope(scope))
        return messages

    @property
    def subscriptions(self) -> list[Subscription]:
        return list(self._subscriptions.values())

    def stats(self) -> HubStats:
        """The counters as they are now (a copy: nothing outside the hub changes them)."""
        return HubStats(
            revision=self.revision,
            etcd_revision=self._etcd_revision,
            resyncs=types.MappingProxyType(collections.Counter(self._resyncs)),
            relists=self._relists,
        )

    def store_connection_changed(self) -> None:
        """etcd turned unreachable or reachable again (the store's watch says so when it
        happens): every subscriber hears it in a progress message now."""
        for subscription in self._subscriptions.values():
            subscription.progress_now()

    def count_resync(self, reason: ResyncReason) -> None:
        """A subscription owes one resync snapshot (SubscriptionSource)."""
        self._resyncs[reason] += 1

    def observe(self, stage: ChangeStage, seconds: float) -> None:
        """A subscription times its stages of a change through the hub's hook."""
        self._observe(stage, seconds)

    def _hold_by_push_switch(self) -> None:
        """The push switch as stored in etcd (control.PushSwitch): whom it holds gets no deltas;
        whom it releases gets a fresh snapshot (resync PUSH_RESUMED), so nothing is lost."""
        switch = self._operator.push_switch
        for subscription in self._subscriptions.values():
            subscription.set_held(switch.holds(subscription.scope, subscription.peer_ip))

    def ack(self, subscription_id: str, revision: int) -> bool:
        """Records that a subscriber applied up to revision; False for an unknown subscription."""
        subscription = self._subscriptions.get(subscription_id)
        if subscription is None:
            return False
        subscription.ack(revision)
        return True

    def _advance(self) -> None:
        self._advanced.set()
        self._advanced = asyncio.Event()

    async def wait_for_revision(self, revision: int, timeout: float) -> bool:
        """True once the view has reached revision; False after timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.revision < revision:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._advanced.wait()
        return True

    def next_change(self) -> asyncio.Event:
        """Set when the next revision is applied. Take it in the same step as the look that
        found nothing new, then wait on it: no change between the look and the wait is missed
        (a coroutine that read it only when first scheduled could miss one)."""
        return self._advanced

    # -- fan-out ------------------------------------------------------------------------------

    def _publish(self, message: DeltaMessage, *, keep: bool = True) -> None:
        remotes = self._remotes
        if remotes and any(e.node.datacenter in remotes for e in message.events):
            # Served from its own registry only (remote_view.RemoteViews.merged).
            events = tuple(e for e in message.events if e.node.datacenter not in remotes)
            message = dataclasses.replace(message, events=events)
        if keep:
            self._history.append(message)
        if not self._operator.push_enabled:
            return
        self._fanout.push(message, list(self._subscriptions.values()))

    @property
    def published_revision(self) -> int:
        """Every subscription has been offered every change up to this revision (hub/fanout.py
        hands a change out a slice of subscriptions at a time)."""
        return self._fanout.published_revision(self.revision)

    def _publish_remote(self, message: WatchMessage) -> None:
        """A followed datacenter's delta, snapshot or progress, to the subscribers that keep a
        revision per datacenter and whose scope takes it."""
        datacenter = message.datacenter
        if not self._operator.push_enabled and not isinstance(message, ProgressMessage):
            return
        scoped: dict[Scope, WatchMessage | None] = {}
        for subscription in self._subscriptions.values():
            scope = subscription.scope
            if not subscription.federated or subscription.held:
                continue
            if scope.datacenters and datacenter not in scope.datacenters:
                continue
            held = subscription.remote_ahead.get(datacenter, 0)
            if held:
                delivered = self._remotes.past(message, held, scope)
            else:
                if scope not in scoped:
                    scoped[scope] = self._remotes.cut(message, scope)
                delivered = scoped[scope]
            if delivered is not None:
                subscription.offer(delivered)

    def subscribe(
        self,
        scope: Scope,
        resume_revision: int = 0,
        *,
        resume_revisions: Mapping[str, int] | None = None,
        federated: bool = False,
        peer: str = "",
        acknowledging: bool = False,
        view_lags: bool = False,
    ) -> Subscription:
        """A subscription starting with a snapshot, or with the changes after resume_revision
        (with none, a progress message at once).

        A resume_revision older than the history gets a snapshot flagged COMPACTED. One newer
        than the view (the caller should have synced first) gets one flagged UNKNOWN_REVISION
        when the view is as current as etcd (etcd never had it), but with `view_lags` (the
        caller could not bring the view up to etcd's revision) nothing older than it: a stale
        progress at that revision, and the subscription is held there (D80).
        `federated`: the subscriber keeps a revision per datacenter, so it gets the followed
        datacenters too, each resumed from its entry in `resume_revisions`
        (RemoteViews.resume), never older than that entry. `peer` (gRPC's form) is what the gray
        list's networks match; `acknowledging`: the subscriber promised to acknowledge (it is
        re-pushed when it does not).
        """
        initial: list[WatchMessage]
        changes = self._history.since(resume_revision, self.revision)
        revisions = resume_revisions or {}
        remote_ahead = self._remotes.ahead(scope, revisions) if federated else {}
        local_ahead = resumed = False
        if resume_revision <= 0:
            initial = [self.snapshot(scope, federated=federated, ahead=remote_ahead)]
        elif view_lags and resume_revision > self.revision:
            local_ahead = resumed = True
            initial = [ProgressMessage(resume_revision, True, round(self.age_seconds, 3))]
            if federated:
                initial.extend(self._remotes.resume(scope, revisions))
        elif isinstance(changes, ResyncReason):
            initial = [self.snapshot(scope, changes, federated=federated, ahead=remote_ahead)]
        else:
            resumed = True
            initial = [cut for message in changes if (cut := message.within(scope)) is not None]
            if federated:
                initial.extend(self._remotes.resume(scope, revisions))
        subscription = Subscription(
            self,
            scope,
            initial,
            self._queue_messages,
            self._progress_seconds,
            peer=peer,
            acknowledging=acknowledging,
            federated=federated,
            resumed_at=resume_revision if resumed else 0,
            local_ahead=local_ahead,
            remote_ahead=remote_ahead,
        )
        if not initial:
            # Resumed with nothing missed: a progress at once says the stream is live and where
            # it stands (a follower's copy turns fresh now, not at the next idle tick, D81).
            subscription.progress_now()
        subscription.held = self._operator.push_switch.holds(scope, subscription.peer_ip)
        if len(initial) > self._queue_messages:
            subscription.request_resync(ResyncReason.SLOW_CONSUMER)
        for message in initial:
            if isinstance(message, SnapshotMessage) and message.resync_reason is not None:
                self._resyncs[message.resync_reason] += 1
        self._subscriptions[subscription.id] = subscription
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.pop(subscription.id, None)
