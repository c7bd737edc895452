"""The evictor: one frontend at a time turns "live key gone" into "member removed" (DESIGN.md §6).

Leadership comes from an etcd election. Every removal is one transaction that also checks that the
member is unchanged, that its live key is still absent and that this frontend still leads (its
election key exists), so a stale view or a deposed leader can never remove a live node.

`select_evictions` is the single place that decides which expired members go now: the eviction
budget (self-preservation) belongs there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from registry_service.domain import NodeKey, RemovalReason
from registry_service.errors import StoreUnavailableError
from registry_service.store.base import Member, RegistryStore, StoredNode
from registry_service.watch_hub import WatchHub

log = logging.getLogger(__name__)


def select_evictions(
    expired: Sequence[tuple[NodeKey, Member]],
) -> list[tuple[NodeKey, Member]]:
    """Which expired members to remove now. Today: all of them, oldest registration first."""
    return sorted(expired, key=lambda item: item[1].mod_revision)


@dataclass
class EvictorStatus:
    candidate: bool = False
    leader: bool = False
    leader_since: float = 0.0
    last_sweep: float = 0.0
    evicted: int = 0
    pending: int = 0


class Evictor:
    """Campaigns for leadership; while leading, removes expired members as soon as the hub sees
    their live key go, and re-checks every member at least every `reconcile_seconds`."""

    def __init__(
        self,
        store: RegistryStore,
        hub: WatchHub,
        *,
        candidate: str,
        lease_ttl_seconds: int = 5,
        poll_seconds: float = 0.5,
        reconcile_seconds: float = 5.0,
    ) -> None:
        self._store = store
        self._hub = hub
        self._candidate = candidate
        self._lease_ttl = lease_ttl_seconds
        self._poll = poll_seconds
        self._reconcile = reconcile_seconds
        self._election = store.election("evictor", candidate, lease_ttl_seconds, poll_seconds)
        self.status = EvictorStatus()

    async def run(self) -> None:
        while True:
            try:
                await self._lead_once()
            except StoreUnavailableError as err:
                log.warning("evictor: %s; campaigning again", err)
                await asyncio.sleep(self._poll)

    async def _lead_once(self) -> None:
        await self._election.stand()
        self.status.candidate = True
        await self._election.campaign()
        self.status.leader, self.status.leader_since = True, time.time()
        log.info("evictor: %s leads eviction", self._candidate)
        lost = asyncio.create_task(self._election.lost())
        try:
            while not lost.done():
                await self.sweep()
                changed = asyncio.create_task(self._hub.wait_for_change(self._reconcile))
                await asyncio.wait({lost, changed}, return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
            log.warning("evictor: %s lost its election lease", self._candidate)
        finally:
            self.status.leader = False
            lost.cancel()

    async def sweep(self) -> int:
        """Removes the expired members `select_evictions` picks; returns how many went."""
        expired = self._hub.view.expired()
        chosen = select_evictions(expired)
        self.status.pending = len(expired) - len(chosen)
        removed = 0
        for key, member in chosen:
            expected = StoredNode(
                key=key,
                revision=self._hub.revision,
                registration=member.registration,
                member_mod_revision=member.mod_revision,
            )
            revision = await self._store.remove_member(
                expected, RemovalReason.EXPIRED, only_if_not_live=True, fence=self._election.fence
            )
            if revision is not None:
                removed += 1
                log.info(
                    "evictor: removed %s (incarnation %d): lease expired",
                    key,
                    member.registration.node.incarnation,
                )
        self.status.evicted += removed
        self.status.last_sweep = time.time()
        return removed

    async def close(self) -> None:
        """Resigns so that another frontend takes over at once."""
        with contextlib.suppress(StoreUnavailableError):
            await self._election.resign()
