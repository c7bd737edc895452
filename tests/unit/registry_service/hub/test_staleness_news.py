"""Whether a subscriber's lists are current reaches it when it changes (D81, D82): the frontend
losing or regaining etcd, and the push switch freezing a subscriber, each send a progress at
once, not at the next idle tick."""

from __future__ import annotations

import asyncio

from registry_service.domain import ProgressMessage, ResyncReason, Scope, SnapshotMessage
from tests.unit.registry_service.hub.test_watch_hub import started_hub


async def test_turning_stale_or_fresh_reaches_every_subscriber_at_once():
    connected = True
    hub, _ = await started_hub(progress_seconds=60, store_connected=lambda: connected)
    subscriptions = [hub.subscribe(Scope()) for _ in range(3)]
    for subscription in subscriptions:
        await anext(subscription)  # the snapshot
    connected = False
    hub.store_connection_changed()
    for subscription in subscriptions:
        message = await asyncio.wait_for(anext(subscription), 1)
        assert isinstance(message, ProgressMessage) and message.stale
    connected = True
    hub.store_connection_changed()
    for subscription in subscriptions:
        message = await asyncio.wait_for(anext(subscription), 1)
        assert isinstance(message, ProgressMessage) and not message.stale
    await hub.close()


async def test_a_subscriber_the_push_switch_holds_is_told_at_once_that_its_list_is_frozen():
    hub, _ = await started_hub(progress_seconds=0.05)
    subscription = hub.subscribe(Scope())
    await anext(subscription)
    subscription.set_held(True)
    frozen = await asyncio.wait_for(anext(subscription), 1)
    assert isinstance(frozen, ProgressMessage) and frozen.stale
    idle = await asyncio.wait_for(anext(subscription), 1)
    assert isinstance(idle, ProgressMessage) and idle.stale  # as long as it is held
    subscription.set_held(False)
    resumed = await asyncio.wait_for(anext(subscription), 1)
    assert isinstance(resumed, SnapshotMessage)
    assert resumed.resync_reason is ResyncReason.PUSH_RESUMED and not resumed.nodes.stale
    await hub.close()
