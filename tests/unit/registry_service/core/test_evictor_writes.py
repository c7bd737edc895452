"""The evictor's writes without etcd: what it hands the store, sweep after sweep."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

from registry_service.core.evictor import Evictor, EvictorConfig
from registry_service.core.self_preservation import BudgetPolicy
from registry_service.hub.watch_hub import WatchHub
from registry_service.store.base import ClusterState, EvictorWrite, LiveChanged, Member, StoreBatch
from tests.support.store_batches import key, registration
from tests.support.waiting import eventually
from tests.unit.registry_service.hub.test_watch_hub import MemoryStore


class _Election:
    """Leads at once and never loses."""

    fence = b"fence"
    deposed = False

    async def stand(self) -> None:
        pass

    async def campaign(self) -> None:
        pass

    async def lost(self) -> None:
        await asyncio.Event().wait()

    async def resign(self) -> None:
        pass


class RecordingStore(MemoryStore):
    """Every evictor write succeeds; the watch never shows it (as when the watch runs behind)."""

    def __init__(self, state: ClusterState) -> None:
        super().__init__(state)
        self.written: list[list[str]] = []

    def election(self, *args: object) -> _Election:
        return _Election()

    async def evict_many(self, writes: Sequence[EvictorWrite], *, fence: bytes) -> list[int]:
        self.written.append([write.expected.key.id for write in writes])
        return [20] * len(writes)


class SlowStore(RecordingStore):
    """Its first evictor write waits until the test releases it."""

    def __init__(self, state: ClusterState) -> None:
        super().__init__(state)
        self.release = asyncio.Event()

    async def evict_many(self, writes: Sequence[EvictorWrite], *, fence: bytes) -> list[int]:
        answer = await super().evict_many(writes, fence=fence)
        if len(self.written) == 1:
            await self.release.wait()
        return answer


async def _evictor_over(
    store: RecordingStore, connection: object = None, **options: float
) -> tuple[WatchHub, Evictor]:
    """A started hub over the store, and an evictor whose budget never holds anything back;
    `options` are EvictorConfig fields."""
    hub = WatchHub(store)  # type: ignore[arg-type]
    await hub.start()
    config = EvictorConfig(policy=BudgetPolicy(minimum=1_000, type_minimum=1_000), **options)  # type: ignore[arg-type]
    evictor = Evictor(store, hub, config, candidate="c", connection=connection)  # type: ignore[arg-type]
    return hub, evictor


async def test_a_member_removed_is_not_decided_again_while_the_view_still_shows_it():
    state = ClusterState(revision=10)
    for i in range(250):
        state.members[key(f"m{i:03d}")] = Member(registration(f"m{i:03d}"), 5)  # no live keys
    store = RecordingStore(state)
    hub, evictor = await _evictor_over(store)
    assert await evictor.sweep() == 250
    assert [len(batch) for batch in store.written] == [100, 100, 50]  # the store's batches
    assert await evictor.sweep() == 0
    assert len(store.written) == 3
    await hub.close()


async def test_a_lease_that_expires_while_the_evictor_writes_is_swept_without_waiting():
    """The leader sweeps again for the changes that came while it was writing: no later change
    is needed (none comes here), nor the reconcile period (600 s here)."""
    state = ClusterState(revision=10)
    state.members[key("first")] = Member(registration("first"), 5)  # its live key is gone
    state.members[key("second")] = Member(registration("second"), 6)
    state.live.add(key("second"))
    store = SlowStore(state)
    hub, evictor = await _evictor_over(store, reconcile_seconds=600)
    leading = asyncio.create_task(evictor.run())
    try:
        await eventually(lambda: store.written == [["first"]], message="the first write")
        store.batches.put_nowait(StoreBatch(11, (LiveChanged(key("second"), False),)))
        assert await hub.wait_for_revision(11, timeout=5)
        store.release.set()
        await eventually(
            lambda: store.written == [["first"], ["second"]], message="the second swept"
        )
    finally:
        leading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await leading
        await hub.close()


@dataclass
class Connection:
    """etcd's reachability as the etcd watch reports it."""

    connected: bool
    connected_since: float = 0.0


