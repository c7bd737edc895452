"""Datacenters as failure domains (docs/design.md §10): two datacenters, each with its own etcd and
frontends (processes), each following the other through TCP proxies that stand for the WAN link.

Per-datacenter exactly-once is checked with the history checker, one registry at a time: each
registry's part of every stream against that registry's own etcd history.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import pytest
from noderegistry.v1 import registry_pb2 as pb

from client_sdk import (
    EventType,
    Node,
    NodeEvent,
    RegistrationState,
    RegistryClient,
    Scope,
)
from registry_service.process.embedded_etcd import EtcdServer
from registry_service.settings import Settings
from tests.chaos.conftest import FLEET
from tests.conftest import start_etcd
from tests.support.datacenters import (
    Datacenter,
    WanLink,
    start_two_datacenters,
    stop_two_datacenters,
)
from tests.support.frontends import FrontendProcess
from tests.support.history import FederatedWatcher, check_federated_stream
from tests.support.http import put
from tests.support.ports import free_port
from tests.support.proxy import TcpProxy
from tests.support.sdk import collect, resumed_about
from tests.support.waiting import eventually

pytestmark = pytest.mark.chaos

Start = Callable[..., Awaitable[tuple[Datacenter, Datacenter, WanLink]]]


@pytest.fixture
def second_etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    server = start_etcd(tmp_path, "dc2-etcd")
    yield server
    server.stop()


@pytest.fixture
async def two_datacenters(
    spawn_frontend: Callable[..., Awaitable[FrontendProcess]], cluster: str
) -> AsyncIterator[Start]:
    started: list[tuple[Datacenter, Datacenter, WanLink]] = []

    async def start(
        dc1_members: Sequence[EtcdServer], dc2_members: Sequence[EtcdServer], **options: object
    ) -> tuple[Datacenter, Datacenter, WanLink]:
        rig = await start_two_datacenters(
            spawn_frontend,
            dc1_members,
            dc2_members,
            cluster,
            **options,  # type: ignore[arg-type]
        )
        started.append(rig)
        return rig

    yield start
    for dc1, dc2, link in started:
        await stop_two_datacenters(dc1, dc2, link=link)


def node(node_id: str, datacenter: str) -> Node:
    return Node(node_id, "data", datacenter, f"{node_id}.{datacenter}.example:7000")


async def caught_up(watchers: Sequence[FederatedWatcher], dc1: Datacenter, dc2: Datacenter) -> None:
    """Every watcher of dc1 has reached both registries' current revisions (and those of dc2)."""
    revisions = {dc1.name: await dc1.revision(), dc2.name: await dc2.revision()}
    for watcher in watchers:
        local = dc1.name if watcher.target in dc1.targets else dc2.name
        remote = dc2.name if local == dc1.name else dc1.name
        await eventually(
            lambda w=watcher, lo=local, re=remote: (
                w.revisions.get("", 0) >= revisions[lo] and w.revisions.get(re, 0) >= revisions[re]
            ),
            timeout=30,
            message=f"watcher on {watcher.target} caught up",
        )


async def followed_up_to(targets: Sequence[str], datacenter: str, revision: int) -> None:
    """Each of these frontends has followed `datacenter` up to `revision` (a watch's view)."""
    for target in targets:
        probe = FederatedWatcher(target).start()
        try:
            await eventually(
                lambda p=probe: p.revisions.get(datacenter, 0) >= revision,
                timeout=15,
                message=f"{target} followed {datacenter} to {revision}",
            )
        finally:
            await probe.close()


async def check_every_stream(
    watchers: Sequence[FederatedWatcher], dc1: Datacenter, dc2: Datacenter
) -> None:
    """W1/W2 per datacenter for every watcher (exactly-once, in order, no gap)."""
    await caught_up(watchers, dc1, dc2)
    histories = {dc.name: await dc.history(await dc.revision()) for dc in (dc1, dc2)}
    for watcher in watchers:
        local, remote = (dc1, dc2) if watcher.target in dc1.targets else (dc2, dc1)
        per_registry = {"": histories[local.name], remote.name: histories[remote.name]}
        assert check_federated_stream(watcher.messages, per_registry) == [], watcher.target


