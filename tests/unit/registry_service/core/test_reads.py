"""GetNodes, WatchNodes and AckWatch (core/reads.py) over the in-memory store: consistency,
snapshot then deltas, resumes, and resyncs when the history is gone."""

from __future__ import annotations

import asyncio

import pytest

from registry_service.domain import (
    Consistency,
    DeltaMessage,
    EventType,
    NodeKey,
    NodeList,
    RemovalReason,
    ResyncReason,
    Scope,
    SnapshotMessage,
    WatchResume,
)
from registry_service.errors import (
    InvalidArgumentError,
    StoreUnavailableError,
    SubscriptionNotFoundError,
)
from registry_service.hub.subscription import Subscription
from tests.support.memory_store import MemoryStore
from tests.support.use_cases import Frontend, MakeFrontend, next_message, node
from tests.support.waiting import eventually

EVERYTHING = Scope()


def ids(nodes: NodeList) -> list[str]:
    return [node.id for datacenter in nodes.datacenters for node in datacenter.nodes]


async def delta(subscription: Subscription) -> DeltaMessage:
    message = await next_message(subscription)
    assert isinstance(message, DeltaMessage), message
    return message


async def snapshot(subscription: Subscription) -> SnapshotMessage:
    message = await next_message(subscription)
    assert isinstance(message, SnapshotMessage), message
    return message


# -- GetNodes ----------------------------------------------------------------------------------


async def test_a_linearizable_read_waits_for_writes_committed_before_it(
    frontend_over: MakeFrontend, store: MemoryStore
):
    frontend = await frontend_over(sync_timeout_seconds=60)  # it waits for the test, not a timer
    store.hold_watch()  # this frontend's watch runs behind etcd
    written = await frontend.registry.register(node("a"), 10)
    cached = await frontend.reads.get_nodes(EVERYTHING, Consistency.CACHED)
    assert ids(cached) == [] and cached.revision < written.revision
    reading = asyncio.create_task(frontend.reads.get_nodes(EVERYTHING, Consistency.LINEARIZABLE))
    await wait_for_calls(store, "current_revision", 1)  # it asked etcd where etcd is
    assert not reading.done()  # and cannot answer before its view gets there
    store.release_watch()
    answered = await asyncio.wait_for(reading, 5)
    assert ids(answered) == ["a"] and answered.revision >= written.revision


async def wait_for_calls(store: MemoryStore, call: str, count: int) -> None:
    await eventually(lambda: store.calls[call] >= count, timeout=5, message=f"{count} {call}")


async def test_a_linearizable_read_catches_up_past_revisions_outside_the_watched_keys(
    frontend: Frontend, store: MemoryStore
):
    """etcd's revision can move without a change the watch delivers (another cluster's keys
    under other prefixes); a barrier write under the prefix gives the watch a revision to see."""
    await frontend.registry.register(node("a"), 10)
    await frontend.caught_up()
    store.write_outside_prefix()
    etcd_revision = store.revision
    answered = await frontend.reads.get_nodes(EVERYTHING, Consistency.LINEARIZABLE)
    assert ids(answered) == ["a"] and answered.revision > etcd_revision  # the barrier's


async def test_a_linearizable_read_whose_view_cannot_catch_up_is_unavailable(
    frontend_over: MakeFrontend, store: MemoryStore
):
    frontend = await frontend_over(sync_timeout_seconds=0.2)
    store.hold_watch()
    await frontend.registry.register(node("a"), 10)
    with pytest.raises(StoreUnavailableError, match="read CACHED"):
        await frontend.reads.get_nodes(EVERYTHING, Consistency.LINEARIZABLE)
    store.release_watch()


async def test_in_a_store_outage_a_linearizable_read_is_refused_and_a_cached_one_is_stale(
    frontend: Frontend, store: MemoryStore
):
    await frontend.registry.register(node("a"), 10)
    await frontend.caught_up()
    store.available = False
    with pytest.raises(StoreUnavailableError, match="CACHED"):
        await frontend.reads.get_nodes(EVERYTHING, Consistency.LINEARIZABLE)
    cached = await frontend.reads.get_nodes(EVERYTHING, Consistency.CACHED)
    assert ids(cached) == ["a"] and cached.stale