async def test_nothing_is_decided_until_etcd_has_been_back_for_the_outage_grace():
    state = ClusterState(revision=10)
    state.members[key("silent")] = Member(registration("silent"), 5)  # its live key is gone
    store = RecordingStore(state)
    connection = Connection(connected=False)
    hub, evictor = await _evictor_over(store, connection, outage_grace_seconds=60)
    assert await evictor.sweep() == 0 and evictor.status.held_by_outage  # etcd unreachable
    connection.connected, connection.connected_since = True, time.monotonic()
    assert await evictor.sweep() == 0 and evictor.status.held_by_outage  # back, within grace
    connection.connected_since = time.monotonic() - 61
    assert await evictor.sweep() == 1 and not evictor.status.held_by_outage
    assert store.written == [["silent"]]
    await hub.close()


async def test_consecutive_sweeps_before_the_view_catches_up_spend_the_budget_once():
    """Issue 22, item 2: a sweep planned on a view that still lists the previous sweep's
    removals must not count them both as members and as spent. 49 members, 10 silent: the
    budget is 7 (15 % of 49); the second sweep, 4 ms later in the report, saw 49 members + 7
    spent, a budget of 8, and removed one more."""
    state = ClusterState(revision=10)
    for i in range(49):
        state.members[key(f"m{i:02d}")] = Member(registration(f"m{i:02d}"), 5 + i)
        if i >= 10:
            state.live.add(key(f"m{i:02d}"))  # 39 renewing, 10 silent
    store = RecordingStore(state)
    hub = WatchHub(store)  # type: ignore[arg-type]
    await hub.start()
    evictor = Evictor(store, hub, EvictorConfig(), candidate="c")  # type: ignore[arg-type]
    try:
        first = await evictor.sweep()
        second = await evictor.sweep()  # the watch has shown none of the first sweep's writes
        assert (first, second) == (7, 0)
        budget = evictor.status.plan.datacenters["dc1"]
        assert (budget.members, budget.budget, budget.spent) == (42, 7, 7)
        assert evictor.status.plan.types[("dc1", "data")].budget == 7
    finally:
        await hub.close()


async def test_below_min_members_by_d89s_population_every_expired_member_still_goes():
    """self_preservation_min_members is judged on the budget's population as D89 counts it (the
    members at the window's start: the view's, without this evictor's removals it does not show
    yet, plus those spent). 9 members, minimum 10: 5 go silent and are removed at once; 3 more go
    silent before the watch shows those removals. Counted twice (9 listed + 5 spent = 14), the
    datacenter would look large enough to preserve, and hold the 3 as SUSPECT."""
    state = ClusterState(revision=10)
    for i in range(9):
        state.members[key(f"m{i}")] = Member(registration(f"m{i}"), 5 + i)
        if i >= 5:
            state.live.add(key(f"m{i}"))  # m0-m4 silent, m5-m8 renewing
    store = RecordingStore(state)
    hub = WatchHub(store)  # type: ignore[arg-type]
    await hub.start()
    config = EvictorConfig(policy=BudgetPolicy(min_members=10))
    evictor = Evictor(store, hub, config, candidate="c")  # type: ignore[arg-type]
    try:
        assert await evictor.sweep() == 5
        silent = tuple(LiveChanged(key(f"m{i}"), False) for i in (5, 6, 7))
        store.batches.put_nowait(StoreBatch(11, silent))  # the removals not shown yet
        assert await hub.wait_for_revision(11, timeout=5)
        assert await evictor.sweep() == 3
        assert store.written == [["m0", "m1", "m2", "m3", "m4"], ["m5", "m6", "m7"]]
        budget = evictor.status.plan.datacenters["dc1"]
        assert (budget.members, budget.spent, budget.suspects) == (4, 5, 0)
    finally:
        await hub.close()
