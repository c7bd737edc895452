"""The hub serving followed remote datacenters beside its own etcd (federation), without a network:
who gets which datacenter, and how a vector {datacenter: revision} resumes each of them."""

from __future__ import annotations

from registry_service.domain import (
    DeltaMessage,
    EventType,
    Node,
    NodeEvent,
    ProgressMessage,
    ResyncReason,
    Scope,
    SnapshotMessage,
    WatchMessage,
)
from registry_service.hub.remote_view import RemoteViews
from registry_service.hub.subscription import Subscription
from tests.support.store_batches import added
from tests.unit.registry_service.hub.test_watch_hub import feed, started_hub


def far(node_id: str, node_type: str = "data") -> Node:
    return Node(node_id, node_type, "dc2", f"{node_id}:1", {}, 1)


def far_added(node_id: str, node_type: str = "data") -> list[NodeEvent]:
    return [NodeEvent(EventType.ADDED, far(node_id, node_type))]


def pending(subscription: Subscription) -> list[WatchMessage]:
    """What the subscription holds for its reader, without waiting."""
    return list(subscription._queue)


def described(messages: list[WatchMessage]) -> list[str]:
    out = []
    for m in messages:
        where = m.datacenter or "local"
        if isinstance(m, SnapshotMessage):
            reason = f" {m.resync_reason.value}" if m.resync_reason else ""
            out.append(f"snapshot {where}@{m.revision}{reason}")
        elif isinstance(m, DeltaMessage):
            names = ",".join(e.node.id for e in m.events)
            out.append(f"delta {where}@{m.revision} {names}{' relisted' if m.relisted else ''}")
        else:
            out.append(f"progress {where}@{m.revision}{' stale' if m.stale else ''}")
    return out


async def federated_hub(**options):
    """A started hub that follows dc2, dc2's list loaded; the remote views it was handed are the
    followers' (they feed them, the hub fans them out)."""
    remotes = RemoteViews(["dc2"], options.get("history_revisions", 10_000))
    hub, store = await started_hub(remotes=remotes, **options)
    remotes.load("dc2", [far("f1")], 500, 480)
    return hub, store, remotes


async def test_only_subscribers_with_revisions_per_datacenter_get_the_remote_datacenters():
    hub, store, remotes = await federated_hub()
    old = hub.subscribe(Scope())
    new = hub.subscribe(Scope(), federated=True)
    (old_snapshot,) = pending(old)
    (new_snapshot,) = pending(new)
    assert [dc.datacenter for dc in old_snapshot.nodes.datacenters] == []
    (remote,) = new_snapshot.nodes.datacenters
    assert remote.remote and remote.complete_revision == 500 and remote.revision == 480
    assert new_snapshot.revision == 10  # the local etcd's revision, as before

    remotes.delta("dc2", far_added("f2"), 501, False)
    await feed(hub, store, added(11, "n1"))
    assert described(pending(old)[1:]) == ["delta local@11 n1"]
    assert described(pending(new)[1:]) == ["delta dc2@501 f2", "delta local@11 n1"]
    await hub.close()


async def test_a_scope_without_the_remote_datacenter_gets_none_of_it():
    hub, _, remotes = await federated_hub()
    local_only = hub.subscribe(Scope(datacenters=frozenset({"dc1"})), federated=True)
    sessions = hub.subscribe(Scope(types=frozenset({"session"})), federated=True)
    remotes.delta("dc2", far_added("f2"), 501, False)
    remotes.delta("dc2", far_added("s1", "session"), 502, False)
    assert described(pending(local_only)) == ["snapshot local@10"]
    assert described(pending(sessions))[1:] == ["delta dc2@502 s1"]
    await hub.close()


async def test_a_vector_resumes_each_datacenter_exactly_after_its_own_revision():
    hub, store, remotes = await federated_hub()
    remotes.delta("dc2", far_added("f2"), 501, False)
    await feed(hub, store, added(11, "n1"))
    remotes.delta("dc2", far_added("f3"), 502, False)
    await feed(hub, store, added(12, "n2"))
    resumed = hub.subscribe(Scope(), 11, resume_revisions={"dc2": 501}, federated=True)
    assert described(pending(resumed)) == ["delta local@12 n2", "delta dc2@502 f3"]
    caught_up = hub.subscribe(Scope(), 12, resume_revisions={"dc2": 502}, federated=True)
    assert pending(caught_up) == []
    await hub.close()


async def test_a_remote_datacenter_the_history_cannot_resume_gets_a_resync_of_it_alone():
    hub, store, remotes = await federated_hub(history_revisions=1)
    remotes.delta("dc2", far_added("f2"), 501, False)
    remotes.delta("dc2", far_added("f3"), 502, False)
    await feed(hub, store, added(11, "n1"))
    resumed = hub.subscribe(Scope(), 10, resume_revisions={"dc2": 500}, federated=True)
    assert described(pending(resumed)) == ["delta local@11 n1", "snapshot dc2@502 COMPACTED"]
    (snapshot,) = [m for m in pending(resumed) if isinstance(m, SnapshotMessage)]
    assert [n.id for dc in snapshot.nodes.datacenters for n in dc.nodes] == ["f1", "f2", "f3"]
    assert hub.stats().resyncs[ResyncReason.COMPACTED] == 1
    missing = hub.subscribe(Scope(), 11, federated=True)  # it never had dc2: all of it
    assert described(pending(missing)) == ["snapshot dc2@502"]
    await hub.close()


async def test_a_datacenter_reached_after_subscribing_arrives_as_its_own_snapshot():
    remotes = RemoteViews(["dc2"])
    hub, _ = await started_hub(remotes=remotes)
    subscription = hub.subscribe(Scope(types=frozenset({"data"})), federated=True)
    (first,) = pending(subscription)
    (unreached,) = first.nodes.datacenters
    assert unreached.complete_revision == 0 and unreached.stale and unreached.nodes == ()
    remotes.load("dc2", [far("f1"), far("s1", "session")], 500, 480)
    snapshot, fresh = pending(subscription)[1:]
    assert isinstance(snapshot, SnapshotMessage) and snapshot.datacenter == "dc2"
    assert [n.id for dc in snapshot.nodes.datacenters for n in dc.nodes] == ["f1"]
    assert isinstance(fresh, ProgressMessage) and not fresh.stale
    await hub.close()


async def test_an_idle_subscriber_hears_each_datacenters_progress():
    hub, _, remotes = await federated_hub(progress_seconds=0.01)
    subscription = hub.subscribe(Scope(), federated=True)
    await anext(subscription)  # the snapshot
    remotes.interrupted("dc2")
    stale = await anext(subscription)
    assert described([stale]) == ["progress dc2@500 stale"]
    local, remote = await anext(subscription), await anext(subscription)
    assert described([local, remote]) == ["progress local@10", "progress dc2@500 stale"]
    await hub.close()


async def test_a_held_subscriber_is_told_no_remote_revision_beyond_what_it_was_sent():
    hub, _, remotes = await federated_hub(progress_seconds=0.01)
    subscription = hub.subscribe(Scope(), federated=True)
    await anext(subscription)
    first = remotes.datacenters["dc2"]
    remotes.delta("dc2", far_added("f2"), 501, False)
    assert (await anext(subscription)).revision == 501
    subscription.held = True
    remotes.delta("dc2", far_added("f3"), 502, False)
    local, remote = await anext(subscription), await anext(subscription)
    assert (local.revision, remote.revision, remote.datacenter) == (10, 501, "dc2")
    assert first.revision == 502
    await hub.close()
