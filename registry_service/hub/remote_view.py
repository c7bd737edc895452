"""The remote datacenters a frontend follows (federation, docs/design.md §10), as its subscribers
see them: pure state, created by the composition root, fed by the follower (federation/), fanned
out by the watch hub (its one listener, `RemoteViews.listen`) and read by the reads and the metrics
through `RemoteReads`, which cannot change it.

Each `RemoteDatacenter` holds one datacenter's nodes at its own registry's revision, a history of
its recent changes (so that a watch resumes it from any frontend of this datacenter), and whether
its list is stale. Every message it makes names the datacenter and carries its registry's
revisions.

Contracts:
- A remote list is never emptied by a lost link: it is kept as last seen, marked stale, with its
  age. Nothing here removes a node on its own: only the remote registry's own messages do (no
  eviction across datacenters).
- The first list reached is sent as a snapshot of that datacenter alone (subscribers that resumed
  it elsewhere may hold any older state of it). A later full list (the follower's stream had to be
  resynced) is diffed against the view and sent as ONE delta flagged `relisted` (even an empty
  one: the revisions in between are gone); the history restarts there, so resumes from before it
  get a resync of that datacenter alone.
- Deltas pass on one per remote revision, in order; one at or below the view's revision is
  dropped (a stream resumed on another remote frontend never duplicates).
- Never older than the subscriber (D80): a subscriber that resumes a datacenter from further
  along than this frontend's copy (its follower lags, or has not reached it yet) is sent nothing
  of it but a progress at its own revision, stale, and is held `ahead` (hub/subscription.py)
  until the copy passes that revision; its resync snapshots show that datacenter as not
  reached (`complete_revision` 0), which a client keeps as it had it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from registry_service.domain import (
    DatacenterNodes,
    DeltaMessage,
    EventType,
    Node,
    NodeEvent,
    NodeKey,
    NodeList,
    ProgressMessage,
    ResyncReason,
    Scope,
    SnapshotMessage,
    WatchMessage,
)
from registry_service.hub.change_history import ChangeHistory


def net_difference(old: Mapping[NodeKey, Node], new: Mapping[NodeKey, Node]) -> list[NodeEvent]:
    """The events that turn `old` into `new`: removals (no reason: their revisions are not known
    here), then additions and updates, each in key order."""
    events = [
        NodeEvent(EventType.REMOVED, node) for key, node in sorted(old.items()) if key not in new
    ]
    for key, node in sorted(new.items()):
        previous = old.get(key)
        if previous is None:
            events.append(NodeEvent(EventType.ADDED, node))
        elif previous != node:
            events.append(NodeEvent(EventType.UPDATED, node, previous=previous))
    return events


class RemoteDatacenter:
    """One followed datacenter: its list at its registry's revision, its history, its staleness.

    `revision` is the remote registry's revision the list is complete up to (0 until the first
    list arrives). `connected` is the follower's stream being up; the remote frontend's own
    progress says when *it* cannot reach its etcd (`remote_stale`).
    """

    def __init__(self, name: str, history_revisions: int, clock: Callable[[], float]) -> None:
        self.name = name
        self._clock = clock
        self._nodes: dict[NodeKey, Node] = {}
        self.revision = 0
        self._changed_revision = 0
        self.loaded = False
        self.connected = False
        self.remote_stale = False
        self._heard_at = clock()
        self._remote_age = 0.0
        self.history = ChangeHistory(history_revisions)
        self.relists = 0

    @property
    def stale(self) -> bool:
        """Whether its list may be out of date: not reached yet, link down, or its frontend cut
        off."""
        return not (self.loaded and self.connected) or self.remote_stale

    def age_seconds(self) -> float:
        """Time since the remote registry was last heard from (through its frontend)."""
        return max(0.0, self._clock() - self._heard_at) + self._remote_age

    def __len__(self) -> int:
        return len(self._nodes)

    @property
    def changed_revision(self) -> int:
        """The revision of its registry at which its list last changed (what a blocking read of
        the HTTP API waits to see move)."""
        return self._changed_revision

    def _heard(self, remote_age: float) -> None:
        self.connected = True
        self._heard_at = self._clock()
        self._remote_age = remote_age

    # -- fed by the follower ------------------------------------------------------------------

    def load(
        self, nodes: Iterable[Node], revision: int, changed_revision: int
    ) -> WatchMessage | None:
        """A full list of the datacenter at `revision` (its last change at `changed_revision`):
        the first one, or a resync of the follower's stream. Returns what to fan out."""
        self._heard(0.0)
        self.remote_stale = False
        new = {node.key: node for node in nodes if node.datacenter == self.name}
        first = not self.loaded
        events = net_difference(self._nodes, new)
        self._nodes, self.loaded = new, True
        self.revision, self._changed_revision = revision, changed_revision
        self.history.reset(revision)
        if first:  # the hub cuts it to each subscriber's scope
            return self.snapshot(Scope())
        self.relists += 1
        now = self._clock()
        # Sent even when nothing is different: changes that cancelled out are gone with the
        # revisions between, and the flag says so (never a silent gap).
        return DeltaMessage(revision, tuple(events), True, now, now, datacenter=self.name)

    def delta(
        self, events: Sequence[NodeEvent], revision: int, *, relisted: bool
    ) -> DeltaMessage | None:
        """The changes of one remote revision (or a relisted net difference); None when the view
        already holds it, or holds no list yet to apply it to."""
        self._heard(0.0)
        self.remote_stale = False  # a change can only come from the remote etcd
        if not self.loaded or revision <= self.revision:
            return None
        events = tuple(
            # The node before an update, so that a scope with a label selector can tell an
            # update that takes a node out of it (Scope.cut).
            dataclasses.replace(event, previous=self._nodes.get(event.node.key))
            if event.type is EventType.UPDATED
            else event
            for event in events
            if event.node.datacenter == self.name
        )
        for event in events:
            if event.type is EventType.REMOVED:
                self._nodes.pop(event.node.key, None)
            else:
                self._nodes[event.node.key] = event.node
        self.revision = revision
        if events:
            self._changed_revision = revision
        now = self._clock()
        message = DeltaMessage(revision, events, relisted, now, now, datacenter=self.name)
        if relisted:
            self.relists += 1
            self.history.reset(revision)
        else:
            self.history.append(message)
        return message

    def progress(self, revision: int, *, stale: bool, age_seconds: float) -> None:
        """Nothing changed up to `revision`; `stale`: the remote frontend cannot reach its etcd."""
        self._heard(age_seconds)
        self.remote_stale = stale
        if self.loaded:
            self.revision = max(self.revision, revision)

    def interrupted(self) -> None:
        """The follower's stream broke: the list stays as it is, stale, until it is back."""
        self.connected = False

    # -- read by the hub ----------------------------------------------------------------------

    def entry(self, scope: Scope) -> DatacenterNodes:
        """The datacenter's part of a list, cut to the scope's types (its selector and health)."""
        nodes = (
            n
            for n in self._nodes.values()
            if (not scope.types or n.type in scope.types) and scope.passes(n)
        )
        return DatacenterNodes(
            datacenter=self.name,
            revision=self._changed_revision,
            nodes=tuple(sorted(nodes, key=lambda node: (node.type, node.id))),
            remote=True,
            complete_revision=self.revision,
            stale=self.stale,
            age_seconds=round(self.age_seconds(), 3),
        )

    def snapshot(self, scope: Scope, reason: ResyncReason | None = None) -> SnapshotMessage:
        """This datacenter alone, replacing what a subscriber had of it."""
        nodes = NodeList(self.revision, (self.entry(scope),), self.age_seconds(), self.stale)
        return SnapshotMessage(nodes, reason, datacenter=self.name)

    def progress_message(self) -> ProgressMessage:
        """A progress at this copy's revision, with its staleness and age."""
        return ProgressMessage(
            self.revision, self.stale, round(self.age_seconds(), 3), datacenter=self.name
        )

    def behind(self, revision: int) -> bool:
        """Whether a subscriber that holds this datacenter up to `revision` is ahead of this
        copy: it must be sent nothing older (D80)."""
        return revision > 0 and (not self.loaded or revision > self.revision)

    def held_entry(self) -> DatacenterNodes:
        """The datacenter's part of a resync snapshot for a subscriber ahead of this copy: not
        reached (`complete_revision` 0), so that the subscriber keeps what it has, stale."""
        return DatacenterNodes(
            datacenter=self.name,
            revision=0,
            nodes=(),
            remote=True,
            complete_revision=0,
            stale=True,
            age_seconds=round(self.age_seconds(), 3),
        )

    def held_progress(self, revision: int) -> ProgressMessage:
        """What a subscriber ahead of this copy is told: nothing changed up to its own
        revision as far as this frontend knows, and the datacenter is stale here."""
        return ProgressMessage(
            max(revision, self.revision), True, round(self.age_seconds(), 3), datacenter=self.name
        )

    def resume(self, revision: int, scope: Scope) -> list[WatchMessage]:
        """What a subscriber that holds this datacenter up to `revision` (0: nothing) needs.

        Nothing held: a snapshot of it (nothing yet when not reached here: its first list
        follows). Ahead of this copy (`behind`): a stale progress at its own revision, never an
        older list. Else the changes after `revision` from the history, or a resync snapshot of
        it alone when the history no longer has them.
        """
        if revision <= 0:
            return [self.snapshot(scope)] if self.loaded else []
        if self.behind(revision):
            return [self.held_progress(revision)]
        changes = self.history.since(revision, self.revision)
        if isinstance(changes, ResyncReason):
            return [self.snapshot(scope, changes)]
        return [cut for message in changes if (cut := message.within(scope)) is not None]


