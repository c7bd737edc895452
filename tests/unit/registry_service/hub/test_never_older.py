"""A subscriber that resumes from further along than this frontend is never sent an older list
(D80): held at its own revision, marked stale, until the view (or the followed datacenter's copy)
passes it; then exactly the changes after it."""

from __future__ import annotations

import asyncio

from registry_service.domain import ResyncReason, Scope
from registry_service.errors import StoreCompactedError
from registry_service.store.base import ClusterState, Member
from tests.support.store_batches import added, key, registration
from tests.unit.registry_service.hub.test_federated_hub import (
    described,
    far,
    far_added,
    federated_hub,
    pending,
)
from tests.unit.registry_service.hub.test_watch_hub import feed, started_hub


async def test_a_resume_ahead_of_a_lagging_view_is_held_then_gets_the_changes_after_it():
    hub, store = await started_hub(progress_seconds=0.01)
    held = hub.subscribe(Scope(), 13, view_lags=True)
    assert described(pending(held)) == ["progress local@13 stale"]
    assert (await anext(held)).revision == 13
    assert described([await anext(held)]) == ["progress local@13 stale"]  # idle, still behind
    await feed(hub, store, added(11, "a"), added(12, "b"), added(13, "c"), added(14, "d"))
    assert described([await anext(held)]) == ["delta local@14 d"]  # nothing it had already
    assert described([await anext(held)]) == ["progress local@14"]  # in step: fresh
    # Without view_lags the view is as current as etcd: the revision is unknown to etcd itself.
    unknown = hub.subscribe(Scope(), 99)
    assert described(pending(unknown)) == ["snapshot local@14 UNKNOWN_REVISION"]
    await hub.close()


async def test_a_relist_past_a_held_resume_is_a_resync_not_a_difference_from_an_older_view():
    hub, store = await started_hub()
    held = hub.subscribe(Scope(), 20, view_lags=True)
    await anext(held)  # the stale progress
    members = {key(n): Member(registration(n), 25) for n in ("a", "b")}
    store.state = ClusterState(revision=30, members=members)
    store.batches.put_nowait(StoreCompactedError("etcd keeps history from 25"))
    assert await hub.wait_for_revision(30, timeout=5)
    resync = await anext(held)
    assert described([resync]) == ["snapshot local@30 COMPACTED"]
    await hub.close()


async def test_a_resync_waits_for_the_view_to_pass_what_the_subscriber_holds():
    hub, store = await started_hub()
    held = hub.subscribe(Scope(), 12, view_lags=True)
    await anext(held)
    held.request_resync(ResyncReason.UNCONFIRMED)
    await feed(hub, store, added(11, "a"), added(12, "b"))
    assert pending(held) == [] and held.resync_pending
    await feed(hub, store, added(13, "c"))
    assert described([await anext(held)]) == ["snapshot local@13 UNCONFIRMED"]
    await hub.close()


async def test_a_vector_ahead_of_the_copy_is_held_until_the_copy_passes_it():
    hub, _, remotes = await federated_hub(progress_seconds=0.01)
    ahead = hub.subscribe(Scope(), 10, resume_revisions={"dc2": 503}, federated=True)
    assert described(pending(ahead)) == ["progress dc2@503 stale"]
    await anext(ahead)
    for revision, name in ((501, "f2"), (502, "f3"), (503, "f4"), (504, "f5")):
        remotes.delta("dc2", far_added(name), revision, False)
    assert described([await anext(ahead)]) == ["delta dc2@504 f5"]
    local, remote = await anext(ahead), await anext(ahead)
    assert described([local, remote]) == ["progress local@10", "progress dc2@504"]
    await hub.close()


async def test_held_remote_progress_never_says_less_and_a_relist_past_it_is_a_snapshot():
    hub, _, remotes = await federated_hub(progress_seconds=0.01)
    ahead = hub.subscribe(Scope(), 10, resume_revisions={"dc2": 503}, federated=True)
    await anext(ahead)
    remotes.interrupted("dc2")  # turning stale is announced, at the subscriber's revision
    assert described([await anext(ahead)]) == ["progress dc2@503 stale"]
    _, idle = await anext(ahead), await anext(ahead)
    assert described([idle]) == ["progress dc2@503 stale"]
    remotes.load("dc2", [far("f1"), far("f9")], 507, 506)  # the follower relisted past it
    snapshot = await anext(ahead)
    assert described([snapshot]) == ["snapshot dc2@507"]
    await hub.close()


async def test_a_whole_list_leaves_out_a_datacenter_held_ahead_of_the_copy():
    hub, store, remotes = await federated_hub()
    ahead = hub.subscribe(Scope(), 10, resume_revisions={"dc2": 503}, federated=True)
    ahead.request_resync(ResyncReason.SLOW_CONSUMER)
    snapshot = await anext(ahead)
    (entry,) = snapshot.nodes.datacenters  # type: ignore[union-attr]
    assert (entry.datacenter, entry.complete_revision, entry.stale, entry.nodes) == (
        "dc2",
        0,
        True,
        (),
    )
    remotes.delta("dc2", far_added("f2"), 503, False)
    remotes.delta("dc2", far_added("f3"), 504, False)
    await feed(hub, store, added(11, "n1"))
    later = [await anext(ahead) for _ in range(2)]
    assert described(later) == ["delta dc2@504 f3", "delta local@11 n1"]
    await hub.close()


async def test_a_resume_with_nothing_missed_hears_at_once_where_it_stands():
    """Not at the next idle tick (60 s here): a follower's copy turns fresh at once (D81)."""
    hub, store, _ = await federated_hub(progress_seconds=60)
    await feed(hub, store, added(11, "a"))
    resumed = hub.subscribe(Scope(), 11, resume_revisions={"dc2": 500}, federated=True)
    first = [await asyncio.wait_for(anext(resumed), 1) for _ in range(2)]
    assert described(first) == ["progress local@11", "progress dc2@500"]
    await hub.close()
