"""What the registry relies on of its store (store/base.py), as checks run against both stores:
the etcd store on real etcd (tests/integration/test_store_contract.py) and the in-memory one the
use cases' unit tests run on (tests/unit/registry_service/store/test_memory_store.py). A
behaviour of etcd the fake does not share fails here, not in a use case's test.

Each check takes a `Harness`: the stores under test, and the two things a test does to etcd
itself (end a lease as its TTL would, compact the history)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from registry_service.control import OperatorEntry, PushSwitch
from registry_service.domain import (
    AuditCause,
    FlapRecord,
    Health,
    Identity,
    Node,
    NodeKey,
    NodeStatus,
    Registration,
    RemovalReason,
)
from registry_service.errors import LeaseNotFoundError, StoreCompactedError
from registry_service.store.base import (
    ControlStore,
    EvictorWrite,
    IdentityPut,
    LiveChanged,
    Member,
    MemberDeleted,
    MemberPut,
    RegistryStore,
    StoreBatch,
    StoreChange,
    StoredNode,
)

TTL_SECONDS = 30


@dataclass
class Harness:
    store: RegistryStore
    control: ControlStore
    expire: Callable[[int], Awaitable[None]]  # the lease ends as when its TTL runs out
    compact: Callable[[int], Awaitable[None]]  # etcd forgets the history before a revision


Check = Callable[[Harness], Awaitable[None]]
CHECKS: list[Check] = []


def check(function: Check) -> Check:
    CHECKS.append(function)
    return function


def key(node_id: str) -> NodeKey:
    return NodeKey("dc1", "data", node_id)


def registration(node_id: str, lease_id: int, incarnation: int = 1) -> Registration:
    return Registration(
        Node(node_id, "data", "dc1", "10.0.0.7:7000", {"zone": "a"}, incarnation),
        lease_id,
        TTL_SECONDS,
        "token-hash",
    )


async def created(harness: Harness, node_id: str) -> tuple[Registration, int]:
    """A node registered on a lease of its own; its registration and the revision."""
    lease = await harness.store.grant_lease(TTL_SECONDS)
    written = registration(node_id, lease)
    revision = await harness.store.create_registration(written, StoredNode(key(node_id), 0))
    assert revision is not None
    return written, revision


@contextlib.asynccontextmanager
async def watching(harness: Harness, start_revision: int) -> AsyncIterator[WatchReader]:
    stream = harness.store.watch(start_revision)
    try:
        yield WatchReader(stream)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


class WatchReader:
    def __init__(self, stream: AsyncIterator[object]) -> None:
        self._stream = stream

    async def batch(self) -> StoreBatch:
        """The next batch, heartbeats skipped; fails after 10 s without one."""
        async with asyncio.timeout(10):
            while True:
                item = await anext(self._stream)
                if isinstance(item, StoreBatch):
                    return item


@check
async def a_registration_is_written_in_one_revision_and_read_back_whole(harness: Harness) -> None:
    store = harness.store
    written, revision = await created(harness, "a")
    stored = await store.read_node(key("a"))
    assert stored.registration == written and stored.live
    assert stored.member_mod_revision == stored.identity_mod_revision == revision
    assert stored.identity == Identity(incarnation=1)
    assert stored.revision >= revision
    again = await store.create_registration(written, StoredNode(key("a"), 0))
    assert again is None  # the member exists now: the guard fails, nothing is written


@check
async def a_put_on_a_lease_that_is_gone_fails_and_writes_nothing(harness: Harness) -> None:
    store = harness.store
    lease = await store.grant_lease(TTL_SECONDS)
    await harness.expire(lease)
    before = await store.current_revision()
    with pytest.raises(LeaseNotFoundError):
        await store.create_registration(registration("a", lease), StoredNode(key("a"), 0))
    assert (await store.read_node(key("a"))).registration is None
    assert await store.current_revision() == before


@check
async def a_lease_that_ends_takes_the_live_key_and_leaves_the_member(harness: Harness) -> None:
    store = harness.store
    written, _ = await created(harness, "a")
    other, _ = await created(harness, "b")
    await harness.expire(written.lease_id)
    stored = await store.read_node(key("a"))
    assert not stored.live and stored.registration == written
    assert await store.renew_lease(written.lease_id) == 0
    assert await store.renew_leases([written.lease_id, other.lease_id]) == [0, TTL_SECONDS]
    await store.revoke_lease(written.lease_id)  # gone already: not an error


@check
async def guarded_writes_apply_only_to_what_the_caller_read(harness: Harness) -> None:
    store = harness.store
    written, _ = await created(harness, "a")
    read = await store.read_node(key("a"))
    moved = Registration(
        Node("a", "data", "dc1", "10.0.0.8:7000", {}, 1), written.lease_id, TTL_SECONDS, "h"
    )
    updated = await store.update_registration(moved, read)
    assert updated is not None
    assert await store.update_registration(moved, read) is None  # read before the update
    fresh = await store.read_node(key("a"))
    assert fresh.registration == moved and fresh.member_mod_revision == updated
    assert await store.restore_registration(moved, fresh, AuditCause.RESTORED) is None  # live
    removal = await store.remove_member(
        fresh, RemovalReason.EXPIRED, cause=AuditCause.EXPIRED, only_if_not_live=True
    )
    assert removal is None  # still live

    await harness.expire(written.lease_id)
    lapsed = await store.read_node(key("a"))
    assert await store.update_registration(moved, lapsed) is None  # an update needs it live
    new_lease = await store.grant_lease(TTL_SECONDS)
    back = Registration(moved.node, new_lease, TTL_SECONDS, "h")
    assert await store.restore_registration(back, lapsed, AuditCause.RESTORED) is not None
    restored = await store.read_node(key("a"))
    assert restored.live and restored.registration == back

    removed = await store.remove_member(
        restored, RemovalReason.DEREGISTERED, cause=AuditCause.DEREGISTERED
    )
    gone = await store.read_node(key("a"))
    assert removed is not None and gone.registration is None and not gone.live
    assert gone.identity == Identity(incarnation=1, removal_reason=RemovalReason.DEREGISTERED)
    assert gone.identity_mod_revision == removed
    assert await store.renew_lease(new_lease) == TTL_SECONDS  # the lease outlives its key


@check
async def a_new_incarnation_is_created_only_over_the_identity_it_read(harness: Harness) -> None:
    store = harness.store
    await created(harness, "a")
    await store.remove_member(
        await store.read_node(key("a")), RemovalReason.DEREGISTERED, cause=AuditCause.DEREGISTERED
    )
    read = await store.read_node(key("a"))
    lease = await store.grant_lease(TTL_SECONDS)
    second = registration("a", lease, incarnation=2)
    assert await store.create_registration(second, StoredNode(key("a"), 0)) is None
    assert await store.create_registration(second, read) is not None
    assert (await store.read_node(key("a"))).identity == Identity(incarnation=2)


@check
async def a_health_write_rewrites_the_member_and_its_flap_record_over_what_it_read(
    harness: Harness,
) -> None:
    store = harness.store
    written, _ = await created(harness, "a")
    read = await store.read_node(key("a"))
    assert read.flaps is None and read.flaps_mod_revision == 0
    failing = dataclasses.replace(
        written, node=dataclasses.replace(written.node, health=Health.FAILING)
    )
    first = FlapRecord(1000.0, 1_700_000_000.5, Health.FAILING)
    revision = await store.write_health(
        failing, read, first, cause=AuditCause.HEALTH_FAILING, detail="NOT_SERVING"
    )
    assert revision is not None
    assert await store.write_health(failing, read, first) is None  # read before the write
    fresh = await store.read_node(key("a"))
    assert fresh.registration == failing and fresh.live and fresh.flaps == first
    assert fresh.member_mod_revision == fresh.flaps_mod_revision == revision
    # A flap that changes nothing subscribers see: the flap record alone, not audited.
    second = FlapRecord(1500.0, 1_700_000_001.5, Health.PASSING)
    alone = await store.write_health(None, fresh, second)
    assert alone is not None
    assert await store.write_health(None, fresh, second) is None  # its flap record moved on
    after = await store.read_node(key("a"))
    assert after.flaps == second and after.flaps_mod_revision == alone
    assert after.member_mod_revision == revision and after.registration == failing
    entries = await store.read_audit(key("a"))
    assert [(e.cause, e.revision, e.detail) for e in entries] == [
        (AuditCause.REGISTERED, entries[0].revision, ""),
        (AuditCause.HEALTH_FAILING, revision, "NOT_SERVING"),
    ]


@check
async def a_registration_and_an_update_write_the_flap_record_only_over_the_one_read(
    harness: Harness,
) -> None:
    store = harness.store
    await created(harness, "a")
    await store.remove_member(
        await store.read_node(key("a")), RemovalReason.DEREGISTERED, cause=AuditCause.DEREGISTERED
    )
    read = await store.read_node(key("a"))
    lease = await store.grant_lease(TTL_SECONDS)
    second = registration("a", lease, incarnation=2)
    damped = FlapRecord(2500.0, 1_700_000_002.5, Health.PASSING)
    stale = dataclasses.replace(read, flaps_mod_revision=read.identity_mod_revision)
    assert await store.create_registration(second, stale, damped) is None  # no such flap record
    revision = await store.create_registration(second, read, damped, "registered anew")
    assert revision is not None
    fresh = await store.read_node(key("a"))
    assert fresh.flaps == damped and fresh.flaps_mod_revision == revision
    assert (await store.read_audit(key("a")))[-1].detail == "registered anew"
    reported = FlapRecord(3500.0, 1_700_000_003.5, Health.FAILING)
    moved = dataclasses.replace(fresh, flaps_mod_revision=0)  # the member as read, not its flaps
    assert await store.update_registration(second, moved, flaps=reported) is None
    updated = await store.update_registration(second, fresh, flaps=reported)
    assert updated is not None
    assert (await store.read_node(key("a"))).flaps == reported


@check
async def a_sessions_registrations_are_written_only_on_the_lease_its_key_names(
    harness: Harness,
) -> None:
    """D73: one lease per (client session, TTL), named by the session's key, which lives on it."""
    store = harness.store

    def in_session(node_id: str, lease_id: int) -> Registration:
        return dataclasses.replace(registration(node_id, lease_id), session="s1")

    opening = await store.grant_lease(TTL_SECONDS)
    first = in_session("a", opening)
    assert await store.create_registration(first, StoredNode(key("a"), 0), opens_session=True)
    assert await store.read_session_lease("s1", TTL_SECONDS) == opening
    assert await store.read_session_lease("s1", TTL_SECONDS + 1) == 0  # one lease per TTL
    other = await store.grant_lease(TTL_SECONDS)
    # The session is open: opening it again, or writing on another lease, changes nothing.
    assert await store.open_session_lease("s1", TTL_SECONDS, other) == opening
    assert await store.create_registration(in_session("b", other), StoredNode(key("b"), 0)) is None
    assert (
        await store.create_registration(
            in_session("b", other), StoredNode(key("b"), 0), opens_session=True
        )
        is None
    )
    assert await store.create_registration(in_session("b", opening), StoredNode(key("b"), 0))

    await harness.expire(opening)  # the session's lease ends: its key goes with it
    assert await store.read_session_lease("s1", TTL_SECONDS) == 0
    lapsed = await store.read_node(key("a"))
    assert (
        await store.restore_registration(in_session("a", other), lapsed, AuditCause.RESTORED)
        is None
    )
    assert await store.open_session_lease("s1", TTL_SECONDS, other) == other
    assert await store.restore_registration(in_session("a", other), lapsed, AuditCause.RESTORED)
    assert (await store.read_node(key("a"))).registration == in_session("a", other)


