"""One WatchNodes subscriber of a frontend: its bounded queue, its progress messages, whether
the push switch holds it, and what it has acknowledged (hub/acks.py).

Contracts (the hub's, kept here): a subscription whose queue fills gets its backlog replaced by
one resync snapshot, built from the current view when next read (latest state wins); it never
holds more than `queue_messages` messages. A held subscription (the push switch is off, or the
gray list holds it) is offered no deltas and its progress never claims more than it was sent, and
says `stale` (its list is frozen: another datacenter following this one shows it stale, D82);
released, it gets one resync (PUSH_RESUMED). An acknowledging subscriber that owes an
acknowledgement past the deadline gets one resync (UNCONFIRMED).

What is owed an acknowledgement is decided here, once for every transport: the transport reports
each message it wrote (`written`), and only this registry's snapshots and deltas count (progress
is not acknowledged; a followed datacenter's messages carry another registry's revisions).

A `federated` subscription also gets the followed remote datacenters' messages, which carry their
own registries' revisions: what it was sent, offered and acknowledged is counted in the local
etcd's revisions only (acknowledgements and convergence are about this registry).

Never older than the subscriber (D80): a subscriber that resumed from further along than this
frontend's view (`local_ahead`: the view lags etcd and could not catch up) or than its copy of a
followed datacenter (`remote_ahead`) is held there: nothing at or below its revision is queued,
its progress says that revision and `stale` until the view passes it, a resync waits for the view,
and a relisted net difference (made from a view behind it) becomes a resync snapshot.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import secrets
import time
from collections.abc import Iterable, Mapping
from typing import Protocol

from registry_service.control import peer_address
from registry_service.domain import (
    ChangeStage,
    DeltaMessage,
    ProgressMessage,
    ResyncReason,
    Scope,
    SnapshotMessage,
    WatchMessage,
)
from registry_service.errors import RegistryError
from registry_service.hub.acks import AckTracker


class SubscriptionSource(Protocol):
    """What a subscription reads of its hub (and the two counters it reports to)."""

    def count_resync(self, reason: ResyncReason) -> None:
        """One resync snapshot is owed for `reason` (the hub's stats count it)."""

    def observe(self, stage: ChangeStage, seconds: float) -> None:
        """Times one stage of a change (the metrics hook)."""

    @property
    def revision(self) -> int: ...

    @property
    def stale(self) -> bool: ...

    @property
    def age_seconds(self) -> float: ...

    def snapshot(
        self,
        scope: Scope,
        reason: ResyncReason | None = None,
        *,
        federated: bool = False,
        ahead: Mapping[str, int] | None = None,
    ) -> SnapshotMessage: ...

    def progress(self, scope: Scope, *, federated: bool = False) -> list[ProgressMessage]: ...

    def unsubscribe(self, subscription: Subscription) -> None: ...


class Subscription:
    """One subscriber's ordered stream of watch messages; iterate it, close it when done."""

    def __init__(
        self,
        hub: SubscriptionSource,
        scope: Scope,
        initial: Iterable[WatchMessage],
        queue_messages: int,
        progress_seconds: float,
        *,
        peer: str = "",
        acknowledging: bool = False,
        federated: bool = False,
        resumed_at: int = 0,
        local_ahead: bool = False,
        remote_ahead: Mapping[str, int] | None = None,
    ) -> None:
        """`resumed_at`: the revision of this frontend's etcd the subscriber holds already (it
        resumed from it); `local_ahead`: that is beyond the view; `remote_ahead`: the revision
        it holds of each followed datacenter beyond this frontend's copy."""
        self.scope = scope
        self.federated = federated
        self.id = secrets.token_hex(8)
        self.peer = peer
        self.peer_ip = peer_address(peer)
        self.held = False  # the push switch holds its deltas back (switched off, or gray)
        self._hub = hub
        self._queue: collections.deque[WatchMessage] = collections.deque(initial)
        self._queue_messages = queue_messages
        self._progress_seconds = progress_seconds
        # A bare future rather than an Event plus a timer per wait: this is paid per subscriber
        # per message. Progress is due when the hub's ticker finds the stream idle long enough.
        self._waiter: asyncio.Future[None] | None = None
        self._idle_since = time.monotonic()
        self._progress_due = False
        self._resync: ResyncReason | None = None
        self._error: RegistryError | None = None
        self.sent_revision = resumed_at  # what it holds already is never sent again
        self._local_ahead = resumed_at if local_ahead else 0
        self._remote_ahead = dict(remote_ahead or {})
        self._remote_sent = dict(self._remote_ahead)  # per followed datacenter, its revisions
        # The newest revision handed to this subscriber (queued, or its snapshot's): what it
        # must acknowledge to have converged.
        self.offered_revision = max(
            (m.revision for m in self._queue if not m.datacenter), default=0
        )
        self.resyncs = 0
        self._acks = AckTracker(
            acknowledging=acknowledging,
            observe=lambda seconds: hub.observe(ChangeStage.WRITTEN_TO_ACKED, seconds),
        )

    @property
    def acked_revision(self) -> int:
        """The newest revision it confirmed having applied (0: none)."""
        return self._acks.acked_revision

    @property
    def acknowledging(self) -> bool:
        """It promised to acknowledge, or has acknowledged (its messages are timed)."""
        return self._acks.acknowledging or self._acks.tracking

    @property
    def unacked_since(self) -> float:
        """Monotonic time the oldest message it has not acknowledged was written (0: none)."""
        return self._acks.unacked_since

    def converged(self, revision: int) -> bool:
        """Whether it acknowledged everything it was given up to `revision` (a held subscriber
        must have acknowledged `revision` itself: it is given nothing meanwhile)."""
        if self.held or self._resync is not None:
            return self._acks.acked_revision >= revision
        return self._acks.acked_revision >= min(revision, self.offered_revision)

    @property
    def remote_ahead(self) -> Mapping[str, int]:
        """The followed datacenters it holds further along than this frontend's copy, and its
        revision of each (the hub offers it nothing of them at or below that)."""
        return self._remote_ahead

    def offer(self, message: WatchMessage) -> None:
        """Called by the hub with each delta (or a followed datacenter's snapshot or progress)
        already cut to this subscription's scope; never blocks."""
        if not message.datacenter:
            if message.revision <= self.sent_revision:
                return  # it has it (a resync snapshot sent meanwhile, or it resumed ahead)
            if self._local_ahead:
                self._local_ahead = 0  # the view has passed what it held
                if isinstance(message, DeltaMessage) and message.relisted:
                    # A net difference from a view that was behind it: a whole list instead.
                    self.request_resync(ResyncReason.COMPACTED)
                    return
            self.offered_revision = message.revision
        elif message.revision > self._remote_ahead.get(message.datacenter, message.revision):
            del self._remote_ahead[message.datacenter]  # the copy has passed what it held
        if len(self._queue) >= self._queue_messages:
            self.request_resync(ResyncReason.SLOW_CONSUMER)
            return
        self._queue.append(message)
        self._wake()

    def request_resync(self, reason: ResyncReason) -> None:
        """Replaces whatever is queued with one resync snapshot, built when next read."""
        self._hub.count_resync(reason)
        self._queue.clear()
        self._resync = reason
        self.offered_revision = max(self.offered_revision, self._hub.revision)
        self._wake()

    def set_held(self, held: bool) -> None:
        """The push switch holds this subscriber back (it hears so at once, a stale progress),
        or releases it: released, it gets one resync snapshot (PUSH_RESUMED) in place of
        everything it missed."""
        if self.held and not held:
            self.request_resync(ResyncReason.PUSH_RESUMED)
        elif held and not self.held:
            self.progress_now()
        self.held = held

    def progress_now(self) -> None:
        """A progress message is due at once: whether its lists are current changed."""
        self._progress_due = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def tick(self, now: float) -> None:
        """Called by the hub's progress ticker: a stream idle for progress_seconds gets one."""
        if self._waiter is not None and now - self._idle_since >= self._progress_seconds:
            self._progress_due = True
            self._wake()

    def fail(self, error: RegistryError) -> None:
        self._error = error
        self._wake()

    def _view_behind(self) -> bool:
        """It resumed ahead of this frontend's view, which has not caught up yet."""
        return bool(self._local_ahead) and self._hub.revision < self._local_ahead

    @property
    def resync_pending(self) -> bool:
        """It fell behind: its next message will be a resync snapshot, not its backlog."""
        return self._resync is not None

    @property
    def backlog(self) -> int:
        return len(self._queue)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> WatchMessage:
        while True:
            if self._error is not None:
                raise self._error
            if self._resync is not None and not self._view_behind():
                reason, self._resync = self._resync, None
                self._queue.clear()
                self.resyncs += 1
                snapshot = self._hub.snapshot(
                    self.scope, reason, federated=self.federated, ahead=self._remote_ahead
                )
                self.offered_revision = max(self.offered_revision, snapshot.revision)
                return self._sent(snapshot)
            if self._queue:
                return self._sent(self._queue.popleft())
            if self._progress_due:
                self._progress_due = False
                self._queue.extend(self._progress())
                continue
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _progress(self) -> list[ProgressMessage]:
        """The progress messages due. While held, none says more than this subscriber was sent;
        otherwise none says less (its resync snapshot may be ahead of a sliced fan-out). A
        registry it holds further along than this frontend is stale until it passes it."""
        return [
            dataclasses.replace(
                message,
                revision=self._progress_revision(message),
                stale=message.stale or self.held or self._still_ahead(message),
            )
            for message in self._hub.progress(self.scope, federated=self.federated)
        ]

    def _still_ahead(self, message: ProgressMessage) -> bool:
        """Whether the subscriber is still ahead of this frontend in the progress' registry;
        forgets it once the progress (every change up to it offered) has passed it."""
        if not message.datacenter:
            if self._local_ahead and message.revision >= self._local_ahead:
                self._local_ahead = 0
            return bool(self._local_ahead)
        held = self._remote_ahead.get(message.datacenter, 0)
        if held and message.revision > held:
            del self._remote_ahead[message.datacenter]
            held = 0
        return bool(held)

    def _progress_revision(self, message: ProgressMessage) -> int:
        sent = (
            self._remote_sent.get(message.datacenter, 0)
            if message.datacenter
            else self.sent_revision
        )
        return sent if self.held else max(sent, message.revision)

    def _sent(self, message: WatchMessage) -> WatchMessage:
        if message.datacenter:
            revision = max(self._remote_sent.get(message.datacenter, 0), message.revision)
            self._remote_sent[message.datacenter] = revision
        else:
            self.sent_revision = max(self.sent_revision, message.revision)
            if isinstance(message, SnapshotMessage):  # each followed datacenter it carries
                for entry in message.nodes.datacenters:
                    if entry.remote and entry.complete_revision:
                        self._remote_ahead.pop(entry.datacenter, None)
                        self._remote_sent[entry.datacenter] = entry.complete_revision
        self._idle_since = time.monotonic()
        return message

    def written(self, message: WatchMessage, at: float) -> None:
        """The transport wrote `message` (one it got from this subscription) at monotonic time
        `at`. This registry's snapshots and deltas are owed an acknowledgement from then on;
        progress and the followed datacenters' messages are not."""
        if not message.datacenter and not isinstance(message, ProgressMessage):
            self._acks.written(message.revision, at)

    def wrote_state(self, revision: int, at: float) -> None:
        """A transport that writes its own messages, not WatchMessages (xDS), wrote this
        registry's state up to `revision` at monotonic time `at`: owed an acknowledgement, as a
        snapshot or a delta is."""
        self._acks.written(revision, at)

    def ack(self, revision: int) -> None:
        """The subscriber applied everything up to `revision` (never counted beyond what it was
        sent)."""
        self._acks.ack(revision, self.sent_revision, time.monotonic())

    def check_confirmed(self, now: float, deadline_seconds: float) -> None:
        """Re-pushes (resync UNCONFIRMED) an acknowledging subscriber that has owed an
        acknowledgement longer than the deadline, as SOFARegistry retries an unconfirmed push."""
        if self._resync is None and self._acks.overdue(now, deadline_seconds):
            self._acks.forgive()
            self.request_resync(ResyncReason.UNCONFIRMED)

    def close(self) -> None:
        self._hub.unsubscribe(self)
