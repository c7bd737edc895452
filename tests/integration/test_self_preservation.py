"""Self-preservation (docs/design.md §6) through the API: the eviction budget, SUSPECT, renewals
that restore, the ceiling, budget release, operator decisions, dry-run, and the audit trail."""

from __future__ import annotations

import pytest
from noderegistry.v1 import registry_pb2 as pb

from tests.support.api import KeepAliveStream, WatchRecorder, key_of, node, register
from tests.support.http import get, metric, post
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

BUDGET = {
    "eviction_budget_ratio": 0.15,
    "eviction_budget_minimum": 2,
    "eviction_window_seconds": 600.0,
    "evictor_reconcile_seconds": 0.3,
    "self_preservation_min_members": 0,  # a few nodes stand for a fleet
}


def admin_url(frontend) -> str:
    return f"http://127.0.0.1:{frontend.admin.port}"


def removed(recorder: WatchRecorder) -> dict[str, int]:
    return {c.id: c.reason for c in recorder.changes if c.type == pb.EVENT_TYPE_REMOVED}


def with_status(recorder: WatchRecorder, status: int) -> set[str]:
    return {node_id for node_id, n in recorder.nodes.items() if n.status == status}


async def causes(
    admin: str, node_id: str, datacenter: str = "dc1", node_type: str = "data"
) -> list[str]:
    status, body = await get(
        f"{admin}/admin/audit?datacenter={datacenter}&type={node_type}&id={node_id}"
    )
    assert status == 200, body
    return [entry["cause"] for entry in body["entries"]]


async def sweeps_pass(frontend, count: int = 3) -> None:
    """Waits until the evictor swept `count` more times (a decision it would make, it made)."""
    seen: list[float] = [frontend.evictor.status.last_sweep]

    def advanced() -> bool:
        if frontend.evictor.status.last_sweep != seen[-1]:
            seen.append(frontend.evictor.status.last_sweep)
        return len(seen) > count

    await eventually(advanced, timeout=15, message="evictor sweeps")


async def test_mass_expiry_is_held_by_the_budget_and_renewals_restore_it(start_frontend, connect):
    frontend = await start_frontend(**BUDGET)
    stub, admin = connect(frontend), admin_url(frontend)
    recorder = WatchRecorder(stub).start()
    silent = {}
    for i in range(6):
        silent[f"s{i}"] = await register(stub, node(f"s{i}"), ttl=3, idempotency_key=f"key-s{i}")
    for i in range(4):
        await register(stub, node(f"steady{i}"), ttl=600)
    await register(stub, node("other", datacenter="dc2"), ttl=3)  # dc2 has its own budget

    # 10 members in dc1, 6 go silent: the budget (max(2, 15% of 10)) removes 2, holds 4.
    await recorder.wait_for(
        lambda r: len(with_status(r, pb.NODE_STATUS_SUSPECT)) == 4 and "other" not in r.nodes,
        timeout=20,
        message="4 suspects in dc1, dc2's node removed",
    )
    await sweeps_pass(frontend)
    gone = removed(recorder)
    assert len(gone) == 3 and "other" in gone
    assert set(gone.values()) == {pb.REMOVAL_REASON_EXPIRED}
    suspects = with_status(recorder, pb.NODE_STATUS_SUSPECT)
    assert len(suspects) == 4 and suspects.isdisjoint(gone)
    # Leases expire in the order etcd's expiry loop finds them; name the nodes by their fate.
    s2, s3, s4, s5 = sorted(suspects)
    (s0,) = sorted(set(gone) - {"other"})[:1]
    assert await metric(admin, "noderegistry_self_preservation", datacenter="dc1") == 1
    assert await metric(admin, "noderegistry_self_preservation", datacenter="dc2") == 0
    assert await metric(admin, "noderegistry_suspects_marked_total") == 4
    status, listing = await get(f"{admin}/admin/suspects")
    assert status == 200
    assert {s["id"] for s in listing["suspects"]} == suspects

    # A suspect that renews is UP again, same incarnation and token, without re-registering.
    keepalive = KeepAliveStream(stub)
    answer = await keepalive.renew(key_of(node(s2)), silent[s2].token)
    assert answer.code == 0 and answer.ttl_seconds == 3
    wrong = await keepalive.renew(key_of(node(s3)), silent[s2].token)
    assert wrong.code == 5  # NOT_FOUND: a suspect is restored only by its owner
    # One that re-registers (the same registration retried) is UP again too, same token.
    again = await register(stub, node(s3), ttl=3, idempotency_key=f"key-{s3}")
    assert again.token == silent[s3].token and again.node.incarnation == 1
    await recorder.wait_for(
        lambda r: {s2, s3} <= with_status(r, pb.NODE_STATUS_UP),
        message="s2 and s3 back UP",
    )
    assert recorder.nodes[s2].incarnation == 1

    # The operator settles the other two: s4 is removed now, s5 gets one more TTL.
    status, body = await post(
        f"{admin}/admin/suspects/confirm",
        {"nodes": [{"datacenter": "dc1", "type": "data", "id": s4}]},
    )
    assert status == 200 and "revision" in body["nodes"][f"dc1/data/{s4}"], body
    status, body = await post(
        f"{admin}/admin/suspects/cancel",
        {"nodes": [{"datacenter": "dc1", "type": "data", "id": s5}]},
    )
    assert status == 200 and "revision" in body["nodes"][f"dc1/data/{s5}"], body
    status, body = await post(
        f"{admin}/admin/suspects/confirm",
        {"nodes": [{"datacenter": "dc1", "type": "data", "id": "steady0"}]},
    )
    assert "not a SUSPECT" in body["nodes"]["dc1/data/steady0"]["error"]
    await recorder.wait_for(lambda r: s4 not in r.nodes, message="s4 removed by the operator")
    assert removed(recorder)[s4] == pb.REMOVAL_REASON_EVICTED
    await keepalive.renew(key_of(node(s2)), silent[s2].token)

    # Every transition is on record with its cause.
    assert await causes(admin, s0) == ["REGISTERED", "EXPIRED"]
    assert await causes(admin, s2) == ["REGISTERED", "SUSPECTED", "RESTORED"]
    assert await causes(admin, s4) == ["REGISTERED", "SUSPECTED", "OPERATOR_EVICTED"]
    assert (await causes(admin, s5))[:3] == ["REGISTERED", "SUSPECTED", "OPERATOR_RESTORED"]
    status, body = await get(f"{admin}/admin/audit?datacenter=dc1&type=data&id={s4}")
    evicted = body["entries"][-1]
    assert evicted["revision"] > body["entries"][0]["revision"] and evicted["incarnation"] == 1
    assert recorder.violations == []
    await keepalive.close()
    await recorder.close()


