"""The JSON bodies the server writes (web/shapes.py, D63), pinned field by field where no
integration test reads them whole: what an operator's script parses must not drift."""

from __future__ import annotations

import collections
import dataclasses

import grpc

from registry_service.control import Announcement, HeldScope, PushSwitch
from registry_service.core.evictor import EvictorStatus
from registry_service.core.operations import NodeAction
from registry_service.core.self_preservation import (
    Action,
    BudgetPolicy,
    DatacenterBudget,
    Decision,
    EvictionPlan,
)
from registry_service.domain import (
    DatacenterNodes,
    Health,
    Identity,
    Node,
    NodeKey,
    NodeList,
    NodeStatus,
    Override,
    Registration,
)
from registry_service.store.base import Member, StoredNode
from registry_service.web.admin_config import Readiness
from registry_service.web.peers import ClusterAnswer, Unreachable
from registry_service.web.shapes import (
    convergence_json,
    error_json,
    evictor_json,
    frontends_json,
    host_subscribers_json,
    member_json,
    node_action_json,
    push_json,
    readiness_json,
    self_preservation_json,
    settled_json,
    stored_node_json,
    suspects_json,
)

KEY = NodeKey("dc1", "data", "n1")
NODE = Node("n1", "data", "dc1", "10.0.0.1:7000", {"zone": "a"}, 3, NodeStatus.UP)
NODE_JSON = {
    "datacenter": "dc1",
    "type": "data",
    "id": "n1",
    "address": "10.0.0.1:7000",
    "status": "UP",
    "health": "UNCHECKED",
    "damped": False,
    "incarnation": 3,
    "metadata": {"zone": "a"},
}


def registration(node: Node = NODE, **fields: object) -> Registration:
    return Registration(node, lease_id=7, ttl_seconds=10, token_hash="h", **fields)


def test_an_error_names_its_code_and_message():
    assert error_json(grpc.StatusCode.NOT_FOUND, "no such path /x") == {
        "error": {"code": "NOT_FOUND", "message": "no such path /x"}
    }


def test_readiness_says_degraded_when_ready_without_etcd():
    assert readiness_json(Readiness(True, "degraded: ...", False, 2.5)) == {
        "ready": True,
        "degraded": True,
        "reason": "degraded: ...",
        "store_connected": False,
        "cache_age_seconds": 2.5,
    }


def test_a_node_says_its_health_and_whether_damping_holds_it():
    failing = dataclasses.replace(NODE, health=Health.FAILING, damped=True)
    assert member_json(NodeList(9, ()), failing)["node"] == {
        **NODE_JSON,
        "health": "FAILING",
        "damped": True,
    }


def test_one_member_carries_the_revision_and_age_of_its_list():
    listing = NodeList(812, (DatacenterNodes("dc1", 812, (NODE,)),), age_seconds=0.12345)
    assert member_json(listing, NODE) == {
        "revision": 812,
        "stale": False,
        "age_seconds": 0.123,
        "node": NODE_JSON,
    }


def test_suspects_say_when_the_ceiling_removes_them():
    held = [registration(suspect_since=1000.0)]
    suspect = {**NODE_JSON, "suspect_since": 1000.0, "removed_at_the_latest": 1900.0}
    assert suspects_json(held, 900.0) == {"suspects": [suspect]}
    assert self_preservation_json(held, {"dc2": 4, "dc1": 10}, 900.0) == {
        "self_preservation": True,
        "datacenters": [
            {"datacenter": "dc1", "members": 10, "suspects": 1, "self_preservation": True},
            {"datacenter": "dc2", "members": 4, "suspects": 0, "self_preservation": False},
        ],
        "suspects": [suspect],
    }
    assert self_preservation_json([], {"dc1": 3}, 900.0)["self_preservation"] is False


def test_settling_suspects_answers_a_revision_or_an_error_per_node():
    assert settled_json(True, {"dc1/data/n1": 55, "dc1/data/n2": "not a suspect"}) == {
        "action": "confirm",
        "nodes": {"dc1/data/n1": {"revision": 55}, "dc1/data/n2": {"error": "not a suspect"}},
    }
    assert settled_json(False, {})["action"] == "cancel"


def test_a_stored_node_shows_its_override_and_its_hold():
    override = Override(NodeStatus.OUT_OF_SERVICE, NodeStatus.UP, "alice", 5.0)
    stored = StoredNode(
        KEY,
        90,
        registration(override=override),
        live=True,
        identity=Identity(3, hold_until=2000.0, held_by="bob"),
    )
    assert stored_node_json(KEY, stored) == {
        "node": "dc1/data/n1",
        "member": NODE_JSON,
        "live": True,
        "override": {"status": "OUT_OF_SERVICE", "owner_status": "UP", "by": "alice", "at": 5.0},
        "held_until": 2000.0,
        "held_by": "bob",
        "revision": 90,
    }
    gone = StoredNode(KEY, 91, identity=Identity(3, held_by="bob"))  # no hold: no holder either
    assert stored_node_json(KEY, gone) == {
        "node": "dc1/data/n1",
        "member": None,
        "live": False,
        "override": None,
        "held_until": None,
        "held_by": None,
        "revision": 91,
    }