async def test_registrations_in_each_datacenter_appear_in_the_other(
    own_etcd, second_etcd, two_datacenters, record_property
):
    """1. two datacenters, two frontends each, each following the other over the WAN link;
    2. a federated watcher on every frontend;
    3. one client with targets per datacenter registers three nodes in each (routed by the
       node's datacenter), then deregisters one of each;
    4. every watcher holds both datacenters' nodes; the cross-datacenter latency is measured;
    5. every stream, per datacenter, is exactly that datacenter's etcd history."""
    dc1, dc2, _ = await two_datacenters([own_etcd], [second_etcd])
    watchers = [FederatedWatcher(t).start() for t in [*dc1.targets, *dc2.targets]]
    targets = {"dc1": dc1.targets, "dc2": dc2.targets}
    latencies: list[float] = []
    try:
        async with RegistryClient(targets, config=FLEET) as client:
            registrations = []
            for i in range(3):
                for here, there in ((dc1, dc2), (dc2, dc1)):
                    registration = await client.register(node(f"{here.name}-n{i}", here.name))
                    registrations.append(registration)
                    written = time.monotonic()
                    far_watcher = next(w for w in watchers if w.target == there.targets[0])
                    await eventually(
                        lambda w=far_watcher, r=registration, h=here.name: r.node.id in w.nodes(h),
                        timeout=10,
                        interval=0.005,
                        message=f"{registration.key} in {there.name}",
                    )
                    latencies.append(time.monotonic() - written)
            for registration in (registrations[0], registrations[1]):
                await registration.close()
            expected = {
                "dc1": {"dc1-n1", "dc1-n2"},
                "dc2": {"dc2-n1", "dc2-n2"},
            }
            for watcher in watchers:
                local = "dc1" if watcher.target in dc1.targets else "dc2"
                remote = "dc2" if local == "dc1" else "dc1"
                await eventually(
                    lambda w=watcher, lo=local, re=remote: (
                        w.nodes("") == expected[lo] and w.nodes(re) == expected[re]
                    ),
                    timeout=15,
                    message=f"both datacenters on {watcher.target}",
                )
        await check_every_stream(watchers, dc1, dc2)
    finally:
        for watcher in watchers:
            await watcher.close()
    # Measured, not asserted (rule 4): bench/ has the figure; the test records it.
    record_property("cross_datacenter_latency_median_seconds", statistics.median(latencies))
    record_property("cross_datacenter_latency_max_seconds", max(latencies))


