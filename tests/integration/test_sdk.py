"""The client SDK against real frontends and real etcd: registrations never silently vanish,
watches never silently stall."""

from __future__ import annotations

import asyncio
import time

import pytest

from client_sdk import (
    AlreadyExistsError,
    EventType,
    InvalidArgumentError,
    Node,
    NodeStatus,
    RegistrationState,
    RegistryClient,
    RegistryUnavailableError,
    RemovalReason,
    Scope,
    SyncRegistryClient,
    WatchClosedError,
    WatchConfig,
)
from tests.support.api import WatchRecorder, node, register, revoke_member_lease
from tests.support.frontends import stub as stub_for
from tests.support.sdk import FAST, data_node
from tests.support.waiting import eventually, eventually_sync

pytestmark = pytest.mark.integration


async def _never_removed_for(recorder: WatchRecorder, seconds: float) -> None:
    """Watches for `seconds` (the scenario's duration) that no REMOVED arrives."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert [c for c in recorder.changes if c.type == 3] == [], recorder.changes
        await asyncio.sleep(0.1)


async def test_registration_renews_and_close_deregisters(start_frontend, connect):
    frontend = await start_frontend()
    recorder = WatchRecorder(connect(frontend)).start()
    async with RegistryClient(frontend.address, config=FAST) as client:
        registration = await client.register(data_node("n1", zone="a"), ttl_seconds=3)
        assert registration.state is RegistrationState.ACTIVE
        assert (registration.incarnation, registration.ttl_seconds) == (1, 3)
        await recorder.wait_for_node("n1")
        await _never_removed_for(recorder, 2 * 3 + 1)
        assert registration.state is RegistrationState.ACTIVE
        await registration.close()
        assert registration.state is RegistrationState.CLOSED
    await recorder.wait_for_node("n1", present=False)
    assert recorder.changes[-1].reason == 1  # DEREGISTERED
    await recorder.close()


async def test_errors_are_the_sdks_own(start_frontend):
    frontend = await start_frontend()
    async with RegistryClient(frontend.address, config=FAST) as client:
        with pytest.raises(InvalidArgumentError, match="must match"):
            await client.register(Node("Bad!", "data", "dc1", "h:1"))
        await client.register(data_node("taken"))
        async with RegistryClient(frontend.address, config=FAST) as other:
            with pytest.raises(AlreadyExistsError, match="another owner"):
                await other.register(data_node("taken"))
    async with RegistryClient("127.0.0.1:1", config=FAST) as nowhere:
        with pytest.raises(RegistryUnavailableError):
            await nowhere.get_nodes()


async def test_registration_and_watch_close_when_their_async_with_ends(start_frontend, connect):
    frontend = await start_frontend()
    recorder = WatchRecorder(connect(frontend)).start()
    async with RegistryClient(frontend.address, config=FAST) as client:
        async with await client.watch_nodes() as watch:
            events = watch.events()
            async with await client.register(data_node("scoped")) as registration:
                assert registration.state is RegistrationState.ACTIVE
                await watch.wait_for(lambda nodes: len(nodes) == 1, 5)
            assert registration.state is RegistrationState.CLOSED
            await watch.wait_for(lambda nodes: len(nodes) == 0, 5)
        async with asyncio.timeout(5):
            seen = [(e.type, e.node.id, e.reason) async for e in events]  # ends with the watch
        assert seen == [
            (EventType.ADDED, "scoped", RemovalReason.UNSPECIFIED),
            (EventType.REMOVED, "scoped", RemovalReason.DEREGISTERED),
        ]
        with pytest.raises(WatchClosedError):
            await watch.wait_for(lambda nodes: len(nodes) == 1, 5)
    await recorder.wait_for(lambda r: len(r.changes) == 2)
    assert recorder.changes[-1].reason == 1  # DEREGISTERED, by the async with
    await recorder.close()


async def test_drain_marks_draining_then_deregisters(start_frontend):
    frontend = await start_frontend()
    async with RegistryClient(frontend.address, config=FAST) as client:
        watch = await client.watch_nodes()
        registration = await client.register(data_node("leaving"))
        await watch.wait_for(lambda nodes: len(nodes) == 1, 5)
        events = watch.events()
        await registration.drain()
        async with asyncio.timeout(5):
            first, second = await anext(events), await anext(events)
        assert (first.type, first.node.status) == (EventType.UPDATED, NodeStatus.DRAINING)
        assert (second.type, second.reason) == (EventType.REMOVED, RemovalReason.DEREGISTERED)


async def test_registration_survives_its_frontend_being_killed(etcd, spawn_frontend):
    """1. two frontend processes; the client registers through the first.
    2. the first is SIGKILLed; renewals move to the second.
    3. for 2 TTLs no watcher (on the second) sees the node removed; the registration is ACTIVE."""
    first = await spawn_frontend(etcd.endpoint)
    second = await spawn_frontend(etcd.endpoint)
    channel, stub = stub_for(second.address)
    recorder = WatchRecorder(stub).start()
    try:
        async with RegistryClient([first.address, second.address], config=FAST) as client:
            registration = await client.register(data_node("survivor"), ttl_seconds=3)
            await recorder.wait_for_node("survivor")
            first.kill()
            await _never_removed_for(recorder, 2 * 3)
            await eventually(lambda: registration.state is RegistrationState.ACTIVE)
            assert registration.incarnation == 1
    finally:
        await recorder.close()
        await channel.close()


async def test_registration_survives_an_etcd_restart(own_etcd, start_frontend, connect):
    frontend = await start_frontend(own_etcd.endpoint)
    recorder = WatchRecorder(connect(frontend)).start()
    async with RegistryClient(frontend.address, config=FAST) as client:
        registration = await client.register(data_node("steadfast"), ttl_seconds=5)
        await recorder.wait_for_node("steadfast")
        states = []

        async def record_states() -> None:
            async for state in registration.state_changes():
                states.append(state)

        recording = asyncio.create_task(record_states())
        own_etcd.stop()
        await eventually(lambda: registration.state is RegistrationState.SUSPENDED, timeout=10)
        own_etcd.start()
        await asyncio.to_thread(own_etcd.wait_ready)
        await eventually(lambda: registration.state is RegistrationState.ACTIVE, timeout=20)
        await _never_removed_for(recorder, 5)
        assert registration.incarnation == 1
        assert states[:2] == [RegistrationState.SUSPENDED, RegistrationState.ACTIVE]
        recording.cancel()
    await recorder.close()


async def test_lease_revoked_behind_its_back_is_never_silent(
    start_frontend, connect, etcd_client, cluster
):
    frontend = await start_frontend()
    recorder = WatchRecorder(connect(frontend)).start()
    called = asyncio.Event()
    async with RegistryClient(frontend.address, config=FAST) as client:
        registration = await client.register(
            data_node("revoked"), ttl_seconds=3, on_reregistered=lambda r: called.set()
        )
        await recorder.wait_for_node("revoked")
        await revoke_member_lease(etcd_client, cluster, "dc1/data/revoked")

        async with asyncio.timeout(10):
            await called.wait()
        assert (registration.incarnation, registration.reregistrations) == (2, 1)
        assert registration.state is RegistrationState.ACTIVE
        await recorder.wait_for(lambda r: len(r.changes) == 3)
        assert [(c.type, c.incarnation) for c in recorder.changes] == [(1, 1), (3, 1), (1, 2)]
    await recorder.close()


async def test_watch_resumes_on_another_frontend_with_no_gap_and_no_duplicate(
    etcd, spawn_frontend, start_frontend
):
    first = await spawn_frontend(etcd.endpoint)
    second = await start_frontend()
    async with (
        RegistryClient([first.address], config=FAST) as writer,
        RegistryClient([first.address, second.address], config=FAST) as reader,
    ):
        watch = await reader.watch_nodes()
        seen = []

        async def collect() -> None:
            async for event in watch.events():
                seen.append((event.revision, event.type, event.node.id))

        collecting = asyncio.create_task(collect())
        registrations = [await writer.register(data_node(f"a{i}")) for i in range(3)]
        await watch.wait_for(lambda nodes: len(nodes) == 3, 5)
        first.kill()
        async with RegistryClient([second.address], config=FAST) as writer2:
            more = [await writer2.register(data_node(f"b{i}")) for i in range(3)]
            await eventually(lambda: len(seen) >= 6, timeout=15, message="six events")
            expected_ids = [r.node.id for r in registrations + more]
            assert [s[2] for s in seen] == expected_ids
            assert [s[0] for s in seen] == sorted(s[0] for s in seen)
            assert watch.reconnects >= 1
            truth = await writer2.get_nodes()
            await watch.wait_for(lambda nodes: nodes.revision >= truth.revision, 5)
            assert set(watch.current().nodes) == set(truth.nodes)
            for registration in more:
                await registration.close()
        collecting.cancel()


async def test_watch_applies_a_resync_when_the_new_frontend_lacks_its_revision(
    etcd, spawn_frontend, start_frontend
):
    """1. the watch reads from frontend A; A is frozen (SIGSTOP).
    2. changes happen through B, whose history keeps only one revision.
    3. A is killed: the watch resumes on B from a revision B no longer has, gets a resync
       snapshot, and its view equals GetNodes."""
    a = await spawn_frontend(etcd.endpoint)
    b = await start_frontend(watch_history_revisions=1)
    async with (
        RegistryClient([a.address, b.address], config=FAST) as reader,
        RegistryClient([b.address], config=FAST) as writer,
    ):
        watch = await reader.watch_nodes()
        keep = await writer.register(data_node("keep"))
        await watch.wait_for(lambda nodes: len(nodes) == 1, 5)
        a.pause()
        gone = await writer.register(data_node("gone"))
        await writer.register(data_node("new1"))
        await writer.register(data_node("new2"))
        await gone.close()
        a.kill()
        await watch.wait_for(lambda nodes: {n.id for n in nodes} == {"keep", "new1", "new2"}, 15)
        assert watch.resyncs == 1
        truth = await writer.get_nodes()
        assert watch.current().revision >= truth.revision - 0
        assert set(watch.current().nodes) == set(truth.nodes)
        assert keep.state is RegistrationState.ACTIVE


async def test_current_equals_get_nodes_at_the_same_revision(start_frontend):
    frontend = await start_frontend()
    async with RegistryClient(frontend.address, config=FAST) as client:
        watch = await client.watch_nodes(Scope.of(datacenters="dc1"))
        for i in range(5):
            registration = await client.register(data_node(f"n{i}"))
            if i % 2:
                await registration.close()
            truth = await client.get_nodes(Scope.of(datacenters="dc1"))
            view = await watch.wait_for(lambda nodes, r=truth.revision: nodes.revision >= r, 5)
            if view.revision == truth.revision:
                assert view.datacenters == truth.datacenters


async def test_suspicious_shrink_is_held_back_and_released_when_nodes_return(
    start_frontend, connect
):
    frontend = await start_frontend(  # the SDK is under test, not the budget
        eviction_budget_minimum=100, eviction_budget_type_minimum=100
    )
    stub = connect(frontend)
    reports = []
    config = WatchConfig(shrink_hold_seconds=600, on_suspicious_shrink=reports.append)
    async with RegistryClient(frontend.address, config=FAST) as client:
        watch = await client.watch_nodes(config=config)
        steady = await client.register(data_node("steady"))
        for i in range(5):  # five nodes that will stop renewing at once
            await register(stub, node(f"short{i}"), ttl=3)
        await watch.wait_for(lambda nodes: len(nodes) == 6, 5)

        await eventually(lambda: watch.stale, timeout=15, message="shrink held")

        async def only_steady_left() -> bool:
            return {n.id for n in await client.get_nodes()} == {"steady"}

        await eventually(only_steady_left, timeout=15, message="all five expired")
        # Losses within the budget (2 of 6) were applied; the rest is held back, flagged stale.
        held = watch.current()
        assert held.stale and len(held) >= 4
        assert "steady" in {n.id for n in held.nodes}
        assert reports[0].known == 6 and reports[0].remaining <= 3
        assert watch.shrinks_held == 1

        for i in range(5):  # they come back
            await register(stub, node(f"short{i}"), ttl=30)
        await eventually(lambda: not watch.stale, timeout=10, message="hold released")
        assert {n.id for n in watch.current().nodes} == {"steady", *(f"short{i}" for i in range(5))}
        assert steady.state is RegistrationState.ACTIVE


async def test_a_held_shrink_is_accepted_once_it_has_lasted(start_frontend, connect):
    frontend = await start_frontend(
        watch_progress_seconds=0.2, eviction_budget_minimum=100, eviction_budget_type_minimum=100
    )
    stub = connect(frontend)
    config = WatchConfig(shrink_hold_seconds=1.0)
    async with RegistryClient(frontend.address, config=FAST) as client:
        watch = await client.watch_nodes(config=config)
        await client.register(data_node("steady"))
        for i in range(4):
            await register(stub, node(f"short{i}"), ttl=3)
        await watch.wait_for(lambda nodes: len(nodes) == 5, 5)
        await eventually(lambda: watch.stale, timeout=15)
        await watch.wait_for(lambda nodes: not nodes.stale and len(nodes) == 1, 10)


async def test_a_deliberate_mass_deregister_is_not_held_back(start_frontend):
    frontend = await start_frontend()
    reports = []
    async with RegistryClient(frontend.address, config=FAST) as client:
        watch = await client.watch_nodes(config=WatchConfig(on_suspicious_shrink=reports.append))
        registrations = [await client.register(data_node(f"n{i}")) for i in range(6)]
        await watch.wait_for(lambda nodes: len(nodes) == 6, 5)
        await asyncio.gather(*(r.close() for r in registrations[1:]))
        await watch.wait_for(lambda nodes: len(nodes) == 1, 5)
        assert not watch.stale and reports == []


async def test_sync_facade_registers_lists_watches_and_closes(start_frontend):
    frontend = await start_frontend()

    def script() -> tuple[list[str], list[str], str]:
        events: list[str] = []
        with SyncRegistryClient(frontend.address, config=FAST) as client:
            watch = client.watch_nodes(
                on_event=lambda e: events.append(f"{e.type.value} {e.node.id}")
            )
            registration = client.register(data_node("sync1"))
            listed = [n.id for n in client.get_nodes()]
            state = registration.state.value
            eventually_sync(lambda: "ADDED sync1" in events, timeout=5, message="ADDED seen")
            current = [n.id for n in watch.current()]
            registration.close()
            eventually_sync(lambda: "REMOVED sync1" in events, timeout=5, message="REMOVED seen")
            watch.close()
        assert current == ["sync1"]
        return listed, events, state

    listed, events, state = await asyncio.to_thread(script)
    assert listed == ["sync1"]
    assert state == "ACTIVE"
    assert events == ["ADDED sync1", "REMOVED sync1"]
