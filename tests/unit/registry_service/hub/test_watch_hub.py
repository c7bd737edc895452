"""The hub's logic without etcd: an in-memory store feeds it batches (unit tests of pure logic)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import pytest

from registry_service.domain import (
    ChangeStage,
    DeltaMessage,
    ProgressMessage,
    ResyncReason,
    Scope,
    SnapshotMessage,
)
from registry_service.errors import ShuttingDownError, StoreCompactedError
from registry_service.hub.operator_state import OperatorState
from registry_service.hub.remote_view import RemoteViews
from registry_service.hub.watch_hub import HubConfig, WatchHub
from registry_service.store.base import ClusterState, Member, StoreBatch, StoreHeartbeat
from tests.support.store_batches import added, key, registration
from tests.support.waiting import eventually


class MemoryStore:
    """Just enough of RegistryStore for the hub: load() and watch()."""

    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self.batches: asyncio.Queue[StoreBatch | StoreHeartbeat | Exception] = asyncio.Queue()

    async def load(self) -> ClusterState:
        return self.state

    async def watch(self, start_revision: int) -> AsyncIterator[StoreBatch | StoreHeartbeat]:
        while True:
            item = await self.batches.get()
            if isinstance(item, Exception):
                raise item
            yield item


_CONFIG_FIELDS = {field.name for field in dataclasses.fields(HubConfig)}


async def started_hub(
    *, operator: OperatorState | None = None, remotes: RemoteViews | None = None, **options
) -> tuple[WatchHub, MemoryStore]:
    """A started hub over an empty store at revision 10; `options` are HubConfig fields and
    the hub's own keywords (observe, clock)."""
    store = MemoryStore(ClusterState(revision=10))
    config = HubConfig(**{k: v for k, v in options.items() if k in _CONFIG_FIELDS})
    hooks = {k: v for k, v in options.items() if k not in _CONFIG_FIELDS}
    hub = WatchHub(store, config, operator=operator, remotes=remotes, **hooks)  # type: ignore[arg-type]
    await hub.start()
    return hub, store


async def feed(hub: WatchHub, store: MemoryStore, *batches: StoreBatch) -> None:
    for batch in batches:
        store.batches.put_nowait(batch)
    assert await hub.wait_for_revision(batches[-1].revision, timeout=5)


async def test_subscriber_gets_snapshot_then_deltas_in_scope():
    hub, store = await started_hub()
    subscription = hub.subscribe(Scope(datacenters=frozenset({"dc1"})))
    await feed(hub, store, added(11, "a"), added(12, "x", "dc2"), added(13, "b"))
    messages = [await anext(subscription) for _ in range(3)]
    assert isinstance(messages[0], SnapshotMessage) and messages[0].revision == 10
    assert [(m.revision, m.events[0].node.id) for m in messages[1:]] == [(11, "a"), (13, "b")]
    await hub.close()


async def test_subscribers_with_equal_scopes_share_one_message_object():
    """The wire cache serializes a delta once per message object: equal scopes must get the same
    object (the hub's own when the scope takes all of a delta), a narrower cut one shared copy."""
    hub, store = await started_hub()
    dc1 = [hub.subscribe(Scope(datacenters=frozenset({"dc1"}))) for _ in range(3)]
    everything = hub.subscribe(Scope())
    for subscription in [*dc1, everything]:
        await anext(subscription)  # snapshots
    await feed(hub, store, added(11, "a"))
    whole = [await anext(subscription) for subscription in dc1]
    assert whole[0] is whole[1] is whole[2] is await anext(everything)

    await feed(hub, store, StoreBatch(12, added(12, "c").changes + added(12, "y", "dc2").changes))
    cut = [await anext(subscription) for subscription in dc1]
    assert cut[0] is cut[1] is cut[2]
    assert isinstance(cut[0], DeltaMessage) and [e.node.id for e in cut[0].events] == ["c"]
    full = await anext(everything)
    assert isinstance(full, DeltaMessage)
    assert sorted(e.node.id for e in full.events) == ["c", "y"]
    await hub.close()


