"""A frontend announces itself in etcd (`frontends/<id>`, docs/design.md §9) so that any one can
answer for the whole cluster: who serves, at which gRPC and admin addresses, which version, how
many workers, how many subscribers.

The announcement rides on a lease of the frontend's own: it goes when the frontend stops (the
lease is revoked) or dies (the lease expires). The subscriber count is refreshed at most every
`refresh_seconds`, and only when it changed, so an idle cluster writes nothing. A lost lease (an
etcd outage longer than its TTL) is replaced and the announcement made again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable

from registry_service.control import Announcement
from registry_service.errors import StoreError
from registry_service.store.base import ControlStore, RegistryStore

log = logging.getLogger(__name__)


class Announcer:
    """Keeps this frontend's announcement in etcd while it runs, on a lease of its own."""

    def __init__(
        self,
        store: RegistryStore,
        control: ControlStore,
        announcement: Announcement,
        subscribers: Callable[[], int],
        *,
        lease_ttl_seconds: int = 10,
        refresh_seconds: float = 5.0,
    ) -> None:
        self._store = store
        self._control = control
        self.announcement = announcement
        self._subscribers = subscribers
        self._ttl = lease_ttl_seconds
        self._refresh = refresh_seconds
        self._lease = 0
        self._announced = False  # the last announcement reached etcd
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Announces once (errors go to the caller's log, not its start), then keeps it current
        in the background."""
        with contextlib.suppress(StoreError):
            await self._announce()
        self._task = asyncio.create_task(self._keep(), name="announcer")

    async def _announce(self) -> None:
        self.announcement = dataclasses.replace(self.announcement, subscribers=self._subscribers())
        self._announced = False
        if not self._lease:
            self._lease = await self._store.grant_lease(self._ttl)
        await self._control.announce(self.announcement, self._lease)
        self._announced = True

    async def _keep(self) -> None:
        """Renews the lease at TTL/3 and re-announces when the subscriber count changed."""
        interval = min(self._ttl / 3, self._refresh)
        since_refresh = 0.0
        while True:
            await asyncio.sleep(interval)
            since_refresh += interval
            try:
                if self._lease and await self._store.renew_lease(self._lease) <= 0:
                    log.warning("announcer: lease lost; announcing again")
                    self._lease, self._announced = 0, False
                changed = self._subscribers() != self.announcement.subscribers
                if not self._announced or (changed and since_refresh >= self._refresh):
                    await self._announce()
                    since_refresh = 0.0
            except StoreError as err:
                log.debug("announcer: %s; retrying", err)

    async def stop(self) -> None:
        """Withdraws the announcement (revokes its lease)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._lease:
            with contextlib.suppress(StoreError):
                await self._store.revoke_lease(self._lease)
            self._lease = 0