async def test_get_nodes_lists_the_scope_per_datacenter(frontend: Frontend):
    for node_id, datacenter, node_type in [
        ("a", "dc1", "data"),
        ("b", "dc1", "meta"),
        ("c", "dc2", "data"),
    ]:
        await frontend.registry.register(node(node_id, datacenter, node_type), 10)
    everything = await frontend.reads.get_nodes(EVERYTHING, Consistency.LINEARIZABLE)
    assert [(d.datacenter, [n.id for n in d.nodes]) for d in everything.datacenters] == [
        ("dc1", ["a", "b"]),
        ("dc2", ["c"]),
    ]
    data = await frontend.reads.get_nodes(
        Scope(types=frozenset({"data"})), Consistency.LINEARIZABLE
    )
    assert ids(data) == ["a", "c"]


async def test_a_malformed_scope_is_invalid(frontend: Frontend):
    with pytest.raises(InvalidArgumentError):
        await frontend.reads.get_nodes(
            Scope(datacenters=frozenset({"Not A Datacenter"})), Consistency.CACHED
        )


# -- WatchNodes --------------------------------------------------------------------------------


async def test_a_watch_starts_with_a_snapshot_then_one_delta_per_change(
    frontend: Frontend, store: MemoryStore
):
    first = await frontend.registry.register(node("a"), 10)
    await frontend.caught_up()
    watcher = await frontend.reads.watch(EVERYTHING, WatchResume())
    opened = await snapshot(watcher)
    assert ids(opened.nodes) == ["a"] and opened.resync_reason is None

    second = await frontend.registry.register(node("b"), 10)
    await frontend.registry.deregister(NodeKey("dc1", "data", "a"), first.token)
    added, removed = await delta(watcher), await delta(watcher)
    assert added.revision == second.revision
    assert [(e.type, e.node.id) for e in added.events] == [(EventType.ADDED, "b")]
    assert [(e.type, e.node.id, e.reason) for e in removed.events] == [
        (EventType.REMOVED, "a", RemovalReason.DEREGISTERED)
    ]
    assert removed.revision == store.revision
    watcher.close()


async def test_a_watch_sees_only_its_scope(frontend: Frontend):
    watcher = await frontend.reads.watch(Scope(datacenters=frozenset({"dc2"})), WatchResume())
    await snapshot(watcher)
    await frontend.registry.register(node("a", "dc1"), 10)
    await frontend.registry.register(node("b", "dc2"), 10)
    assert [e.node.id for e in (await delta(watcher)).events] == ["b"]
    watcher.close()


async def test_a_resumed_watch_gets_exactly_the_changes_after_its_revision(
    frontend: Frontend, store: MemoryStore
):
    await frontend.registry.register(node("a"), 10)
    resume_at = store.revision
    await frontend.registry.register(node("b"), 10)
    await frontend.registry.register(node("c"), 10)
    await frontend.caught_up()
    resumed = await frontend.reads.watch(EVERYTHING, WatchResume(revision=resume_at))
    replayed = [await delta(resumed), await delta(resumed)]
    assert [e.node.id for message in replayed for e in message.events] == ["b", "c"]
    await frontend.registry.register(node("d"), 10)
    assert [e.node.id for e in (await delta(resumed)).events] == ["d"]
    resumed.close()