@check
async def the_evictors_writes_need_its_fence_and_each_apply_on_its_own_guard(
    harness: Harness,
) -> None:
    store = harness.store
    election = store.election("contract", "candidate", TTL_SECONDS, 0.05)
    await election.campaign()
    for node_id in ("a", "b", "c"):
        written, _ = await created(harness, node_id)
        await harness.expire(written.lease_id)
    a, b, c = [await store.read_node(key(node_id)) for node_id in ("a", "b", "c")]
    assert c.registration is not None
    stale_b = StoredNode(b.key, b.revision, b.registration, b.member_mod_revision - 1)
    suspect = Registration(
        Node("c", "data", "dc1", "10.0.0.7:7000", {"zone": "a"}, 1, NodeStatus.SUSPECT),
        c.registration.lease_id,
        TTL_SECONDS,
        "token-hash",
        suspect_since=1.0,
    )
    writes = [
        EvictorWrite(a, AuditCause.EXPIRED),
        EvictorWrite(stale_b, AuditCause.EXPIRED),
        EvictorWrite(c, AuditCause.SUSPECTED, "budget", suspect),
    ]
    old_fence = election.fence
    await election.resign()
    assert await store.evict_many(writes, fence=old_fence) == [None, None, None]
    await election.campaign()
    revisions = await store.evict_many(writes, fence=election.fence)
    assert revisions[1] is None and revisions[0] is not None and revisions[0] == revisions[2]
    assert (await store.read_node(key("a"))).identity == Identity(1, RemovalReason.EXPIRED)
    assert (await store.read_node(key("b"))).registration == b.registration
    assert (await store.read_node(key("c"))).registration == suspect
    await election.resign()


