"""The identity collector's loop (core/identity_gc.py): it collects only while its frontend leads
eviction, with the retention's cut-off, and a failed pass does not end it."""

from __future__ import annotations

import asyncio
import contextlib

from registry_service.core.identity_gc import IdentityCollector, IdentityGcConfig
from registry_service.errors import StoreUnavailableError


class _Store:
    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []
        self.fail_next = False

    async def collect_identities(self, written_before: float, now: float) -> int:
        self.calls.append((written_before, now))
        if self.fail_next:
            self.fail_next = False
            raise StoreUnavailableError("etcd away")
        return 2


class _Intervals:
    """The collector's wait between passes, stepped by the test."""

    def __init__(self) -> None:
        self._waits = asyncio.Queue[asyncio.Future[None]]()

    async def sleep(self, seconds: float) -> None:
        done = asyncio.get_running_loop().create_future()
        self._waits.put_nowait(done)
        await done

    async def next(self) -> None:
        """Ends the collector's wait; returns once it waits again (its pass done)."""
        (await asyncio.wait_for(self._waits.get(), 5)).set_result(None)
        self._waits.put_nowait(await asyncio.wait_for(self._waits.get(), 5))


async def test_it_collects_while_leading_with_the_retentions_cut_off_and_survives_a_failure():
    store, leading, intervals = _Store(), [False], _Intervals()
    collector = IdentityCollector(
        store,  # type: ignore[arg-type]
        lambda: leading[0],
        IdentityGcConfig(retention_seconds=100.0, interval_seconds=300.0),
        clock=lambda: 1_000.0,
        sleep=intervals.sleep,
    )
    running = asyncio.create_task(collector.run())
    try:
        for _ in range(3):
            await intervals.next()  # not leading: no pass
        assert store.calls == []
        leading[0], store.fail_next = True, True
        await intervals.next()  # a pass that fails (etcd away): logged, the loop goes on
        await intervals.next()
        assert store.calls == [(900.0, 1_000.0)] * 2
        assert collector.collected == 2
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
