"""The read model without etcd or a hub: batches and relists in, events and query answers out."""

from __future__ import annotations

import collections
import dataclasses
import random
from collections.abc import Iterable

from registry_service.domain import EventType, Health, NodeKey, RemovalReason, Scope
from registry_service.hub.cluster_view import ClusterView
from registry_service.store.base import (
    ClusterState,
    LiveChanged,
    Member,
    MemberDeleted,
    MemberPut,
    StoreBatch,
)
from tests.support.store_batches import added, key, registration, removed


def keys_of(members: Iterable[Member]) -> set[NodeKey]:
    return {member.registration.node.key for member in members}


def test_applied_batches_become_events_and_a_removal_carries_its_reason():
    view = ClusterView(ClusterState(revision=1))
    assert [(e.type, e.node.id) for e in view.apply(added(2, "a"))] == [(EventType.ADDED, "a")]
    update = StoreBatch(3, (MemberPut(key("a"), Member(registration("a", zone="z"), 3)),))
    assert [e.type for e in view.apply(update)] == [EventType.UPDATED]
    assert view.registration(key("a")) == registration("a", zone="z")
    (event,) = view.apply(removed(4, "a", RemovalReason.EXPIRED))
    assert (event.type, event.reason, dict(event.node.metadata)) == (
        EventType.REMOVED,
        RemovalReason.EXPIRED,
        {"zone": "z"},
    )
    assert view.revision == 4
    assert view.registration(key("a")) is None
    assert not list(view.members(Scope())) and not view.expired()


def test_a_batch_without_member_changes_advances_the_revision_and_makes_no_event():
    view = ClusterView(ClusterState(revision=1))
    assert view.apply(StoreBatch(7, ())) == ()
    assert view.revision == 7


def test_members_whose_live_key_went_are_expired():
    view = ClusterView(ClusterState(revision=1))
    view.apply(added(2, "a"))
    view.apply(added(3, "b"))
    view.apply(StoreBatch(4, (LiveChanged(key("a"), False),)))
    assert [(k.id, m.mod_revision) for k, m in view.expired()] == [("a", 2)]


def test_a_member_written_before_its_live_key_is_expired_only_until_the_key_arrives():
    view = ClusterView(ClusterState(revision=1))
    view.apply(StoreBatch(2, (MemberPut(key("a"), Member(registration("a"), 2)),)))
    assert [k for k, _ in view.expired()] == [key("a")]
    view.apply(StoreBatch(3, (LiveChanged(key("a"), True),)))
    assert view.expired() == []


def test_a_loaded_state_knows_its_expired_members_and_datacenter_revisions():
    view = ClusterView(
        ClusterState(
            revision=9,
            members={
                key("a"): Member(registration("a"), 4),
                key("b", "dc2"): Member(registration("b", "dc2"), 6),
            },
            live={key("a")},
        )
    )
    assert [k for k, _ in view.expired()] == [key("b", "dc2")]
    assert [(dc.datacenter, dc.revision) for dc in view.node_list(Scope()).datacenters] == [
        ("dc1", 4),
        ("dc2", 6),
    ]


def test_relist_yields_the_difference_and_takes_the_fresh_state():
    view = ClusterView(ClusterState(revision=1))
    view.apply(added(2, "stays"))
    view.apply(added(3, "goes"))
    view.apply(added(4, "changes"))
    fresh = ClusterState(
        revision=9,
        members={
            key("stays"): Member(registration("stays"), 2),
            key("changes"): Member(registration("changes", zone="z"), 7),
            key("new"): Member(registration("new"), 8),
        },
        live={key("stays"), key("changes")},
    )
    events = view.relist(fresh)
    assert sorted((e.type.value, e.node.id, e.reason) for e in events) == [
        ("ADDED", "new", RemovalReason.UNSPECIFIED),
        ("REMOVED", "goes", RemovalReason.UNSPECIFIED),
        ("UPDATED", "changes", RemovalReason.UNSPECIFIED),
    ]
    assert view.revision == 9
    assert view.registration(key("goes")) is None
    assert view.registration(key("changes")) == registration("changes", zone="z")
    assert [k for k, _ in view.expired()] == [key("new")]  # its live key was not in the state
    assert view.node_list(Scope()).datacenters[0].revision == 9


def test_relist_to_the_same_state_yields_nothing_and_keeps_datacenter_revisions():
    view = ClusterView(ClusterState(revision=1))
    view.apply(added(2, "a"))
    same = ClusterState(
        revision=5, members={key("a"): Member(registration("a"), 2)}, live={key("a")}
    )
    assert view.relist(same) == ()
    assert view.revision == 5
    assert view.node_list(Scope()).datacenters[0].revision == 2


def test_node_list_groups_per_datacenter_with_each_datacenters_last_change():
    view = ClusterView(ClusterState(revision=1))
    view.apply(added(2, "b", "dc2"))
    view.apply(added(3, "a", "dc1"))
    view.apply(added(4, "c", "dc2"))
    listing = view.node_list(Scope(), age_seconds=1.5, stale=True)
    assert [
        (dc.datacenter, dc.revision, [n.id for n in dc.nodes]) for dc in listing.datacenters
    ] == [("dc1", 3, ["a"]), ("dc2", 4, ["b", "c"])]
    assert (listing.revision, listing.age_seconds, listing.stale) == (4, 1.5, True)
    only_dc1 = view.node_list(Scope(datacenters=frozenset({"dc1", "dc9"})))
    assert [dc.datacenter for dc in only_dc1.datacenters] == ["dc1"]


