"""The read use cases: GetNodes, WatchNodes, AckWatch, served from the watch hub's view, and the
blocking read of the HTTP API (D50).

A LINEARIZABLE read first brings the view up to etcd's current revision (`sync`); a watch that
resumes from further along than this frontend first catches up (another frontend of the same
etcd, or of the same remote datacenter, may have been ahead), and where it cannot, is held at its
own revision, marked stale, never sent an older list (D80).

A blocking read (Consul's `index=R&wait=`) names where the scope last changed (`ScopeIndex`:
this etcd's revision, and each followed datacenter's in its own registry's revisions) and waits
until the scope changes after it, its wait ends, or its caller interrupts it (the HTTP port
closing). The change events it waits on are taken in the same step that found the scope
unchanged, never when a waiting task first runs: a change applied in between would otherwise
leave the read waiting for the next change or its timeout (the lost wake-up of D50).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from registry_service.domain import (
    Consistency,
    Limits,
    NodeList,
    Scope,
    WatchResume,
)
from registry_service.errors import StoreUnavailableError, SubscriptionNotFoundError
from registry_service.failpoints import failpoint
from registry_service.hub.remote_view import RemoteReads, RemoteViews
from registry_service.hub.subscription import Subscription
from registry_service.hub.watch_hub import WatchHub
from registry_service.store.base import RegistryStore
from registry_service.validation import validate_resume, validate_scope

# A subscriber resuming a remote datacenter from further along than this frontend's follower
# waits at most this long for it (followers of one registry are a round trip apart), then is held
# there, that datacenter stale, until the follower passes it (D80).
_REMOTE_CATCH_UP_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class ScopeIndex:
    """Where a scope last changed: a blocking read's index (the HTTP API's `812,dc2=455`)."""

    revision: int
    """This frontend's etcd's revision of the scope's last change."""
    remotes: Mapping[str, int] = field(default_factory=dict)
    """Each followed datacenter of the scope, its last change in its registry's revisions."""


@dataclass(frozen=True, slots=True)
class ReadsConfig:
    """What a scope may name, and how long a LINEARIZABLE read waits for the view."""

    limits: Limits = field(default_factory=Limits)
    """Names of datacenters and types (a malformed one is INVALID_ARGUMENT)."""
    sync_timeout_seconds: float = 5.0
    """How long a read waits for this frontend's view to reach etcd's revision before it is
    UNAVAILABLE (`etcd_request_timeout_seconds`)."""


