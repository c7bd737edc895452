"""KeepAlive (core/renewals.py, through the registry that serves it) over the in-memory store:
batches, coalescing, lost leases and the restore of a lapsed one."""

from __future__ import annotations

import dataclasses

import pytest

from registry_service.domain import (
    AuditCause,
    Consistency,
    DeltaMessage,
    EventType,
    NodeKey,
    NodeStatus,
    RemovalReason,
    Scope,
    SnapshotMessage,
    WatchResume,
)
from registry_service.errors import (
    InvalidArgumentError,
    NodeNotFoundError,
    StoreUnavailableError,
)
from registry_service.store.base import StoredNode
from tests.support.memory_store import MemoryStore
from tests.support.use_cases import Frontend, MakeFrontend, next_message, node


def key(node_id: str) -> NodeKey:
    return NodeKey("dc1", "data", node_id)


async def lease_of(store: MemoryStore, node_id: str) -> int:
    registration = (await store.read_node(key(node_id))).registration
    assert registration is not None
    return registration.lease_id


async def test_a_renewal_extends_the_lease_by_its_ttl(frontend: Frontend, store: MemoryStore):
    owner = await frontend.registry.register(node("a"), 10)
    store.advance(8)
    assert await frontend.registry.keep_alive(key("a"), owner.token) == 10
    store.advance(8)  # 16 s after registering: alive only because it was renewed at 8 s
    assert store.lease_alive(await lease_of(store, "a"))


async def test_a_batch_renews_every_lease_in_one_store_call_and_answers_each_renewal(
    frontend_over: MakeFrontend, store: MemoryStore
):
    frontend = await frontend_over(coalesce_seconds=0)
    tokens = {i: (await frontend.registry.register(node(i), 10)).token for i in ("a", "b", "c")}
    await frontend.caught_up()
    answers = await frontend.registry.keep_alive_many(
        [
            (key("a"), tokens["a"]),
            (key("b"), "not-b's-token"),
            (key("c"), tokens["c"]),
            (key("missing"), tokens["a"]),
            (NodeKey("dc1", "data", "Bad Id"), tokens["a"]),
        ]
    )
    assert answers[0] == 10 and answers[2] == 10
    assert isinstance(answers[1], NodeNotFoundError)
    assert isinstance(answers[3], NodeNotFoundError)
    assert isinstance(answers[4], InvalidArgumentError)
    assert store.renewed == [[await lease_of(store, "a"), await lease_of(store, "c")]]


async def test_renewals_faster_than_needed_are_answered_without_renewing_the_lease_again(
    frontend_over: MakeFrontend, store: MemoryStore
):
    frontend = await frontend_over(coalesce_seconds=60)
    owner = await frontend.registry.register(node("a"), 10)
    await frontend.caught_up()
    answers = [await frontend.registry.keep_alive(key("a"), owner.token) for _ in range(5)]
    assert answers == [10] * 5
    assert store.renewed == [[await lease_of(store, "a")]]  # etcd renewed it once


async def test_two_renewals_of_one_lease_in_one_batch_renew_it_once(
    frontend_over: MakeFrontend, store: MemoryStore
):
    frontend = await frontend_over(coalesce_seconds=0)
    owner = await frontend.registry.register(node("a"), 10)
    await frontend.caught_up()
    renewal = (key("a"), owner.token)
    assert await frontend.registry.keep_alive_many([renewal, renewal]) == [10, 10]
    assert store.renewed == [[await lease_of(store, "a")]]


async def test_without_coalescing_every_renewal_reaches_the_store(
    frontend_over: MakeFrontend, store: MemoryStore
):
    frontend = await frontend_over(coalesce_seconds=0)
    owner = await frontend.registry.register(node("a"), 10)
    for _ in range(3):
        await frontend.registry.keep_alive(key("a"), owner.token)
    assert len(store.renewed) == 3


async def test_a_renewal_the_view_has_not_seen_yet_is_checked_against_the_store(
    frontend: Frontend, store: MemoryStore
):
    store.hold_watch()  # this frontend's view stays behind etcd
    owner = await frontend.registry.register(node("a"), 10)
    cached = await frontend.reads.get_nodes(Scope(), Consistency.CACHED)
    assert cached.datacenters == ()  # the view has not seen the registration
    assert await frontend.registry.keep_alive(key("a"), owner.token) == 10
    with pytest.raises(NodeNotFoundError):
        await frontend.registry.keep_alive(key("a"), "someone else's")
    store.release_watch()


