"""The evictor over the in-memory store (core/evictor.py with core/self_preservation.py's
budget): a live key gone becomes a member removed, within the budget, fenced by leadership."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from registry_service.core.evictor import Evictor, EvictorConfig
from registry_service.core.self_preservation import BudgetPolicy
from registry_service.domain import (
    AuditCause,
    DeltaMessage,
    EventType,
    NodeKey,
    NodeStatus,
    RemovalReason,
    Scope,
    WatchResume,
)
from tests.support.memory_store import MemoryElection, MemoryStore
from tests.support.use_cases import Frontend, next_message, node, running
from tests.support.waiting import eventually

MakeEvictor = Callable[..., Evictor]


def key(node_id: str) -> NodeKey:
    return NodeKey("dc1", "data", node_id)


@pytest.fixture
async def evictor_of(store: MemoryStore) -> AsyncIterator[MakeEvictor]:
    """Evictors on the store's clock (budget windows and the ceiling in its time)."""
    made: list[Evictor] = []

    def make(frontend: Frontend, candidate: str = "fe1", **policy: float) -> Evictor:
        made.append(
            Evictor(
                store,
                frontend.hub,
                EvictorConfig(poll_seconds=0.05, policy=BudgetPolicy(**policy)),  # type: ignore[arg-type]
                candidate=candidate,
                clock=store.clock,
            )
        )
        return made[-1]

    yield make
    for evictor in made:
        await evictor.close()


async def leading(evictor: Evictor, store: MemoryStore) -> MemoryElection:
    """Makes the evictor's candidacy lead (without its run loop) and returns it."""
    election = store.elections[-1]
    await election.campaign()
    return election


async def members(store: MemoryStore) -> dict[str, NodeStatus]:
    state = await store.load()
    return {k.id: m.registration.node.status for k, m in state.members.items()}


async def test_the_leading_evictor_removes_a_member_whose_lease_ran_out_as_expired(
    frontend: Frontend, store: MemoryStore, evictor_of: MakeEvictor
):
    await frontend.registry.register(node("a"), 10)
    await frontend.registry.register(node("b"), 60)
    await frontend.caught_up()
    watcher = await frontend.reads.watch(Scope(), WatchResume())
    await next_message(watcher)
    evictor = evictor_of(frontend)
    async with running(evictor.run()):
        await eventually(lambda: evictor.status.leader, message="the evictor leads")
        store.advance(11)
        removal = await next_message(watcher)
    assert isinstance(removal, DeltaMessage)
    assert [(e.type, e.node.id, e.reason) for e in removal.events] == [
        (EventType.REMOVED, "a", RemovalReason.EXPIRED)
    ]
    assert await members(store) == {"b": NodeStatus.UP}
    assert (await store.read_audit(key("a")))[-1].cause is AuditCause.EXPIRED
    assert evictor.status.removed[AuditCause.EXPIRED.value] == 1
    watcher.close()


async def test_a_deposed_evictor_writes_nothing_and_a_new_leader_does(
    frontend: Frontend, store: MemoryStore, evictor_of: MakeEvictor
):
    """Every removal carries the leader's fence: once its election lease is lost, a sweep that
    still acts on the old leadership changes nothing."""
    await frontend.registry.register(node("a"), 10)
    evictor = evictor_of(frontend)
    election = await leading(evictor, store)
    store.advance(11)
    await frontend.caught_up()
    election.depose()
    assert await evictor.sweep() == 0
    assert await members(store) == {"a": NodeStatus.UP}
    await election.campaign()  # a candidacy of its own again, with a new fence
    assert await evictor.sweep() == 1
    assert await members(store) == {}


async def test_of_two_candidates_only_the_first_leads_until_it_resigns(
    frontend: Frontend, store: MemoryStore, evictor_of: MakeEvictor
):
    first, second = evictor_of(frontend, "fe1"), evictor_of(frontend, "fe2")
    async with running(first.run()), running(second.run()):
        await eventually(lambda: first.status.leader and second.status.candidate)
        assert not second.status.leader
        await first.close()
        await eventually(lambda: second.status.leader, message="the second takes over")


async def test_beyond_the_budget_expired_members_are_held_as_suspects_not_removed(
    frontend: Frontend, store: MemoryStore, evictor_of: MakeEvictor
):
    """Five of ten stop renewing at once: the budget (15%, at least 2) removes two, the other
    three are held SUSPECT; watchers still see them."""
    for i in range(5):
        await frontend.registry.register(node(f"dying{i}"), 10)
        await frontend.registry.register(node(f"healthy{i}"), 3600)
    evictor = evictor_of(frontend, ratio=0.15, minimum=2, type_minimum=2)
    async with running(evictor.run()):
        await eventually(lambda: evictor.status.leader, message="the evictor leads")
        store.advance(11)
        await eventually(lambda: evictor.status.suspected == 3, message="three suspects")
    statuses = await members(store)
    assert list(statuses.values()).count(NodeStatus.SUSPECT) == 3 and len(statuses) == 8
    assert evictor.status.removed[AuditCause.EXPIRED.value] == 2
    assert evictor.status.plan.datacenters["dc1"].preserving


async def test_a_suspect_that_renews_is_up_again_and_the_others_go_at_the_ceiling(
    frontend: Frontend, store: MemoryStore, evictor_of: MakeEvictor
):
    tokens = {}
    for i in range(5):
        tokens[i] = (await frontend.registry.register(node(f"dying{i}"), 10)).token
        await frontend.registry.register(node(f"healthy{i}"), 3600)
    evictor = evictor_of(frontend, ratio=0, minimum=0, type_minimum=0, ceiling_seconds=30)
    await leading(evictor, store)
    store.advance(11)
    await frontend.caught_up()
    await evictor.sweep()
    assert list((await members(store)).values()).count(NodeStatus.SUSPECT) == 5

    assert await frontend.registry.keep_alive(key("dying0"), tokens[0]) == 10
    restored = await store.read_node(key("dying0"))
    assert restored.live and restored.registration is not None
    assert restored.registration.node.status is NodeStatus.UP

    store.advance(31)  # the others stay silent past the ceiling
    await frontend.caught_up()
    assert await evictor.sweep() == 4
    assert sorted(await members(store)) == ["dying0", *(f"healthy{i}" for i in range(5))]
    assert (await store.read_audit(key("dying1")))[-1].cause is AuditCause.CEILING