def test_a_datacenter_named_in_the_scope_stays_listed_empty_after_its_last_member_left():
    view = ClusterView(ClusterState(revision=1))
    view.apply(added(2, "a"))
    view.apply(removed(3, "a", RemovalReason.DEREGISTERED))
    named = view.node_list(Scope(datacenters=frozenset({"dc1"})))
    assert [(dc.datacenter, dc.revision, dc.nodes) for dc in named.datacenters] == [("dc1", 3, ())]
    assert view.node_list(Scope()).datacenters == ()


def test_queries_agree_with_a_plain_model_through_any_sequence_of_changes():
    """The view keeps indexes (expired keys, groups per datacenter and type) for speed; whatever
    the order of changes, every query must answer what members and live keys alone say."""
    rng = random.Random(7)
    view = ClusterView(ClusterState(revision=1))
    keys = [NodeKey(f"dc{i % 3}", ("data", "meta")[i % 2], f"n{i}") for i in range(18)]
    members: dict[NodeKey, Member] = {}
    live: set[NodeKey] = set()
    scopes = [
        Scope(),
        Scope(datacenters=frozenset({"dc1"})),
        Scope(types=frozenset({"meta"})),
        Scope(datacenters=frozenset({"dc0", "dc2"}), types=frozenset({"data"})),
    ]
    for revision in range(2, 2500):
        k = rng.choice(keys)
        roll = rng.random()
        if roll < 0.35:
            member = Member(registration(k.id, k.datacenter, k.type), revision)
            change: MemberPut | MemberDeleted | LiveChanged = MemberPut(k, member)
            members[k] = member
        elif roll < 0.55:
            change = MemberDeleted(k)
            members.pop(k, None)
        else:
            change = LiveChanged(k, roll < 0.8)
            (live.add if change.alive else live.discard)(k)
        view.apply(StoreBatch(revision, (change,)))

        assert {k for k, _ in view.expired()} == set(members) - live
        for scope in scopes:
            assert keys_of(view.members(scope)) == {k for k in members if scope.matches(k)}
        assert view.datacenter_sizes() == collections.Counter(k.datacenter for k in members)
        listed = view.node_list(Scope())
        assert {dc.datacenter for dc in listed.datacenters} == {k.datacenter for k in members}
        assert view.registration(k) == (members[k].registration if k in members else None)


def test_a_scopes_revision_is_its_own_last_change_and_outlives_its_last_member():
    view = ClusterView(ClusterState(revision=1))
    view.apply(added(2, "a"))  # dc1/data
    meta = key("m", node_type="meta")
    view.apply(StoreBatch(3, (MemberPut(meta, Member(registration("m", node_type="meta"), 3)),)))
    view.apply(added(4, "b", datacenter="dc2"))
    view.apply(StoreBatch(5, ()))  # a revision that changed no member
    assert view.scope_revision(Scope(types=frozenset({"data"}))) == 4
    assert view.scope_revision(Scope(frozenset({"dc1"}), frozenset({"data"}))) == 2
    assert view.scope_revision(Scope(frozenset({"dc1"}))) == 3
    assert view.scope_revision(Scope()) == 4
    assert view.scope_revision(Scope(types=frozenset({"session"}))) == 0
    view.apply(removed(6, "a", RemovalReason.DEREGISTERED))  # dc1/data's last member
    assert view.scope_revision(Scope(frozenset({"dc1"}), frozenset({"data"}))) == 6
    # A relist touches what it changed at the relisted revision, and nothing goes back.
    state = ClusterState(revision=9, members={key("b", "dc2"): Member(registration("b", "dc2"), 4)})
    view.relist(state)
    assert view.scope_revision(Scope(frozenset({"dc1"}), frozenset({"meta"}))) == 9
    assert view.scope_revision(Scope(frozenset({"dc2"}))) == 4


def test_an_update_carries_the_node_before_it_and_a_healthy_only_list_leaves_failing_nodes_out():
    view = ClusterView(ClusterState(revision=1))
    view.apply(added(2, "a"))
    view.apply(added(3, "b"))
    before = registration("a")
    failing = dataclasses.replace(
        before, node=dataclasses.replace(before.node, health=Health.FAILING)
    )
    (event,) = view.apply(StoreBatch(4, (MemberPut(key("a"), Member(failing, 4)),)))
    assert (event.type, event.previous, event.node.health) == (
        EventType.UPDATED,
        before.node,
        Health.FAILING,
    )
    listed = view.node_list(Scope(healthy_only=True))
    assert [n.id for dc in listed.datacenters for n in dc.nodes] == ["b"]
    everything = view.node_list(Scope())
    assert [n.id for dc in everything.datacenters for n in dc.nodes] == ["a", "b"]


def test_known_types_are_loaded_learned_and_never_forgotten():
    state = ClusterState(revision=10, known_types={("dc2", "meta")})  # an identity record only
    state.members[key("a")] = Member(registration("a"), 5)
    view = ClusterView(state)
    assert view.known_types() == {("dc1", "data"), ("dc2", "meta")}
    view.apply(added(11, "b", "dc3"))
    view.apply(removed(12, "a", RemovalReason.DEREGISTERED))
    view.relist(ClusterState(revision=13))  # a relist of an empty cluster forgets nothing
    assert view.known_types() == {("dc1", "data"), ("dc2", "meta"), ("dc3", "data")}