async def test_a_suspect_is_removed_at_the_ceiling(start_frontend, connect):
    frontend = await start_frontend(**{**BUDGET, "suspect_ceiling_seconds": 2.0})
    stub, admin = connect(frontend), admin_url(frontend)
    recorder = WatchRecorder(stub).start()
    for i in range(4):
        await register(stub, node(f"c{i}"), ttl=3)
    # All four go silent: two within the budget, two held, then removed at the ceiling.
    await recorder.wait_for(lambda r: not r.nodes and len(r.changes) >= 8, timeout=20)
    assert [c.reason for c in recorder.changes if c.type == pb.EVENT_TYPE_REMOVED] == [
        pb.REMOVAL_REASON_EXPIRED
    ] * 4
    trails = sorted([await causes(admin, f"c{i}") for i in range(4)])
    assert trails == [["REGISTERED", "EXPIRED"]] * 2 + [["REGISTERED", "SUSPECTED", "CEILING"]] * 2
    assert await metric(admin, "noderegistry_evictions_total", cause="CEILING") == 2
    await recorder.close()


async def test_suspects_are_released_when_the_budget_covers_them_again(start_frontend, connect):
    frontend = await start_frontend(**{**BUDGET, "eviction_window_seconds": 2.0})
    stub, admin = connect(frontend), admin_url(frontend)
    recorder = WatchRecorder(stub).start()
    for i in range(3):
        await register(stub, node(f"r{i}"), ttl=3)
    for i in range(7):
        await register(stub, node(f"steady{i}"), ttl=600)
    # 3 silent of 10: 2 removed, 1 held; once the window has passed the budget covers it.
    await recorder.wait_for(lambda r: {"r0", "r1", "r2"}.isdisjoint(r.nodes), timeout=20)
    trails = sorted([await causes(admin, f"r{i}") for i in range(3)])
    assert trails == [["REGISTERED", "EXPIRED"]] * 2 + [
        ["REGISTERED", "SUSPECTED", "BUDGET_RELEASED"]
    ]
    assert len(recorder.nodes) == 7
    await recorder.close()