def test_an_action_on_a_node_names_its_outcome_and_operator():
    done = NodeAction(KEY, 77, NodeStatus.DRAINING)
    assert node_action_json(KEY, "drain", done, "alice") == {
        "node": "dc1/data/n1",
        "action": "drain",
        "revision": 77,
        "status": "DRAINING",
        "operator": "alice",
    }
    assert node_action_json(KEY, "evict", NodeAction(KEY, 78), "alice")["status"] is None


def test_the_push_switch_says_what_it_holds_in_one_line():
    switch = PushSwitch(True, (HeldScope("dc1", "data"),), ("10.1.0.0/16",), "alice", 9.0)
    assert push_json(switch) == {
        "enabled": True,
        "gray": {"scopes": ["dc1/data"], "networks": ["10.1.0.0/16"]},
        "changed_by": "alice",
        "changed_at": 9.0,
        "summary": "on, holding dc1/data, 10.1.0.0/16",
    }
    assert push_json(PushSwitch(False))["changed_by"] is None


def test_frontends_are_sorted_and_this_one_is_marked():
    def announced(frontend: str) -> Announcement:
        return Announcement(frontend, "host", 1, 0, 2, "h:1", "http://h:2", "1.0", 3.0, 4)

    answer = frontends_json("fe-b", [announced("fe-b"), announced("fe-a")])
    assert [(f["id"], f["self"], f["worker"]) for f in answer["frontends"]] == [
        ("fe-a", False, "0/2"),
        ("fe-b", True, "0/2"),
    ]
    assert answer["frontend"] == "fe-b" and answer["frontends"][0]["subscribers"] == 4


def test_convergence_counts_what_is_owed_and_lists_who_did_not_answer():
    answer = ClusterAnswer(
        subscribers=[
            {"id": "s1", "converged": True},
            {"id": "s2", "converged": False, "pending_since": 95.0},
            {"id": "s3", "converged": False, "pending_since": None},
        ],
        answered={"fe-b", "fe-a"},
        unreachable=[Unreachable("fe-c", "http://c:9090", "no answer within 2s")],
    )
    assert convergence_json(812, "fe-a", answer, now=100.0) == {
        "revision": 812,
        "asked_by": "fe-a",
        "frontends": ["fe-a", "fe-b"],
        "unreachable": [
            {"frontend": "fe-c", "admin_url": "http://c:9090", "error": "no answer within 2s"}
        ],
        "subscribers": answer.subscribers,
        "not_converged": 2,
        "oldest_pending_seconds": 5.0,
    }


def test_the_evictor_shows_its_policy_budgets_and_at_most_a_thousand_decisions():
    budget = DatacenterBudget(members=10, budget=2, spent=1, silent=3, suspects=1)
    member = Member(registration(), 5)
    decisions = tuple(Decision(KEY, member, Action.SUSPECT) for _ in range(1001))
    status = EvictorStatus(
        candidate=True,
        leader=True,
        leader_since=50.0,
        plan=EvictionPlan(decisions, {"dc1": budget}, {("dc1", "data"): budget}),
        removed=collections.Counter({"EXPIRED": 2}),
        suspected=1,
    )
    answer = evictor_json("fe-a", status, BudgetPolicy(min_members=10))
    budget_json = {
        "members": 10,
        "budget": 2,
        "spent": 1,
        "silent": 3,
        "suspects": 1,
        "self_preservation": True,
    }
    assert {k: v for k, v in answer.items() if k != "last_plan"} == {
        "frontend": "fe-a",
        "candidate": True,
        "leader": True,
        "leader_since": 50.0,
        "last_sweep": None,
        "dry_run": False,
        "held_by_outage": False,
        "removed": {"EXPIRED": 2},
        "suspected": 1,
        "policy": {
            "ratio": 0.15,
            "minimum": 2,
            "type_minimum": 2,
            "min_members": 10,
            "window_seconds": 60.0,
            "ceiling_seconds": 900.0,
        },
        "datacenters": {"dc1": budget_json},
        "types": {"dc1/data": budget_json},
    }
    assert len(answer["last_plan"]) == 1000
    assert answer["last_plan"][0] == {"node": "dc1/data/n1", "action": "suspect"}


def test_a_host_merges_its_workers_subscribers_and_marks_a_silent_worker():
    worker_0 = {
        "frontend": "fe-0",
        "revision": 9,
        "push_enabled": True,
        "subscribers": [{"id": "s1"}],
    }
    assert host_subscribers_json([("0", worker_0), ("1", None)]) == {
        "frontends": ["fe-0"],
        "workers": {"0": {"frontend": "fe-0", "revision": 9, "push_enabled": True}, "1": None},
        "subscribers": [{"id": "s1", "worker": "0"}],
    }
