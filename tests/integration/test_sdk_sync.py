"""The sync facade against a real frontend on real etcd: what the async API does, blocking.

Each scenario runs its synchronous part in a worker thread (`asyncio.to_thread`), since the
frontend under test runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from client_sdk import (
    EventType,
    InvalidArgumentError,
    NodeStatus,
    RegistrationState,
    RemovalReason,
    SyncRegistration,
    SyncRegistryClient,
)
from tests.support.api import revoke_member_lease
from tests.support.sdk import FAST, data_node
from tests.support.waiting import eventually_sync

pytestmark = pytest.mark.integration


async def test_sync_update_changes_the_node_in_place_and_watchers_see_it(start_frontend):
    frontend = await start_frontend()

    def script() -> None:
        with SyncRegistryClient(frontend.address, config=FAST) as client:
            watch = client.watch_nodes()
            with watch.events(timeout_seconds=5) as events:
                registration = client.register(data_node("upd", zone="a"))
                updated = registration.update(metadata={"zone": "b"}, status=NodeStatus.DRAINING)
                added, changed = next(events), next(events)
            assert (updated.metadata, updated.status) == ({"zone": "b"}, NodeStatus.DRAINING)
            assert registration.node == updated and registration.incarnation == 1
            assert (added.type, added.node.metadata) == (EventType.ADDED, {"zone": "a"})
            assert (changed.type, changed.node) == (EventType.UPDATED, updated)
            with pytest.raises(InvalidArgumentError, match="address"):
                registration.update(address="")

    await asyncio.to_thread(script)


async def test_sync_state_changes_reach_a_callback_an_iterator_and_the_state(
    start_frontend, etcd_client, cluster
):
    """1. a sync registration with on_state_change and on_reregistered, and a state iterator.
    2. its lease is revoked in etcd: LOST, then ACTIVE again as incarnation 2.
    3. close(): CLOSED, and the iterator ends."""
    frontend = await start_frontend()
    called: list[RegistrationState] = []
    reregistered: list[SyncRegistration] = []
    client = await asyncio.to_thread(SyncRegistryClient, frontend.address, config=FAST)
    try:
        registration = await asyncio.to_thread(
            client.register,
            data_node("stateful"),
            ttl_seconds=3,
            on_state_change=called.append,
            on_reregistered=reregistered.append,
        )
        states = await asyncio.to_thread(registration.state_changes, 15)
        assert registration.state is RegistrationState.ACTIVE

        await revoke_member_lease(etcd_client, cluster, "dc1/data/stateful")

        def after_revocation() -> list[RegistrationState]:
            lost_then_active = [next(states), next(states)]
            eventually_sync(lambda: reregistered, timeout=5, message="on_reregistered called")
            registration.close()
            return lost_then_active + list(states)

        seen = await asyncio.to_thread(after_revocation)
    finally:
        await asyncio.to_thread(client.close)
    expected = [RegistrationState.LOST, RegistrationState.ACTIVE, RegistrationState.CLOSED]
    assert seen == expected and called == expected
    assert reregistered == [registration] and registration.incarnation == 2
    assert registration.state is RegistrationState.CLOSED


async def test_sync_events_block_until_the_next_change_and_end_with_the_watch(start_frontend):
    frontend = await start_frontend()

    def script() -> list[tuple[EventType, str, RemovalReason]]:
        with SyncRegistryClient(frontend.address, config=FAST) as client:
            watch = client.watch_nodes()
            events = watch.events(timeout_seconds=10)
            with pytest.raises(TimeoutError):
                next(watch.events(timeout_seconds=0.2))  # nothing happens: it stops waiting
            with client.register(data_node("blocking")):
                watch.wait_for(lambda nodes: len(nodes) == 1, 5)
            first, second = next(events), next(events)
            watch.close()
            assert list(events) == []  # the watch closed: the iterator ends
        return [(e.type, e.node.id, e.reason) for e in (first, second)]

    assert await asyncio.to_thread(script) == [
        (EventType.ADDED, "blocking", RemovalReason.UNSPECIFIED),
        (EventType.REMOVED, "blocking", RemovalReason.DEREGISTERED),
    ]


async def test_closing_a_sync_event_stream_ends_its_reader_in_another_thread(start_frontend):
    frontend = await start_frontend()

    def script() -> tuple[list[object], bool]:
        with SyncRegistryClient(frontend.address, config=FAST) as client:
            events = client.watch_nodes().events()
            read: list[object] = []
            reader = threading.Thread(target=lambda: read.extend(events))
            reader.start()
            events.close()
            reader.join(5)
            return read, reader.is_alive()

    assert await asyncio.to_thread(script) == ([], False)