async def test_a_renewal_after_the_member_was_removed_is_not_found_and_says_register_again(
    frontend: Frontend, store: MemoryStore
):
    owner = await frontend.registry.register(node("a"), 10)
    store.advance(11)  # expired, and removed (as the evictor would) before the owner renews
    await remove_as_evictor(store, key("a"))
    await frontend.caught_up()
    with pytest.raises(NodeNotFoundError, match="register again"):
        await frontend.registry.keep_alive(key("a"), owner.token)
    assert (await store.read_node(key("a"))).registration is None  # nothing brought back


async def remove_as_evictor(store: MemoryStore, node_key: NodeKey) -> None:
    expected = await store.read_node(node_key)
    assert await store.remove_member(
        expected, RemovalReason.EXPIRED, cause=AuditCause.EXPIRED, only_if_not_live=True
    )


async def test_a_lapsed_lease_is_restored_while_the_member_is_still_there(
    frontend_over: MakeFrontend, store: MemoryStore
):
    """The node renewed too late (the evictor had not removed it yet): it is back on a new lease
    with the same incarnation and token, and watchers never saw it leave."""
    frontend = await frontend_over(coalesce_seconds=0)
    owner = await frontend.registry.register(node("a"), 10)
    await frontend.caught_up()
    watcher = await frontend.reads.watch(Scope(), WatchResume())
    snapshot = await next_message(watcher)
    assert isinstance(snapshot, SnapshotMessage) and snapshot.nodes.datacenters[0].nodes
    lapsed = await lease_of(store, "a")
    store.advance(11)
    assert await frontend.registry.keep_alive(key("a"), owner.token) == 10
    stored = await store.read_node(key("a"))
    assert stored.live and stored.registration is not None
    assert stored.registration.lease_id != lapsed
    assert stored.registration.node.incarnation == 1
    assert (await store.read_audit(key("a")))[-1].cause is AuditCause.RESTORED
    await frontend.caught_up()
    restored = await next_message(watcher)  # the expiry made no event; the restore one
    assert isinstance(restored, DeltaMessage)
    assert [event.type for event in restored.events] == [EventType.UPDATED]
    assert await frontend.registry.keep_alive(key("a"), owner.token) == 10  # on the new lease
    watcher.close()


async def test_a_suspect_that_renews_is_up_again(frontend: Frontend, store: MemoryStore):
    owner = await frontend.registry.register(node("a"), 10)
    store.advance(11)
    stored = await store.read_node(key("a"))
    assert stored.registration is not None
    await mark_suspect(store, stored)
    suspect = (await store.read_node(key("a"))).registration
    assert suspect is not None and suspect.node.status is NodeStatus.SUSPECT
    assert await frontend.registry.keep_alive(key("a"), owner.token) == 10
    restored = await store.read_node(key("a"))
    assert restored.registration is not None and restored.live
    assert restored.registration.node.status is NodeStatus.UP
    assert restored.registration.suspect_since == 0.0
    assert restored.registration.node.incarnation == suspect.node.incarnation


async def mark_suspect(store: MemoryStore, stored: StoredNode) -> None:
    """Marks the expired member SUSPECT as a leading evictor does (the budget held it)."""
    election = store.election("evictor", "leader", 5, 0.1)
    await election.campaign()
    registration = stored.registration
    assert registration is not None
    suspect = dataclasses.replace(
        registration,
        node=dataclasses.replace(registration.node, status=NodeStatus.SUSPECT),
        suspect_since=store.clock(),
    )
    assert await store.mark_suspect(suspect, stored, fence=election.fence, detail="budget")
    await election.resign()


async def test_renewals_in_a_store_outage_fail_at_once_as_unavailable(
    frontend: Frontend, store: MemoryStore
):
    owner = await frontend.registry.register(node("a"), 10)
    store.available = False
    with pytest.raises(StoreUnavailableError, match="another frontend"):
        await frontend.registry.keep_alive(key("a"), owner.token)
    assert store.renewed == []


async def test_a_renewal_etcd_did_not_answer_is_unavailable_not_lost(
    frontend_over: MakeFrontend, store: MemoryStore
):
    """Unknown is not gone: the client retries the renewal; it must not re-register."""
    frontend = await frontend_over(coalesce_seconds=0)
    owner = await frontend.registry.register(node("a"), 10)
    await frontend.caught_up()
    store.renewals_answered = False
    (answer,) = await frontend.registry.keep_alive_many([(key("a"), owner.token)])
    assert isinstance(answer, StoreUnavailableError)
    store.renewals_answered = True
    assert await frontend.registry.keep_alive(key("a"), owner.token) == 10