async def test_a_watch_resuming_from_further_along_than_this_frontend_first_catches_up(
    frontend_over: MakeFrontend, store: MemoryStore
):
    """Another frontend of the same etcd was ahead: this one catches up before deciding, so the
    subscriber neither gets a resync nor misses a change."""
    ahead, behind = await frontend_over(), await frontend_over(sync_timeout_seconds=60)
    await ahead.registry.register(node("a"), 10)
    await ahead.caught_up()
    store.hold_watch()
    await ahead.registry.register(node("b"), 10)  # neither frontend's view has it yet
    resume_at = store.revision
    watching = asyncio.create_task(behind.reads.watch(EVERYTHING, WatchResume(revision=resume_at)))
    await wait_for_calls(store, "current_revision", 1)
    store.release_watch()
    resumed = await asyncio.wait_for(watching, 5)
    await ahead.registry.register(node("c"), 10)
    first = await next_message(resumed)
    assert isinstance(first, DeltaMessage)  # not a resync snapshot
    assert [e.node.id for e in first.events] == ["c"]
    resumed.close()


async def test_a_watch_resuming_from_before_the_history_gets_a_resync_snapshot(
    frontend_over: MakeFrontend, store: MemoryStore
):
    frontend = await frontend_over(history_revisions=2)
    await frontend.registry.register(node("a"), 10)
    resume_at = store.revision
    for node_id in ("b", "c", "d"):
        await frontend.registry.register(node(node_id), 10)
    await frontend.caught_up()
    resumed = await frontend.reads.watch(EVERYTHING, WatchResume(revision=resume_at))
    resync = await snapshot(resumed)
    assert resync.resync_reason is ResyncReason.COMPACTED
    assert ids(resync.nodes) == ["a", "b", "c", "d"]
    resumed.close()


async def test_a_watch_resuming_from_a_revision_etcd_never_had_gets_a_resync_snapshot(
    frontend_over: MakeFrontend, store: MemoryStore
):
    frontend = await frontend_over(sync_timeout_seconds=0.2)
    await frontend.registry.register(node("a"), 10)
    resumed = await frontend.reads.watch(EVERYTHING, WatchResume(revision=store.revision + 50))
    resync = await snapshot(resumed)
    assert resync.resync_reason is ResyncReason.UNKNOWN_REVISION and ids(resync.nodes) == ["a"]
    resumed.close()


async def test_after_etcd_compacted_what_the_watch_missed_watchers_get_the_net_difference(
    frontend: Frontend, store: MemoryStore
):
    """The frontend's watch was away while etcd compacted the revisions it missed: the hub
    re-reads everything and sends watchers the difference as one delta flagged relisted."""
    gone = await frontend.registry.register(node("a"), 10)
    await frontend.registry.register(node("b"), 10)
    await frontend.caught_up()
    watcher = await frontend.reads.watch(EVERYTHING, WatchResume())
    await snapshot(watcher)
    store.hold_watch()
    await frontend.registry.deregister(NodeKey("dc1", "data", "a"), gone.token)
    await frontend.registry.register(node("c"), 10)
    store.compact()
    store.release_watch()
    relisted = await delta(watcher)
    assert relisted.relisted and relisted.revision == store.revision
    assert sorted((e.type.value, e.node.id) for e in relisted.events) == [
        ("ADDED", "c"),
        ("REMOVED", "a"),
    ]
    after = await frontend.reads.get_nodes(EVERYTHING, Consistency.LINEARIZABLE)
    assert ids(after) == ["b", "c"]
    watcher.close()


# -- AckWatch ----------------------------------------------------------------------------------


async def test_an_acknowledgement_is_recorded_on_the_stream_it_names(frontend: Frontend):
    await frontend.registry.register(node("a"), 10)
    await frontend.caught_up()
    watcher = await frontend.reads.watch(EVERYTHING, WatchResume(), acknowledging=True)
    opened = await snapshot(watcher)
    frontend.reads.ack(watcher.id, opened.revision)
    assert watcher.acked_revision == opened.revision and watcher.converged(opened.revision)
    watcher.close()


async def test_an_acknowledgement_for_a_stream_this_frontend_does_not_serve_is_not_found(
    frontend: Frontend,
):
    with pytest.raises(SubscriptionNotFoundError, match="acknowledge on the frontend"):
        frontend.reads.ack("no-such-stream", 5)