async def test_a_cut_link_stops_neither_datacenter_and_heals_without_gap_or_duplicate(
    etcd_cluster, second_etcd, two_datacenters, record_property
):
    """1. dc1 on three etcd members, dc2 on one; two frontends each; dc2's frontends keep a
       history of two revisions only, so that dc1's followers must relist dc2 after the cut,
       while dc2's followers resume dc1 from their revision;
    2. four nodes renewing in each datacenter (TTL 3 s), a federated watcher on every frontend,
       and an SDK watch in each datacenter;
    3. the WAN link is blackholed for three TTLs; meanwhile each datacenter registers three
       nodes and deregisters one of its own;
    4. each side shows the other stale, its nodes as before the cut (never emptied), and keeps
       every renewal of its own (no registration lost, nothing evicted across the cut);
    5. healed, each side converges on the other's nodes, fresh; dc1 got dc2's net difference
       flagged relisted, dc2 got dc1's exact changes;
    6. every stream, per datacenter, is exactly that datacenter's etcd history."""
    dc1, dc2, link = await two_datacenters(
        etcd_cluster, [second_etcd], dc2={"watch_history_revisions": 2}
    )
    targets = {"dc1": dc1.targets, "dc2": dc2.targets}
    watchers = [FederatedWatcher(t).start() for t in [*dc1.targets, *dc2.targets]]
    async with (
        RegistryClient(targets, config=FLEET) as client,
        RegistryClient({"dc2": dc2.targets}, config=FLEET) as dc2_client,
    ):
        fleet = {
            dc: [await client.register(node(f"{dc}-n{i}", dc), ttl_seconds=3) for i in range(4)]
            for dc in ("dc1", "dc2")
        }
        views = {"dc1": await client.watch_nodes(Scope()), "dc2": await dc2_client.watch_nodes()}
        for view in views.values():
            await view.wait_for(lambda nodes: len(nodes) == 8 and not nodes.stale, timeout=15)
        before = {dc: {n.id for n in views[dc].current()} for dc in views}

        link.blackhole()
        cut_at = time.monotonic()
        for i in range(3):
            for dc in ("dc1", "dc2"):
                fleet[dc].append(await client.register(node(f"{dc}-cut{i}", dc), ttl_seconds=3))
        for dc in ("dc1", "dc2"):
            await fleet[dc].pop(0).close()  # deregistered: the one removal each side makes
        for here, there in (("dc1", "dc2"), ("dc2", "dc1")):
            nodes = await views[here].wait_for(
                lambda nodes, t=there: nodes.datacenter_states[t].stale, timeout=10
            )
            held = {n.id for n in nodes.datacenters[there]}
            assert held == {i for i in before[here] if i.startswith(there)}, "never emptied"
            record_property(f"{here}_shows_{there}_stale_after_seconds", time.monotonic() - cut_at)
        remaining = 9 - (time.monotonic() - cut_at)
        if remaining > 0:
            # The fault's length, not a wait for a condition: the partition lasts three TTLs.
            await asyncio.sleep(remaining)
        for dc in ("dc1", "dc2"):
            mine = {n.id for n in views[dc].current().datacenters[dc]}
            assert mine == {r.node.id for r in fleet[dc]}, f"{dc} kept every node of its own"
            assert all(r.state is RegistrationState.ACTIVE for r in fleet[dc])
            assert all(r.reregistrations == 0 for r in fleet[dc])
            assert views[dc].current().datacenter_states[dc].stale is False

        link.restore()
        healed_at = time.monotonic()
        everyone = {r.node.id for dc in fleet for r in fleet[dc]}
        for view in views.values():
            await view.wait_for(
                lambda nodes: {n.id for n in nodes} == everyone and not nodes.stale, timeout=30
            )
        record_property("converged_after_heal_seconds", time.monotonic() - healed_at)
        assert all(view.shrinks_held == 0 for view in views.values()), "no shrink guard fired"
        await check_every_stream(watchers, dc1, dc2)
        relisted = {
            (w.target in dc1.targets, m.delta.datacenter)
            for w in watchers
            for m in w.messages
            if m.WhichOneof("message") == "delta" and m.delta.relisted
        }
        assert (True, "dc2") in relisted and (False, "dc1") not in relisted
        removed = {
            e.node.id
            for w in watchers
            for m in w.messages
            if m.WhichOneof("message") == "delta"
            for e in m.delta.events
            if e.type == pb.EVENT_TYPE_REMOVED
        }
        assert removed == {"dc1-n0", "dc2-n0"}, "only the deregistered nodes ever left"
    for watcher in watchers:
        await watcher.close()


async def test_a_watch_resumed_with_a_vector_on_another_frontend_gets_exactly_the_missed_changes(
    own_etcd, second_etcd, two_datacenters
):
    """1. two datacenters, two frontends each; both of dc1's frontends follow dc2 (a follower
       resumes exactly from the revision it first reached dc2 at: a vector from before that
       gets a resync of dc2 alone);
    2. a federated watcher on dc1's first frontend reads its snapshot of both datacenters and
       goes away, holding the vector {dc1's revision, dc2: its revision};
    3. meanwhile dc1 registers two nodes and deregisters one, dc2 registers two;
    4. resumed on dc1's second frontend with that vector (once it has followed dc2 that far);
    5. it gets no snapshot, and exactly the changes of each datacenter after its revision."""
    dc1, dc2, _ = await two_datacenters([own_etcd], [second_etcd])
    await followed_up_to(dc1.targets, "dc2", await dc2.revision())
    first = FederatedWatcher(dc1.targets[0]).start()
    await eventually(lambda: first.revisions.get("dc2"), timeout=15, message="both datacenters")
    await first.close()
    local, vector = first.revisions[""], {"dc2": first.revisions["dc2"]}

    targets = {"dc1": dc1.targets, "dc2": dc2.targets}
    async with RegistryClient(targets, config=FLEET) as client:
        a = await client.register(node("a", "dc1"))
        await client.register(node("b", "dc1"))
        await a.close()
        await client.register(node("x", "dc2"))
        await client.register(node("y", "dc2"))
        until = {"dc1": await dc1.revision(), "dc2": await dc2.revision()}
        await followed_up_to(dc1.targets[1:], "dc2", until["dc2"])

        resumed = FederatedWatcher(dc1.targets[1], local, dict(vector)).start()
        await eventually(
            lambda: (
                resumed.revisions.get("", 0) >= until["dc1"]
                and resumed.revisions.get("dc2", 0) >= until["dc2"]
            ),
            timeout=15,
            message="resumed watcher caught up",
        )
        await resumed.close()
    assert not [m for m in resumed.messages if m.WhichOneof("message") == "snapshot"]
    missed = {}
    for registry, dc, since in (("", dc1, local), ("dc2", dc2, vector["dc2"])):
        history = await dc.history(until[dc.name])
        missed[dc.name] = [(c.kind, c.node_id) for c in history.after(since, until[dc.name])]
        got = [
            (pb.EventType.Name(e.type).removeprefix("EVENT_TYPE_"), e.node.id)
            for m in resumed.messages
            if m.WhichOneof("message") == "delta" and m.delta.datacenter == registry
            for e in m.delta.events
        ]
        assert got == missed[dc.name], dc.name
    assert missed == {
        "dc1": [("ADDED", "a"), ("ADDED", "b"), ("REMOVED", "a")],
        "dc2": [("ADDED", "x"), ("ADDED", "y")],
    }