class Reads:
    def __init__(
        self,
        store: RegistryStore,
        hub: WatchHub,
        config: ReadsConfig | None = None,
        *,
        remotes: RemoteReads | None = None,
    ) -> None:
        """`remotes`: the datacenters this frontend follows (read-only here)."""
        config = config or ReadsConfig()
        self._store = store
        self._hub = hub
        self._remotes: RemoteReads = remotes if remotes is not None else RemoteViews()
        self._limits = config.limits
        self._sync_timeout = config.sync_timeout_seconds
        self._barrier: asyncio.Task[int] | None = None
        self.waiting = 0
        """Blocking reads waiting for a change now."""

    async def get_nodes(self, scope: Scope, consistency: Consistency) -> NodeList:
        """The scope's nodes: the local etcd's (LINEARIZABLE: as of the call) and each followed
        remote datacenter's as last heard from it (its own revision, stale flag and age)."""
        scope = validate_scope(scope, self._limits)
        await failpoint("get_nodes.before_read")
        if consistency is Consistency.LINEARIZABLE:
            if self._hub.stale:
                raise StoreUnavailableError(
                    "this frontend cannot reach etcd, so it cannot answer LINEARIZABLE; read "
                    "CACHED for its last known list (marked stale), or ask another frontend"
                )
            await self.sync()
        return self._hub.node_list(scope)

    async def sync(self) -> None:
        """Waits until this frontend's view holds every write committed before the call.

        etcd's current revision comes from a linearizable read. The watch usually reaches it by
        itself; when etcd's revision moved through keys outside the watched prefix it never would,
        so a barrier write under the prefix (one at a time, shared by concurrent callers) gives
        the watch a revision at least as new. (Not a watch progress request: before 3.5.8 etcd
        can send one ahead of pending events.)
        """
        target = await self._store.current_revision()
        if await self._hub.wait_for_revision(target, timeout=0.05):
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._sync_timeout
        while self._hub.revision < target:
            if self._barrier is None or self._barrier.done():
                self._barrier = asyncio.create_task(self._store.write_barrier())
            barrier_revision = await asyncio.shield(self._barrier)
            remaining = deadline - loop.time()
            if not await self._hub.wait_for_revision(max(barrier_revision, target), remaining):
                raise StoreUnavailableError(
                    f"this frontend's view is at revision {self._hub.revision} and did not reach "
                    f"etcd's {target} within {self._sync_timeout}s; retry, or read CACHED"
                )

    def ack(self, subscription_id: str, revision: int) -> None:
        """A subscriber confirms it applied everything up to revision."""
        if not self._hub.ack(subscription_id, revision):
            raise SubscriptionNotFoundError(
                f"no open WatchNodes stream {subscription_id!r} on this frontend; acknowledge on "
                "the frontend that serves the stream"
            )

    async def watch(
        self, scope: Scope, resume: WatchResume, *, peer: str = "", acknowledging: bool = False
    ) -> Subscription:
        scope = validate_scope(scope, self._limits)
        resume = validate_resume(resume, self._limits)
        await failpoint("watch.before_subscribe")
        view_lags = False
        if resume.revision > self._hub.revision:
            # Another frontend may have been further along: catch up before deciding. A view
            # that cannot (etcd out of reach) never answers with an older list (D80).
            view_lags = self._hub.stale
            if not view_lags:
                try:
                    await self.sync()
                except StoreUnavailableError:
                    view_lags = True
        if resume.federated and resume.revisions:
            await self._remotes.catch_up(resume.revisions, _REMOTE_CATCH_UP_SECONDS)
        return self._hub.subscribe(
            scope,
            resume.revision,
            resume_revisions=resume.revisions,
            federated=resume.federated,
            peer=peer,
            acknowledging=acknowledging,
            view_lags=view_lags,
        )

    # -- blocking reads -----------------------------------------------------------------------

    def scope_index(self, scope: Scope) -> ScopeIndex:
        """Where the scope last changed: never 0 locally (as Consul's: a client that sent back
        0 would not block at all), and each followed datacenter of the scope beside it."""
        return ScopeIndex(
            max(1, self._hub.view.scope_revision(scope)),
            {remote.name: remote.changed_revision for remote in self._remotes.in_scope(scope)},
        )

    def _changed(self, scope: Scope, since: ScopeIndex) -> bool:
        if self._hub.view.scope_revision(scope) > since.revision:
            return True
        return any(
            remote.changed_revision > since.remotes.get(remote.name, 0)
            for remote in self._remotes.in_scope(scope)
        )

    async def wait_for_change(
        self,
        scope: Scope,
        since: ScopeIndex,
        timeout_seconds: float,
        *,
        interrupt: asyncio.Event | None = None,
    ) -> bool:
        """Waits until the scope changed after `since` (True), or the timeout passes or
        `interrupt` is set first (False). An index above the scope's (another cluster's, or a
        typo) waits out the timeout: the answer's index then tells the client to reset."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        self.waiting += 1
        try:
            while not self._changed(scope, since):
                if interrupt is not None and interrupt.is_set():
                    return False
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                # Taken now, in the step that found the scope unchanged (D50).
                events = [self._hub.next_change(), self._remotes.next_change()]
                if interrupt is not None:
                    events.append(interrupt)
                await _first_set(events, remaining)
            return True
        finally:
            self.waiting -= 1

    async def get_nodes_blocking(
        self,
        scope: Scope,
        consistency: Consistency,
        since: ScopeIndex,
        wait_seconds: float,
        *,
        interrupt: asyncio.Event | None = None,
    ) -> NodeList:
        """GetNodes as a blocking read: checked and synced as GetNodes (LINEARIZABLE: as of the
        call), then answered once the scope changed after `since`, the wait ended, or
        `interrupt` was set; the list as it is then."""
        await self.get_nodes(scope, consistency)
        await self.wait_for_change(scope, since, wait_seconds, interrupt=interrupt)
        return self._hub.node_list(scope)


async def _first_set(events: list[asyncio.Event], timeout: float) -> None:
    """Returns when one of the events is set, or after `timeout`."""
    waits = {asyncio.ensure_future(event.wait()) for event in events}
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waits, return_exceptions=True)
