"""The eviction budget's decisions (pure logic): who is removed, who is held, who is released."""

from __future__ import annotations

from registry_service.core.self_preservation import (
    Action,
    BudgetPolicy,
    EvictionLedger,
    plan_evictions,
)
from registry_service.domain import Node, NodeKey, NodeStatus, Registration
from registry_service.store.base import Member

POLICY = BudgetPolicy(ratio=0.15, minimum=2, window_seconds=60, ceiling_seconds=900)


def expired(
    node_id: str,
    revision: int,
    dc: str = "dc1",
    suspect_since: float = 0.0,
    node_type: str = "data",
):
    status = NodeStatus.SUSPECT if suspect_since else NodeStatus.UP
    node = Node(node_id, node_type, dc, f"{node_id}:1", {}, 1, status)
    registration = Registration(node, 1, 10, "h", suspect_since=suspect_since)
    return NodeKey(dc, node_type, node_id), Member(registration, revision)


def actions(plan) -> dict[str, Action]:
    return {decision.key.id: decision.action for decision in plan.decisions}


def test_the_budget_is_a_share_of_the_datacenter_with_a_minimum():
    assert POLICY.budget(0) == 2
    assert POLICY.budget(10) == 2
    assert POLICY.budget(100) == 15
    assert POLICY.budget(1000) == 150


def test_within_the_budget_every_expired_member_goes():
    plan = plan_evictions(
        [expired("a", 5), expired("b", 6)], {("dc1", "data"): 10}, EvictionLedger(60), POLICY, 0
    )
    assert actions(plan) == {"a": Action.EVICT, "b": Action.EVICT}
    assert not plan.datacenters["dc1"].preserving


def test_beyond_the_budget_the_oldest_go_and_the_rest_turn_suspect():
    silent = [expired(f"n{i}", 100 - i) for i in range(30)]  # n29 registered first
    plan = plan_evictions(silent, {("dc1", "data"): 100}, EvictionLedger(60), POLICY, 0)
    evicted = sorted(k for k, a in actions(plan).items() if a is Action.EVICT)
    assert evicted == sorted(f"n{i}" for i in range(15, 30))
    assert sum(a is Action.SUSPECT for a in actions(plan).values()) == 15
    budget = plan.datacenters["dc1"]
    assert budget.preserving and budget.budget == 15 and budget.suspects == 15


def test_each_datacenter_has_its_own_budget():
    silent = [expired(f"a{i}", i, "dc1") for i in range(5)] + [expired("b", 1, "dc2")]
    plan = plan_evictions(
        silent, {("dc1", "data"): 10, ("dc2", "data"): 10}, EvictionLedger(60), POLICY, 0
    )
    assert actions(plan)["b"] is Action.EVICT
    assert plan.datacenters["dc1"].preserving and not plan.datacenters["dc2"].preserving


def test_spent_budget_counts_within_the_window_only():
    ledger = EvictionLedger(60)
    ledger.record("dc1", 0)
    ledger.record("dc1", 10)
    plan = plan_evictions([expired("a", 1)], {("dc1", "data"): 10}, ledger, POLICY, 30)
    assert actions(plan) == {"a": Action.SUSPECT}
    assert ledger.spent("dc1", 61) == 1
    plan = plan_evictions([expired("a", 1)], {("dc1", "data"): 10}, ledger, POLICY, 71)
    assert actions(plan) == {"a": Action.EVICT}


def test_suspects_are_released_only_when_every_silent_member_fits():
    ledger = EvictionLedger(60)
    held = [expired(f"s{i}", i, suspect_since=100) for i in range(3)]
    plan = plan_evictions(held, {("dc1", "data"): 12}, ledger, POLICY, 200)
    assert set(actions(plan).values()) == set()  # 3 silent > budget 2: all stay held
    assert plan.datacenters["dc1"].preserving
    plan = plan_evictions(held[:2], {("dc1", "data"): 12}, ledger, POLICY, 200)
    assert actions(plan) == {"s0": Action.RELEASE, "s1": Action.RELEASE}
    assert not plan.datacenters["dc1"].preserving


def test_new_expiries_take_the_budget_before_old_suspects():
    held = [expired("s", 1, suspect_since=100)]
    plan = plan_evictions(
        [*held, expired("a", 2), expired("b", 3)],
        {("dc1", "data"): 10},
        EvictionLedger(60),
        POLICY,
        200,
    )
    assert actions(plan) == {"a": Action.EVICT, "b": Action.EVICT}


def test_the_ceiling_removes_a_suspect_whatever_the_budget():
    ledger = EvictionLedger(60)
    for t in range(5):
        ledger.record("dc1", 1000 + t)
    held = [expired("old", 1, suspect_since=100), expired("young", 2, suspect_since=900)]
    plan = plan_evictions(held, {("dc1", "data"): 10}, ledger, POLICY, 1010)
    assert actions(plan) == {"old": Action.CEILING}
    assert not Action.CEILING.spends_budget and Action.CEILING.removes


def test_a_refunded_eviction_frees_its_budget():
    ledger = EvictionLedger(60)
    ledger.record("dc1", 5)
    ledger.record("dc1", 5)
    ledger.refund("dc1", 5)
    assert ledger.spent("dc1", 10) == 1