async def test_resume_inside_history_replays_exactly_the_later_revisions():
    hub, store = await started_hub(history_revisions=3)
    await feed(hub, store, *(added(11 + i, f"n{i}") for i in range(5)))  # revisions 11..15
    resumed = hub.subscribe(Scope(), resume_revision=13)
    assert [m.revision for m in (await anext(resumed), await anext(resumed))] == [14, 15]
    at_floor = hub.subscribe(Scope(), resume_revision=12)  # history holds every change after 12
    assert (await anext(at_floor)).revision == 13
    compacted = hub.subscribe(Scope(), resume_revision=11)  # change 12 fell out of the history
    first = await anext(compacted)
    assert isinstance(first, SnapshotMessage) and first.resync_reason is ResyncReason.COMPACTED
    ahead = hub.subscribe(Scope(), resume_revision=99)
    first = await anext(ahead)
    assert isinstance(first, SnapshotMessage)
    assert first.resync_reason is ResyncReason.UNKNOWN_REVISION
    await hub.close()


async def test_a_full_queue_collapses_into_one_resync_and_others_are_untouched():
    hub, store = await started_hub(queue_messages=3)
    slow = hub.subscribe(Scope())
    fast = hub.subscribe(Scope())
    await anext(slow), await anext(fast)
    await feed(hub, store, *(added(11 + i, f"n{i}") for i in range(10)))
    assert slow.backlog <= 3
    resync = await anext(slow)
    assert isinstance(resync, SnapshotMessage)
    assert resync.resync_reason is ResyncReason.SLOW_CONSUMER
    assert len(resync.nodes.datacenters[0].nodes) == 10 and resync.revision == 20
    # fast kept up by reading as it went... here it also overflowed; what matters: its own state.
    await hub.close()


async def test_idle_subscriber_gets_progress_at_the_hubs_revision():
    hub, store = await started_hub(progress_seconds=0.01)
    subscription = hub.subscribe(Scope())
    await anext(subscription)
    await feed(hub, store, StoreBatch(11, ()))  # e.g. a barrier: no member changes
    message = await anext(subscription)
    assert isinstance(message, ProgressMessage)
    assert message.revision == 11 and not message.stale
    await hub.close()


async def test_compaction_relists_and_sends_the_difference_flagged():
    hub, store = await started_hub()
    subscription = hub.subscribe(Scope())
    await anext(subscription)
    await feed(hub, store, added(11, "a"))
    store.state = ClusterState(revision=30, members={key("b"): Member(registration("b"), 25)})
    store.batches.put_nowait(StoreCompactedError("etcd keeps history from 20"))
    assert await hub.wait_for_revision(30, timeout=5)
    assert [m.revision for m in [await anext(subscription)]] == [11]
    relisted = await anext(subscription)
    assert isinstance(relisted, DeltaMessage) and relisted.relisted
    assert sorted((e.type.value, e.node.id) for e in relisted.events) == [
        ("ADDED", "b"),
        ("REMOVED", "a"),
    ]
    stale = hub.subscribe(Scope(), resume_revision=11)  # history was lost with the relist
    assert (await anext(stale)).resync_reason is ResyncReason.COMPACTED  # type: ignore[union-attr]
    await hub.close()


async def test_close_ends_subscriptions_with_shutting_down():
    hub, _ = await started_hub()
    subscription = hub.subscribe(Scope())
    await anext(subscription)
    await hub.close()
    with pytest.raises(ShuttingDownError):
        await anext(subscription)


async def test_each_stage_of_a_change_is_timed_once_where_it_happens():
    observed: list[tuple[ChangeStage, float]] = []
    hub, store = await started_hub(observe=lambda stage, seconds: observed.append((stage, seconds)))
    subscription = hub.subscribe(Scope())
    snapshot = await anext(subscription)
    subscription.ack(snapshot.revision)  # an acknowledging subscriber: its writes are timed
    stamped = dataclasses.replace(added(11, "a"), written_at=time.time() - 0.5)
    await feed(hub, store, stamped, added(12, "b"))  # b: written by something unstamped
    delta = await anext(subscription)
    assert isinstance(delta, DeltaMessage) and delta.queued_at >= delta.received_at > 0
    subscription.written(delta, time.monotonic())
    subscription.ack(delta.revision)
    stages = [stage for stage, _ in observed]
    assert stages.count(ChangeStage.COMMIT_TO_RECEIVED) == 1  # only the stamped change
    assert stages.count(ChangeStage.RECEIVED_TO_QUEUED) == 2
    assert stages.count(ChangeStage.WRITTEN_TO_ACKED) == 1
    commit = next(seconds for stage, seconds in observed if stage is ChangeStage.COMMIT_TO_RECEIVED)
    assert 0.5 <= commit < 5
    assert all(seconds >= 0 for _, seconds in observed)


