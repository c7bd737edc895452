"""The evictor's writes without etcd: what it hands the store, sweep after sweep."""

from __future__ import annotations

from collections.abc import Sequence

from registry_service.evictor import Evictor
from registry_service.self_preservation import BudgetPolicy
from registry_service.store.base import ClusterState, EvictorWrite, Member
from registry_service.watch_hub import WatchHub
from tests.support.store_batches import key, registration
from tests.unit.test_watch_hub import MemoryStore


class _Election:
    fence = b"fence"


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


async def test_a_member_removed_is_not_decided_again_while_the_view_still_shows_it():
    state = ClusterState(revision=10)
    for i in range(250):
        state.members[key(f"m{i:03d}")] = Member(registration(f"m{i:03d}"), 5)  # no live keys
    store = RecordingStore(state)
    hub = WatchHub(store)  # type: ignore[arg-type]
    await hub.start()
    evictor = Evictor(
        store,  # type: ignore[arg-type]
        hub,
        candidate="c",
        policy=BudgetPolicy(minimum=1_000, type_minimum=1_000),
    )
    assert await evictor.sweep() == 250
    assert [len(batch) for batch in store.written] == [100, 100, 50]  # the store's batches
    assert await evictor.sweep() == 0
    assert len(store.written) == 3
    await hub.close()