async def test_a_watch_resumed_on_a_frontend_whose_copy_lags_never_steps_back_in_time(
    etcd_cluster, second_etcd, two_datacenters, spawn_frontend
):
    """Issue 22, item 1 (D80).
    1. dc1 on three etcd members with frontend A, dc2 on one with frontend X; a second dc1
       frontend B follows dc2 over a link of its own, whose silence timeout is long (its copy
       lags without turning stale: the worst case);
    2. six dc2 nodes; an SDK watch of both datacenters on A sees them;
    3. B's link is blackholed; three more dc2 nodes register: A follows, B's copy lags;
    4. A is SIGKILLed: the watch resumes its vector on B. It keeps all nine dc2 nodes at its dc2
       revision, marked stale (never B's older list); a raw stream resumed on B with the same
       vector is sent nothing of dc2 older than that revision either;
    5. B's link heals: the watch turns fresh, a new dc2 node arrives, and no node was ever
       removed or added twice (the lagging copy's changes are not delivered a second time);
       the raw stream's dc2 deltas are exactly dc2's changes after its revision."""
    dc1, dc2, _ = await two_datacenters(etcd_cluster, [second_etcd], frontends=1)
    lagging_link = TcpProxy("127.0.0.1", int(dc2.targets[0].rsplit(":", 1)[1]))
    await lagging_link.start()
    lagging = await spawn_frontend(
        ",".join(member.endpoint for member in etcd_cluster),
        listen=f"127.0.0.1:{free_port()}",
        datacenter="dc1",
        remote_datacenters=f"dc2={lagging_link.endpoint}",
        remote_silence_seconds=120.0,
    )
    first = dc1.frontends[0]
    targets = {"dc1": [first.address, lagging.address], "dc2": dc2.targets}
    events: list[NodeEvent] = []
    raw: FederatedWatcher | None = None
    try:
        async with (
            RegistryClient(targets, config=FLEET) as client,
            RegistryClient([first.address, lagging.address], config=FLEET) as watcher,
        ):
            for i in range(6):
                await client.register(node(f"dc2-n{i}", "dc2"))
            await followed_up_to([first.address, lagging.address], "dc2", await dc2.revision())
            watch = await watcher.watch_nodes(Scope())
            await watch.wait_for(lambda nodes: len(nodes.datacenters.get("dc2", ())) == 6, 15)
            stream, steps = watch.events(), watch.steps()
            collecting = asyncio.create_task(collect(stream, events))

            lagging_link.blackhole()
            for i in range(3):
                await client.register(node(f"dc2-x{i}", "dc2"))
            nine = await watch.wait_for(lambda nodes: len(nodes.datacenters["dc2"]) == 9, 15)
            held = watch.revisions["dc2"]
            local = watch.revision
            assert nine.datacenter_states["dc2"].revision == held

            first.kill()
            await resumed_about(steps, "dc2")
            after = watch.current()
            assert len(after.datacenters["dc2"]) == 9, "no dc2 node vanished"
            assert watch.revisions["dc2"] >= held, "the dc2 revision never went back"
            assert after.datacenter_states["dc2"].stale, "B's copy lags: dc2 shown stale"
            raw = FederatedWatcher(lagging.address, local, {"dc2": held}).start()
            await eventually(
                lambda: any(m.WhichOneof("message") for m in raw.messages),
                timeout=15,
                message="the raw stream resumed on B",
            )
            assert [r for r in _dc2_revisions(raw) if r < held] == [], "nothing older sent"

            lagging_link.restore()
            await client.register(node("dc2-y", "dc2"))
            await watch.wait_for(
                lambda nodes: len(nodes.datacenters["dc2"]) == 10 and not nodes.stale, 30
            )
            until = await dc2.revision()
            await eventually(lambda: raw.revisions.get("dc2", 0) >= until, timeout=30)
            steps.close()
            stream.close()
            await collecting
    finally:
        if raw is not None:
            await raw.close()
        await lagging_link.close()
    assert [e for e in events if e.type is EventType.REMOVED] == []
    added = [e.node.id for e in events if e.type is EventType.ADDED]
    assert sorted(added) == ["dc2-x0", "dc2-x1", "dc2-x2", "dc2-y"], "each added once"
    history = await dc2.history(until)
    changes = [(c.kind, c.node_id) for c in history.after(held, until)]
    got = [
        (pb.EventType.Name(e.type).removeprefix("EVENT_TYPE_"), e.node.id)
        for m in raw.messages
        if m.WhichOneof("message") == "delta"
        and m.delta.datacenter == "dc2"
        and m.delta.revision <= until  # the clients' deregistrations at their close came later
        for e in m.delta.events
    ]
    assert got == changes == [("ADDED", "dc2-y")]