@check
async def the_watch_gives_each_revision_as_one_batch_in_order(harness: Harness) -> None:
    store = harness.store
    start = await store.current_revision() + 1
    written, create_revision = await created(harness, "a")
    await harness.expire(written.lease_id)
    expire_revision = await store.current_revision()
    removed = await store.remove_member(
        await store.read_node(key("a")),
        RemovalReason.EXPIRED,
        cause=AuditCause.EXPIRED,
        only_if_not_live=True,
    )
    barrier = await store.write_barrier()
    async with watching(harness, start) as watch:
        batches = [await watch.batch() for _ in range(4)]
    assert [batch.revision for batch in batches] == [
        create_revision,
        expire_revision,
        removed,
        barrier,
    ]
    a = key("a")
    created_changes = (
        LiveChanged(a, True),
        MemberPut(a, Member(written, create_revision)),
        IdentityPut(a, Identity(1)),
    )
    expected: list[tuple[StoreChange, ...]] = [
        created_changes,  # in the order of the transaction's writes
        (LiveChanged(a, False),),  # the lease's keys go in a revision of their own
        (MemberDeleted(a), IdentityPut(a, Identity(1, RemovalReason.EXPIRED))),  # no live key
        (),  # a barrier changes nothing a watcher sees, but moves the revision
    ]
    assert [batch.changes for batch in batches] == expected