class RemoteReads(Protocol):
    """What readers see of the followed datacenters (the reads, a blocking read, the metrics)."""

    @property
    def datacenters(self) -> Mapping[str, RemoteDatacenter]:
        """Every followed datacenter by name, in name order."""

    def in_scope(self, scope: Scope) -> list[RemoteDatacenter]:
        """The followed datacenters a scope names (all of them when it names none)."""

    def next_change(self) -> asyncio.Event:
        """Set at the next message of any followed datacenter."""

    async def catch_up(self, revisions: Mapping[str, int], timeout: float) -> None:
        """Waits (at most `timeout` seconds) until the datacenters held here reach `revisions`."""


class RemoteViews:
    """Every followed datacenter, by name; tells its listener (the hub) what to fan out.

    Args:
        names: the remote datacenters (settings `remote_datacenters`).
        history_revisions: changes kept per datacenter for resumes.
        clock: monotonic seconds (ages, and when a message was received).
    """

    def __init__(
        self,
        names: Iterable[str] = (),
        history_revisions: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._datacenters = {
            name: RemoteDatacenter(name, history_revisions, clock) for name in sorted(names)
        }
        self._publish: Callable[[WatchMessage], None] = lambda message: None
        self._advanced = asyncio.Event()

    @property
    def datacenters(self) -> Mapping[str, RemoteDatacenter]:
        """Every followed datacenter by name, in name order."""
        return self._datacenters

    def listen(self, publish: Callable[[WatchMessage], None]) -> None:
        """Hands every message to `publish` (the hub's fan-out): remote deltas, snapshots, and a
        progress whenever a datacenter turns stale or fresh, so subscribers see it at once."""
        self._publish = publish

    def __contains__(self, name: object) -> bool:
        return name in self.datacenters

    def __bool__(self) -> bool:
        return bool(self.datacenters)

    def in_scope(self, scope: Scope) -> list[RemoteDatacenter]:
        """The followed datacenters a scope names (all of them when it names none)."""
        return [
            remote
            for name, remote in self.datacenters.items()
            if not scope.datacenters or name in scope.datacenters
        ]

    # -- fed by the follower ------------------------------------------------------------------

    def load(self, name: str, nodes: Iterable[Node], revision: int, changed_revision: int) -> None:
        """A full list of datacenter `name` (RemoteDatacenter.load), fanned out."""
        remote = self.datacenters[name]
        self._send(remote, lambda: remote.load(nodes, revision, changed_revision))

    def delta(self, name: str, events: Sequence[NodeEvent], revision: int, relisted: bool) -> None:
        """One remote revision's changes of `name` (RemoteDatacenter.delta), fanned out."""
        remote = self.datacenters[name]
        self._send(remote, lambda: remote.delta(events, revision, relisted=relisted))

    def progress(self, name: str, revision: int, stale: bool, age_seconds: float) -> None:
        """A remote progress of `name`; a turn to stale or fresh is fanned out."""
        remote = self.datacenters[name]
        self._send(remote, lambda: remote.progress(revision, stale=stale, age_seconds=age_seconds))

    def interrupted(self, name: str) -> None:
        """The follower of `name` lost its stream: its list stays, marked stale."""
        remote = self.datacenters[name]
        self._send(remote, remote.interrupted)

    def _send(self, remote: RemoteDatacenter, step: Callable[[], WatchMessage | None]) -> None:
        was_stale = remote.stale
        message = step()
        if message is not None:
            self._publish(message)
        if remote.stale != was_stale:
            self._publish(remote.progress_message())
        self._advanced.set()
        self._advanced = asyncio.Event()

    def next_change(self) -> asyncio.Event:
        """Set at the next message of any followed datacenter (taken as WatchHub.next_change)."""
        return self._advanced

    async def catch_up(self, revisions: Mapping[str, int], timeout: float) -> None:
        """Waits (at most `timeout`) until every followed datacenter this frontend holds a list of
        has reached the revision given for it: a subscriber resuming here may come from a frontend
        whose follower was a little further along."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(
            remote.loaded and revisions.get(name, 0) > remote.revision
            for name, remote in self.datacenters.items()
        ):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._advanced.wait()

    # -- read by the hub ----------------------------------------------------------------------

    def resume(self, scope: Scope, revisions: Mapping[str, int]) -> list[WatchMessage]:
        """What a subscriber resuming with this vector needs of every followed datacenter in its
        scope (RemoteDatacenter.resume); entries for other datacenters are ignored."""
        messages: list[WatchMessage] = []
        for remote in self.in_scope(scope):
            messages.extend(remote.resume(revisions.get(remote.name, 0), scope))
        return messages

    def past(self, message: WatchMessage, held: int, scope: Scope) -> WatchMessage | None:
        """A followed datacenter's message for a subscriber that holds it up to `held`, further
        along than this frontend's copy (D80): nothing at or below it (a progress says `held`,
        stale); past it, a delta as it is, but a relist or a first list as a snapshot of that
        datacenter (a net difference from a copy behind the subscriber would not apply)."""
        if isinstance(message, ProgressMessage):
            if message.revision > held:
                return message
            return dataclasses.replace(message, revision=held, stale=True)
        if message.revision <= held:
            return None
        if isinstance(message, DeltaMessage) and not message.relisted:
            return message.within(scope)
        return self.datacenters[message.datacenter].snapshot(scope)

    def cut(self, message: WatchMessage, scope: Scope) -> WatchMessage | None:
        """A followed datacenter's message as a subscriber of `scope` takes it."""
        if isinstance(message, DeltaMessage):
            return message.within(scope)
        if isinstance(message, SnapshotMessage):
            return self.datacenters[message.datacenter].snapshot(scope)
        return message

    def ahead(self, scope: Scope, revisions: Mapping[str, int]) -> dict[str, int]:
        """The datacenters of the scope where this vector is ahead of this frontend's copy, and
        the vector's revision of each: what the subscription holds until the copy passes it."""
        return {
            remote.name: revisions[remote.name]
            for remote in self.in_scope(scope)
            if remote.behind(revisions.get(remote.name, 0))
        }

    def merged(
        self, local: NodeList, scope: Scope, ahead: Mapping[str, int] | None = None
    ) -> NodeList:
        """The local list with every followed datacenter of the scope beside it. A datacenter
        followed as remote is served from its own registry only, never from what the local etcd
        may hold of it. `ahead`: a subscriber's revisions of the datacenters it holds further
        along than this frontend; those still behind here are left out (`held_entry`)."""
        ahead = ahead or {}
        entries = [dc for dc in local.datacenters if dc.datacenter not in self.datacenters]
        entries.extend(
            remote.held_entry() if remote.behind(ahead.get(remote.name, 0)) else remote.entry(scope)
            for remote in self.in_scope(scope)
        )
        return NodeList(
            revision=local.revision,
            datacenters=tuple(sorted(entries, key=lambda dc: dc.datacenter)),
            age_seconds=local.age_seconds,
            stale=local.stale,
        )