def _dc2_revisions(watcher: FederatedWatcher) -> list[int]:
    """The dc2 revision of every message of a raw stream that carries one."""
    revisions = []
    for message in watcher.messages:
        kind = message.WhichOneof("message")
        body = getattr(message, str(kind))
        if getattr(body, "datacenter", "") == "dc2":
            revisions.append(body.revision)
        elif kind == "snapshot":
            revisions.extend(
                dc.complete_revision
                for dc in body.datacenters
                if dc.datacenter == "dc2" and dc.complete_revision
            )
    return revisions


async def test_a_remote_datacenter_losing_its_etcd_is_shown_stale_at_once(
    own_etcd, second_etcd, two_datacenters, record_property
):
    """Issue 22, item 4 (D81).
    1. two datacenters, one frontend each; idle progress only every 60 s, silence timeout 120 s
       (so neither can be what brings the news);
    2. dc2's etcd freezes: dc2's frontend turns stale and tells its subscribers at once, dc1's
       follower among them, which tells dc1's: an SDK watch on dc1 shows dc2 stale;
    3. dc2's etcd resumes: the watch shows dc2 fresh again, as soon as dc2's frontend is."""
    slow = {"watch_progress_seconds": 60.0, "remote_silence_seconds": 120.0}
    dc1, dc2, _ = await two_datacenters([own_etcd], [second_etcd], frontends=1, dc1=slow, dc2=slow)
    async with RegistryClient({"dc1": dc1.targets, "dc2": dc2.targets}, config=FLEET) as client:
        await client.register(node("far", "dc2"), ttl_seconds=120)
        await client.register(node("near", "dc1"), ttl_seconds=120)
        watch = await client.watch_nodes(Scope())
        await watch.wait_for(lambda nodes: len(nodes) == 2 and not nodes.stale, timeout=30)
        second_etcd.pause()
        frozen_at = time.monotonic()
        try:
            nodes = await watch.wait_for(
                lambda nodes: nodes.datacenter_states["dc2"].stale, timeout=15
            )
            record_property("dc2_stale_in_dc1_after_seconds", time.monotonic() - frozen_at)
            assert [n.id for n in nodes.datacenters["dc2"]] == ["far"], "kept as it was"
            assert not nodes.datacenter_states["dc1"].stale
        finally:
            second_etcd.resume()
        resumed_at = time.monotonic()
        await watch.wait_for(lambda nodes: not nodes.stale, timeout=30)
        record_property("dc2_fresh_in_dc1_after_seconds", time.monotonic() - resumed_at)