async def test_dry_run_decides_and_removes_nothing(start_frontend, connect):
    frontend = await start_frontend(**{**BUDGET, "evictor_dry_run": True})
    stub, admin = connect(frontend), admin_url(frontend)
    recorder = WatchRecorder(stub).start()
    registrations = [await register(stub, node(f"d{i}"), ttl=3) for i in range(3)]
    await eventually(
        lambda: len(frontend.evictor.status.plan.decisions) == 3, timeout=15, message="a plan"
    )
    await sweeps_pass(frontend)
    status, body = await get(f"{admin}/admin/evictor")
    assert status == 200 and body["dry_run"] is True
    assert sorted(d["action"] for d in body["last_plan"]) == ["evict", "evict", "suspect"]
    assert set(recorder.nodes) == {"d0", "d1", "d2"}
    assert all(n.status == pb.NODE_STATUS_UP for n in recorder.nodes.values())

    # Deliberate removals are never held back, dry run or budget.
    for i, registration in enumerate(registrations):
        await stub.Deregister(
            pb.DeregisterRequest(key=key_of(node(f"d{i}")), token=registration.token)
        )
    await recorder.wait_for(lambda r: not r.nodes, message="all deregistered")
    assert set(removed(recorder).values()) == {pb.REMOVAL_REASON_DEREGISTERED}
    await recorder.close()


async def test_the_budget_holds_per_type_three_meta_nodes_beside_thirty_data_nodes(
    start_frontend, connect
):
    """33 members in dc1: the datacenter's budget (max(2, 15% of 33) = 4) would let all three
    meta nodes go at once; their type's (max(2, 15% of 3) = 2) lets two go, the third is held."""
    frontend = await start_frontend(**BUDGET, eviction_budget_type_minimum=2)
    stub, admin = connect(frontend), admin_url(frontend)
    recorder = WatchRecorder(stub).start()
    for i in range(30):
        await register(stub, node(f"d{i}"), ttl=600)
    for i in range(3):  # the meta nodes stop renewing at once
        await register(stub, node(f"m{i}", "meta"), ttl=3)

    await recorder.wait_for(
        lambda r: len(with_status(r, pb.NODE_STATUS_SUSPECT)) == 1,
        timeout=20,
        message="one meta node held as SUSPECT",
    )
    await sweeps_pass(frontend)
    gone = removed(recorder)
    assert len(gone) == 2 and all(node_id.startswith("m") for node_id in gone)
    (held,) = with_status(recorder, pb.NODE_STATUS_SUSPECT)
    assert held.startswith("m") and held not in gone
    assert len(with_status(recorder, pb.NODE_STATUS_UP)) == 30  # no data node touched
    evictor = (await get(f"{admin}/admin/evictor"))[1]
    assert evictor["datacenters"]["dc1"]["budget"] == 4
    meta = evictor["types"]["dc1/meta"]
    assert (meta["budget"], meta["spent"], meta["suspects"]) == (2, 2, 1)
    assert meta["self_preservation"] is True
    assert (
        await metric(
            admin, "noderegistry_eviction_type_budget_remaining", datacenter="dc1", type="meta"
        )
        == 0
    )
    assert await metric(admin, "noderegistry_self_preservation", datacenter="dc1") == 1
    assert "SUSPECTED" in await causes(admin, held, node_type="meta")
    await recorder.close()


async def test_a_developers_handful_of_nodes_is_removed_at_once_by_default(start_frontend, connect):
    """Default settings, five test nodes that all stop renewing: below
    self_preservation_min_members (10) no budget holds them, so none turns SUSPECT; the same
    five in a datacenter of ten are held as before."""
    frontend = await start_frontend(evictor_reconcile_seconds=0.3)
    assert frontend.settings.self_preservation_min_members == 10
    stub = connect(frontend)
    recorder = WatchRecorder(stub).start()
    for i in range(5):
        await register(stub, node(f"dev{i}"), ttl=3)
    await recorder.wait_for(lambda r: len(removed(r)) == 5, timeout=20, message="all five removed")
    assert set(removed(recorder).values()) == {pb.REMOVAL_REASON_EXPIRED}
    assert not with_status(recorder, pb.NODE_STATUS_SUSPECT)

    for i in range(5):
        await register(stub, node(f"fleet{i}", datacenter="dc2"), ttl=600)
        await register(stub, node(f"quiet{i}", datacenter="dc2"), ttl=3)
    await recorder.wait_for(
        lambda r: len(with_status(r, pb.NODE_STATUS_SUSPECT)) == 3,
        timeout=20,
        message="dc2 of ten: two removed, three held",
    )
