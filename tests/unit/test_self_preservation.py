"""The eviction budget's decisions (pure logic): who is removed, who is held, who is released."""

from __future__ import annotations

from registry_service.domain import Node, NodeKey, NodeStatus, Registration
from registry_service.self_preservation import (
    Action,
    BudgetPolicy,
    EvictionLedger,
    plan_evictions,
)
from registry_service.store.base import Member

POLICY = BudgetPolicy(ratio=0.15, minimum=2, window_seconds=60, ceiling_seconds=900)


def expired(node_id: str, revision: int, dc: str = "dc1", suspect_since: float = 0.0):
    status = NodeStatus.SUSPECT if suspect_since else NodeStatus.UP
    node = Node(node_id, "data", dc, f"{node_id}:1", {}, 1, status)
    registration = Registration(node, 1, 10, "h", suspect_since=suspect_since)
    return NodeKey(dc, "data", node_id), Member(registration, revision)


def actions(plan) -> dict[str, Action]:
    return {decision.key.id: decision.action for decision in plan.decisions}


def test_the_budget_is_a_share_of_the_datacenter_with_a_minimum():
    assert POLICY.budget(0) == 2
    assert POLICY.budget(10) == 2
    assert POLICY.budget(100) == 15
    assert POLICY.budget(1000) == 150


def test_within_the_budget_every_expired_member_goes():
    plan = plan_evictions(
        [expired("a", 5), expired("b", 6)], {"dc1": 10}, EvictionLedger(60), POLICY, 0
    )
    assert actions(plan) == {"a": Action.EVICT, "b": Action.EVICT}
    assert not plan.datacenters["dc1"].preserving


def test_beyond_the_budget_the_oldest_go_and_the_rest_turn_suspect():
    silent = [expired(f"n{i}", 100 - i) for i in range(30)]  # n29 registered first
    plan = plan_evictions(silent, {"dc1": 100}, EvictionLedger(60), POLICY, 0)
    evicted = sorted(k for k, a in actions(plan).items() if a is Action.EVICT)
    assert evicted == sorted(f"n{i}" for i in range(15, 30))
    assert sum(a is Action.SUSPECT for a in actions(plan).values()) == 15
    budget = plan.datacenters["dc1"]
    assert budget.preserving and budget.budget == 15 and budget.suspects == 15


def test_each_datacenter_has_its_own_budget():
    silent = [expired(f"a{i}", i, "dc1") for i in range(5)] + [expired("b", 1, "dc2")]
    plan = plan_evictions(silent, {"dc1": 10, "dc2": 10}, EvictionLedger(60), POLICY, 0)
    assert actions(plan)["b"] is Action.EVICT
    assert plan.datacenters["dc1"].preserving and not plan.datacenters["dc2"].preserving


def test_spent_budget_counts_within_the_window_only():
    ledger = EvictionLedger(60)
    ledger.record("dc1", 0)
    ledger.record("dc1", 10)
    plan = plan_evictions([expired("a", 1)], {"dc1": 10}, ledger, POLICY, 30)
    assert actions(plan) == {"a": Action.SUSPECT}
    assert ledger.spent("dc1", 61) == 1
    plan = plan_evictions([expired("a", 1)], {"dc1": 10}, ledger, POLICY, 71)
    assert actions(plan) == {"a": Action.EVICT}


def test_suspects_are_released_only_when_every_silent_member_fits():
    ledger = EvictionLedger(60)
    held = [expired(f"s{i}", i, suspect_since=100) for i in range(3)]
    plan = plan_evictions(held, {"dc1": 12}, ledger, POLICY, 200)
    assert set(actions(plan).values()) == set()  # 3 silent > budget 2: all stay held
    assert plan.datacenters["dc1"].preserving
    plan = plan_evictions(held[:2], {"dc1": 12}, ledger, POLICY, 200)
    assert actions(plan) == {"s0": Action.RELEASE, "s1": Action.RELEASE}
    assert not plan.datacenters["dc1"].preserving


def test_new_expiries_take_the_budget_before_old_suspects():
    held = [expired("s", 1, suspect_since=100)]
    plan = plan_evictions(
        [*held, expired("a", 2), expired("b", 3)], {"dc1": 10}, EvictionLedger(60), POLICY, 200
    )
    assert actions(plan) == {"a": Action.EVICT, "b": Action.EVICT}


def test_the_ceiling_removes_a_suspect_whatever_the_budget():
    ledger = EvictionLedger(60)
    for t in range(5):
        ledger.record("dc1", 1000 + t)
    held = [expired("old", 1, suspect_since=100), expired("young", 2, suspect_since=900)]
    plan = plan_evictions(held, {"dc1": 10}, ledger, POLICY, 1010)
    assert actions(plan) == {"old": Action.CEILING}
    assert not Action.CEILING.spends_budget and Action.CEILING.removes


def test_a_refunded_eviction_frees_its_budget():
    ledger = EvictionLedger(60)
    ledger.record("dc1", 5)
    ledger.record("dc1", 5)
    ledger.refund("dc1", 5)
    assert ledger.spent("dc1", 10) == 1