async def test_with_the_defaults_a_silent_link_is_stale_in_time_and_a_link_back_is_followed(
    own_etcd, second_etcd, two_datacenters, record_property
):
    """Issue 22, item 4 (D81): the bounds with the default settings.
    1. two datacenters, one frontend each, the default progress interval and silence timeout;
    2. a dc2 node registers; the moment dc1's watch has it (the follower's last message), the
       link is blackholed: dc2 is shown stale within the silence timeout (15 s before D81);
    3. the link is severed (connections refused) long enough for every retry to back off to
       its longest, then restored: dc1 follows dc2 again within a few seconds (2 s between
       tries plus gRPC's reconnect backoff; before D81 the follower's tries were up to 10 s
       apart)."""
    defaults = Settings()
    options = {
        "watch_progress_seconds": defaults.watch_progress_seconds,
        "remote_silence_seconds": defaults.remote_silence_seconds,
    }
    dc1, dc2, link = await two_datacenters(
        [own_etcd], [second_etcd], frontends=1, dc1=options, dc2=options
    )
    async with RegistryClient({"dc1": dc1.targets, "dc2": dc2.targets}, config=FLEET) as client:
        watch = await client.watch_nodes(Scope())
        await client.register(node("probe", "dc2"), ttl_seconds=120)
        await watch.wait_for(lambda nodes: "dc2" in nodes.datacenters, timeout=30)
        link.blackhole()
        cut_at = time.monotonic()
        await watch.wait_for(
            lambda nodes: nodes.datacenter_states["dc2"].stale,
            timeout=defaults.remote_silence_seconds + 3,
        )
        record_property("stale_after_blackhole_seconds", time.monotonic() - cut_at)

        link.sever()
        # The fault's length, not a wait for a condition: every retry backs off to its longest.
        await asyncio.sleep(20)
        link.restore()
        restored_at = time.monotonic()
        await watch.wait_for(lambda nodes: not nodes.stale, timeout=6)
        record_property("followed_after_restore_seconds", time.monotonic() - restored_at)
        assert [n.id for n in watch.current().datacenters["dc2"]] == ["probe"]


async def test_while_a_datacenters_pushes_are_off_the_others_show_it_stale(
    own_etcd, second_etcd, two_datacenters, record_property
):
    """Issue 22, item 5 (D82).
    1. two datacenters, one frontend each; an SDK watch on dc1 sees a dc2 node, fresh;
    2. dc2's operator switches pushes off: dc1's follower is held like every subscriber of dc2
       and is told so (its progress says stale): dc1's watch shows dc2 stale, its list as it
       was;
    3. a dc2 node registers meanwhile (its delta is held);
    4. pushes on again: dc1's watch has the new node, and dc2 is fresh."""
    dc1, dc2, _ = await two_datacenters([own_etcd], [second_etcd], frontends=1)
    admin = dc2.frontends[0].ready_line.split("admin ")[1].split(")")[0]
    async with RegistryClient({"dc1": dc1.targets, "dc2": dc2.targets}, config=FLEET) as client:
        await client.register(node("before", "dc2"), ttl_seconds=120)
        watch = await client.watch_nodes(Scope())
        await watch.wait_for(lambda nodes: len(nodes) == 1 and not nodes.stale, timeout=30)
        status, body = await put(f"{admin}/admin/push", {"enabled": False})
        assert status == 200, body
        switched_at = time.monotonic()
        nodes = await watch.wait_for(lambda nodes: nodes.datacenter_states["dc2"].stale, 15)
        record_property("dc2_stale_in_dc1_after_push_off_seconds", time.monotonic() - switched_at)
        assert [n.id for n in nodes.datacenters["dc2"]] == ["before"]
        await client.register(node("held", "dc2"), ttl_seconds=120)
        status, body = await put(f"{admin}/admin/push", {"enabled": True})
        assert status == 200, body
        nodes = await watch.wait_for(lambda nodes: len(nodes) == 2 and not nodes.stale, 15)
        assert sorted(n.id for n in nodes.datacenters["dc2"]) == ["before", "held"]