async def test_a_fan_out_is_handed_out_in_slices_and_every_subscriber_keeps_the_order():
    hub, store = await started_hub(slice_subscribers=10, progress_seconds=0.05)
    subscriptions = [hub.subscribe(Scope()) for _ in range(25)]
    for subscription in subscriptions:
        await anext(subscription)  # snapshots at 10
    store.batches.put_nowait(added(11, "a"))
    store.batches.put_nowait(added(12, "b"))
    await hub.wait_for_revision(12, timeout=5)
    # The view is at 12 at once; the subscriptions are offered a slice per event-loop step.
    assert hub.revision == 12
    assert hub.published_revision < 12
    assert 0 < sum(s.backlog for s in subscriptions) < 2 * 25
    for subscription in subscriptions:
        first, second = await anext(subscription), await anext(subscription)
        assert (first.revision, second.revision) == (11, 12)
    assert hub.published_revision == 12
    # Progress claims nothing beyond what every subscription was offered.
    progress = await anext(subscriptions[-1])
    assert isinstance(progress, ProgressMessage) and progress.revision == 12
    await hub.close()


async def test_a_resync_snapshot_sent_during_a_sliced_fan_out_is_not_followed_by_its_change():
    hub, store = await started_hub(slice_subscribers=1)
    subscriptions = [hub.subscribe(Scope()) for _ in range(50)]
    for subscription in subscriptions:
        await anext(subscription)
    early, late = subscriptions[0], subscriptions[-1]
    store.batches.put_nowait(added(11, "a"))
    await hub.wait_for_revision(11, timeout=5)
    assert late.backlog == 0  # not offered revision 11 yet: the slices are still going
    late.request_resync(ResyncReason.SLOW_CONSUMER)
    snapshot = await anext(late)
    assert isinstance(snapshot, SnapshotMessage) and snapshot.revision == 11
    store.batches.put_nowait(added(12, "b"))
    await hub.wait_for_revision(12, timeout=5)
    after = await anext(late)  # 12, not 11 again
    assert isinstance(after, DeltaMessage) and after.revision == 12
    assert (await anext(early)).revision == 11
    await hub.close()


async def test_a_change_event_taken_before_a_change_is_set_by_it():
    """A blocking read looks, takes the event, then waits: a change applied between taking it
    and the waiter first running still wakes the waiter."""
    hub, store = await started_hub()
    event = hub.next_change()
    waiter = asyncio.ensure_future(event.wait())  # not yet running
    await feed(hub, store, added(11, "a"))
    assert event.is_set()
    async with asyncio.timeout(5):
        await waiter
    assert not hub.next_change().is_set()  # the next change gets a fresh event
    await hub.close()


async def test_stats_are_a_read_only_copy_of_the_counters():
    hub, store = await started_hub(queue_messages=1)
    before = hub.stats()
    slow = hub.subscribe(Scope())
    await feed(hub, store, added(11, "a"), added(12, "b"))  # a queue of 1 overflows
    after = hub.stats()
    assert after.resyncs[ResyncReason.SLOW_CONSUMER] == 1
    assert before.resyncs[ResyncReason.SLOW_CONSUMER] == 0  # a copy, taken when asked
    assert (before.revision, after.revision) == (10, 12)
    with pytest.raises(TypeError):
        after.resyncs[ResyncReason.SLOW_CONSUMER] = 0  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        after.relists = 5  # type: ignore[misc]
    assert slow.resync_pending
    await hub.close()


async def test_stats_count_relists_and_the_watchs_lag_behind_etcd():
    hub, store = await started_hub()
    store.batches.put_nowait(StoreHeartbeat(15))  # etcd is at 15; nothing of ours changed
    await eventually(lambda: hub.stats().etcd_revision == 15, timeout=5)
    assert hub.stats().lag_revisions == 5
    store.state = ClusterState(revision=30)
    store.batches.put_nowait(StoreCompactedError("etcd keeps history from 20"))
    assert await hub.wait_for_revision(30, timeout=5)
    stats = hub.stats()
    assert stats.relists == 1 and stats.lag_revisions == 0
    await hub.close()