def test_a_small_type_is_its_own_pool_beside_a_large_one():
    # 3 meta nodes beside 100 data nodes: the datacenter's budget (15) would take all three meta
    # nodes at once; their type's (max(2, 15% of 3)) takes two, the third is held.
    sizes = {("dc1", "data"): 100, ("dc1", "meta"): 3}
    silent = [expired(f"m{i}", i, node_type="meta") for i in range(3)]
    plan = plan_evictions(silent, sizes, EvictionLedger(60), POLICY, 0)
    assert actions(plan) == {"m0": Action.EVICT, "m1": Action.EVICT, "m2": Action.SUSPECT}
    assert plan.types[("dc1", "meta")].budget == 2
    assert plan.types[("dc1", "meta")].preserving
    assert plan.datacenters["dc1"].budget == 15 and plan.datacenters["dc1"].suspects == 1


def test_the_smaller_allowance_wins_whichever_it_is():
    sizes = {("dc1", "data"): 40, ("dc1", "meta"): 40}  # dc budget 12, each type 6
    data = [expired(f"d{i}", i) for i in range(8)]
    meta = [expired(f"m{i}", 100 + i, node_type="meta") for i in range(8)]
    plan = plan_evictions(data + meta, sizes, EvictionLedger(60), POLICY, 0)
    evicted = [k for k, a in actions(plan).items() if a is Action.EVICT]
    # Oldest first: six data nodes (their type's allowance), then six meta nodes until the
    # datacenter's 12 are spent.
    assert sorted(evicted) == sorted([f"d{i}" for i in range(6)] + [f"m{i}" for i in range(6)])
    assert plan.types[("dc1", "data")].suspects == 2 and plan.types[("dc1", "meta")].suspects == 2


def test_a_type_that_spent_its_budget_holds_even_when_the_datacenter_has_room():
    ledger = EvictionLedger(60)
    ledger.record("dc1", 0)
    ledger.record(("dc1", "meta"), 0)
    ledger.record("dc1", 1)
    ledger.record(("dc1", "meta"), 1)
    sizes = {("dc1", "data"): 100, ("dc1", "meta"): 3}
    plan = plan_evictions([expired("m2", 5, node_type="meta")], sizes, ledger, POLICY, 10)
    assert actions(plan) == {"m2": Action.SUSPECT}
    assert plan.datacenters["dc1"].spent == 2 and plan.datacenters["dc1"].budget == 15


def test_suspects_of_a_type_are_released_only_when_their_type_fits_too():
    ledger = EvictionLedger(60)
    sizes = {("dc1", "data"): 100, ("dc1", "meta"): 1}
    held = [expired(f"m{i}", i, suspect_since=100, node_type="meta") for i in range(3)]
    plan = plan_evictions(held, sizes, ledger, POLICY, 200)
    assert actions(plan) == {}  # 3 silent meta > the type's 2, though the datacenter has 15
    plan = plan_evictions(held[:2], sizes, ledger, POLICY, 200)
    assert actions(plan) == {"m0": Action.RELEASE, "m1": Action.RELEASE}


def test_the_type_minimum_is_its_own_setting():
    policy = BudgetPolicy(ratio=0.15, minimum=2, type_minimum=1)
    assert policy.type_budget(3) == 1 and policy.budget(3) == 2
    sizes = {("dc1", "meta"): 3}
    silent = [expired(f"m{i}", i, node_type="meta") for i in range(2)]
    plan = plan_evictions(silent, sizes, EvictionLedger(60), policy, 0)
    assert actions(plan) == {"m0": Action.EVICT, "m1": Action.SUSPECT}


SMALL_CLUSTERS_FREE = BudgetPolicy(ratio=0.15, minimum=2, type_minimum=2, min_members=10)


def test_below_the_minimum_cluster_size_every_expired_member_goes_at_once():
    # A developer's five test nodes, all stopped: no budget holds them back.
    silent = [expired(f"n{i}", i) for i in range(5)]
    plan = plan_evictions(silent, {("dc1", "data"): 5}, EvictionLedger(60), SMALL_CLUSTERS_FREE, 0)
    assert set(actions(plan).values()) == {Action.EVICT}
    assert not plan.datacenters["dc1"].preserving
    assert plan.datacenters["dc1"].budget == 5 and plan.types[("dc1", "data")].budget == 5


def test_the_minimum_counts_the_members_evicted_within_the_window():
    # Nine members left, but three went within the window: twelve at the window's start, so the
    # budget (2, spent) holds the next one.
    ledger = EvictionLedger(60)
    for moment in (0, 1, 2):
        ledger.record("dc1", moment)
        ledger.record(("dc1", "data"), moment)
    plan = plan_evictions(
        [expired("late", 9)], {("dc1", "data"): 9}, ledger, SMALL_CLUSTERS_FREE, 10
    )
    assert actions(plan) == {"late": Action.SUSPECT}


def test_at_the_minimum_cluster_size_the_budget_holds_as_before():
    silent = [expired(f"n{i}", i) for i in range(5)]
    plan = plan_evictions(silent, {("dc1", "data"): 10}, EvictionLedger(60), SMALL_CLUSTERS_FREE, 0)
    assert sum(a is Action.EVICT for a in actions(plan).values()) == 2
    assert plan.datacenters["dc1"].preserving


def test_suspects_of_a_datacenter_that_shrank_below_the_minimum_are_released():
    held = [expired(f"s{i}", i, suspect_since=100) for i in range(3)]
    plan = plan_evictions(held, {("dc1", "data"): 6}, EvictionLedger(60), SMALL_CLUSTERS_FREE, 200)
    assert set(actions(plan).values()) == {Action.RELEASE}