@check
async def a_watch_from_a_compacted_revision_raises_compacted(harness: Harness) -> None:
    store = harness.store
    start = await store.current_revision() + 1
    await created(harness, "a")
    await created(harness, "b")
    await harness.compact(await store.current_revision())
    with pytest.raises(StoreCompactedError):
        async with watching(harness, start) as watch:
            await watch.batch()
    async with watching(harness, await store.current_revision()) as watch:
        assert (await watch.batch()).revision == await store.current_revision()


@check
async def load_reads_every_member_and_live_key_at_one_revision(harness: Harness) -> None:
    store = harness.store
    a, _ = await created(harness, "a")
    b, _ = await created(harness, "b")
    await harness.expire(b.lease_id)
    state = await store.load()
    assert state.revision == await store.current_revision()
    assert {k: m.registration for k, m in state.members.items()} == {key("a"): a, key("b"): b}
    assert state.live == {key("a")}


@check
async def the_audit_lists_each_transition_with_its_cause_oldest_first(harness: Harness) -> None:
    store = harness.store
    written, registered = await created(harness, "a")
    updated = await store.update_registration(written, await store.read_node(key("a")))
    removed = await store.remove_member(
        await store.read_node(key("a")),
        RemovalReason.DEREGISTERED,
        cause=AuditCause.DEREGISTERED,
    )
    entries = await store.read_audit(key("a"))
    assert [(e.cause, e.revision, e.incarnation) for e in entries] == [
        (AuditCause.REGISTERED, registered, 1),
        (AuditCause.UPDATED, updated, 1),
        (AuditCause.DEREGISTERED, removed, 1),
    ]


@check
async def the_first_candidate_leads_and_the_next_once_it_resigns(harness: Harness) -> None:
    first = harness.store.election("contract", "first", TTL_SECONDS, 0.05)
    second = harness.store.election("contract", "second", TTL_SECONDS, 0.05)
    await first.campaign()
    await second.stand()
    assert first.fence and second.fence and first.fence != second.fence
    campaigning = asyncio.create_task(second.campaign())
    await first.resign()
    await asyncio.wait_for(campaigning, 10)
    await second.resign()


@check
async def the_push_switch_is_written_only_over_the_one_read(harness: Harness) -> None:
    control = harness.control
    assert await control.read_push_switch() == (PushSwitch(), 0)
    off = PushSwitch(enabled=False, changed_by="ops")
    entry = OperatorEntry("push.off", "ops", 1.0, "contract")
    revision = await control.write_push_switch(off, 0, entry)
    assert revision is not None
    assert await control.write_push_switch(PushSwitch(), 0, entry) is None
    assert await control.read_push_switch() == (off, revision)
    audited = await control.read_operator_audit()
    assert [(e.action, e.operator, e.revision) for e in audited] == [("push.off", "ops", revision)]
