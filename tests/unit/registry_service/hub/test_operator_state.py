"""The hub follows operator state from its one watch (no etcd: an in-memory store feeds it):
the push switch and its gray list, a new hub's stored state, announcements, and the re-push of
a subscriber that does not confirm."""

from __future__ import annotations

import asyncio
import time

import pytest

from registry_service.control import Announcement, HeldScope, PushSwitch
from registry_service.domain import DeltaMessage, ProgressMessage, ResyncReason, Scope
from registry_service.hub.operator_state import OperatorState, OperatorView
from registry_service.hub.watch_hub import WatchHub
from registry_service.store.base import ClusterState, FrontendChanged, StoreBatch, SwitchChanged
from tests.support.store_batches import added
from tests.unit.registry_service.hub.test_watch_hub import MemoryStore, feed, started_hub

DC1 = Scope(datacenters=frozenset({"dc1"}))
DC2 = Scope(datacenters=frozenset({"dc2"}))


def switched(revision: int, switch: PushSwitch) -> StoreBatch:
    return StoreBatch(revision, (), control=(SwitchChanged(switch),))


async def test_switched_off_nobody_gets_deltas_and_on_again_everyone_resyncs():
    operator = OperatorState()
    hub, store = await started_hub(operator=operator, progress_seconds=0.01)
    subscription = hub.subscribe(Scope())
    snapshot = await anext(subscription)
    await feed(hub, store, switched(11, PushSwitch(enabled=False)), added(12, "a"))
    assert not operator.push_enabled and subscription.held
    progress = await anext(subscription)  # nothing beyond what it was sent
    assert isinstance(progress, ProgressMessage) and progress.revision == snapshot.revision
    await feed(hub, store, switched(13, PushSwitch(enabled=True)))
    resync = await anext(subscription)
    assert resync.resync_reason is ResyncReason.PUSH_RESUMED  # type: ignore[union-attr]
    assert [n.id for dc in resync.nodes.datacenters for n in dc.nodes] == ["a"]  # type: ignore[union-attr]
    await hub.close()


async def test_the_gray_list_holds_its_scopes_while_the_rest_is_pushed():
    hub, store = await started_hub()
    held = hub.subscribe(DC1)
    pushed = hub.subscribe(DC2)
    await anext(held), await anext(pushed)
    gray = PushSwitch(held_scopes=(HeldScope("dc1", ""),))
    await feed(hub, store, switched(11, gray), added(12, "a", "dc1"), added(13, "b", "dc2"))
    assert held.held and not pushed.held
    delta = await anext(pushed)
    assert isinstance(delta, DeltaMessage) and delta.events[0].node.id == "b"
    assert held.backlog == 0
    await feed(hub, store, switched(14, PushSwitch()))  # off the gray list: released
    resync = await anext(held)
    assert resync.resync_reason is ResyncReason.PUSH_RESUMED  # type: ignore[union-attr]
    assert not held.converged(14) and held.offered_revision >= 14
    await hub.close()


async def test_the_gray_list_holds_peers_by_network():
    hub, store = await started_hub()
    near = hub.subscribe(Scope(), peer="ipv4:10.1.0.7:5000")
    far = hub.subscribe(Scope(), peer="ipv4:192.168.0.7:5000")
    await feed(hub, store, switched(11, PushSwitch(held_networks=("10.1.0.0/16",))))
    assert near.held and not far.held
    late = hub.subscribe(Scope(), peer="ipv4:10.1.9.9:1")  # held from its first message on
    assert late.held
    await hub.close()


async def test_a_new_hub_starts_in_the_stored_state_and_knows_the_frontends():
    announcement = Announcement("fe-1", "h", 1, 0, 1, "h:1", "http://h:2", "v", 0.0)
    store = MemoryStore(
        ClusterState(
            revision=10, push_switch=PushSwitch(enabled=False), frontends={"fe-1": announcement}
        )
    )
    operator = OperatorState()
    hub = WatchHub(store, operator=operator)  # type: ignore[arg-type]
    await hub.start()
    assert not operator.push_enabled and hub.subscribe(Scope()).held
    assert operator.frontends == {"fe-1": announcement}
    await feed(hub, store, StoreBatch(11, (), control=(FrontendChanged("fe-1", None),)))
    assert operator.frontends == {}
    await hub.close()


async def test_a_subscriber_that_promised_acks_and_stays_silent_is_re_pushed():
    hub, store = await started_hub(ack_deadline_seconds=0.2, progress_seconds=10)
    silent = hub.subscribe(Scope(), acknowledging=True)
    never_promised = hub.subscribe(Scope())
    for subscription in (silent, never_promised):
        snapshot = await anext(subscription)
        subscription.written(snapshot, time.monotonic())
    await feed(hub, store, added(11, "a"))
    for subscription in (silent, never_promised):
        delta = await anext(subscription)
        subscription.written(delta, time.monotonic())
    resync = await asyncio.wait_for(anext(silent), 5)
    assert resync.resync_reason is ResyncReason.UNCONFIRMED  # type: ignore[union-attr]
    assert hub.stats().resyncs[ResyncReason.UNCONFIRMED] == 1
    assert never_promised.backlog == 0 and not never_promised.resync_pending
    await hub.close()


async def test_a_subscriber_that_acknowledges_in_time_is_left_alone():
    hub, store = await started_hub(ack_deadline_seconds=0.3, progress_seconds=10)
    subscription = hub.subscribe(Scope(), acknowledging=True)
    for revision in range(11, 16):
        message = await anext(subscription)
        subscription.written(message, time.monotonic())
        subscription.ack(message.revision)
        await feed(hub, store, added(revision, f"n{revision}"))
        await asyncio.sleep(0.1)  # paces the changes past the deadline in all, not each
    assert hub.stats().resyncs[ResyncReason.UNCONFIRMED] == 0
    assert subscription.converged(14)
    await hub.close()


def test_readers_get_a_view_they_cannot_change():
    announcement = Announcement("fe-1", "h", 1, 0, 1, "h:1", "http://h:2", "v", 0.0)
    operator = OperatorState()
    view: OperatorView = operator
    frontends = view.frontends
    assert view.push_enabled and frontends == {}
    assert operator.apply([FrontendChanged("fe-1", announcement)]) is False  # no switch written
    assert frontends == {"fe-1": announcement}  # the view follows later changes
    with pytest.raises(TypeError):
        frontends["fe-2"] = announcement  # type: ignore[index]
    assert operator.apply([SwitchChanged(PushSwitch(enabled=False))]) is True
    assert not view.push_enabled
    operator.load(PushSwitch(), {})  # a relist: what etcd holds replaces what was applied
    assert view.push_enabled and frontends == {}
