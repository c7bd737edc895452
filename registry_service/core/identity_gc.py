"""Identity records of ids long gone are collected by the frontend that leads eviction (D86).

The store does the work under the incarnation floor (store/identity_collection.py); this loop
decides when: every `interval_seconds`, while this frontend leads eviction (one collector per
cluster, as one evictor), the records of ids that left more than `retention_seconds` ago and are
held by no operator. A failed pass (etcd away) is logged and tried again at the next interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from registry_service.errors import RegistryError
from registry_service.retry import ThrottledLog
from registry_service.store.base import RegistryStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IdentityGcConfig:
    """When identity records are collected."""

    retention_seconds: float = 86_400.0
    """An id's record is kept this long after it left (`identity_retention_seconds`)."""
    interval_seconds: float = 300.0
    """The leading frontend looks for records to collect this often
    (`identity_gc_interval_seconds`)."""


class IdentityCollector:
    def __init__(
        self,
        store: RegistryStore,
        leading: Callable[[], bool],
        config: IdentityGcConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """`leading`: whether this frontend leads eviction now (the evictor's status); `clock`
        and `sleep` are the wall clock and the wait between passes (tests step them)."""
        self._store = store
        self._leading = leading
        self._config = config or IdentityGcConfig()
        self._clock = clock
        self._sleep = sleep
        self._failures = ThrottledLog(log, "identity collection")
        self.collected = 0
        """Records collected by this frontend since it started."""

    async def collect_once(self) -> int:
        """One pass, whether leading or not; returns how many records went."""
        now = self._clock()
        collected = await self._store.collect_identities(now - self._config.retention_seconds, now)
        self.collected += collected
        return collected

    async def run(self) -> None:
        """Collects every interval while leading, until cancelled."""
        while True:
            await self._sleep(self._config.interval_seconds)
            if not self._leading():
                continue
            try:
                await self.collect_once()
            except RegistryError as err:
                self._failures.failed(err)
            else:
                self._failures.succeeded()
