"""Flap damping (docs/design.md §13): a node that flips health, or registers anew, too often is
held FAILING with a penalty that decays, so that its subscribers see far fewer events; audited
and counted. Real frontends, real etcd, a real gRPC health server on loopback.

The issue's shape is "a node flapping every second for a minute". Here every time is five times
shorter (flips every 0.2 s, sixty of them; the damping half-life and the longest hold five
times shorter than their defaults), the penalties are the defaults: the same shape, in 12 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import pytest

from client_sdk import (
    Check,
    EventStream,
    EventType,
    Health,
    Node,
    NodeEvent,
    RegistryClient,
    Scope,
)
from registry_service.domain import AuditCause, NodeKey
from registry_service.settings import Settings
from tests.support.health_servers import GrpcHealthServer
from tests.support.ports import free_port
from tests.support.sdk import FAST
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

SCALE = 5.0  # every time of the shape, divided by this
FLIP_SECONDS = 1.0 / SCALE
FLIPS = 60
DEFAULTS = Settings()
SCALED = {
    "health_check_min_interval_seconds": 0.05,
    "damping_half_life_seconds": DEFAULTS.damping_half_life_seconds / SCALE,
    "damping_max_suppress_seconds": DEFAULTS.damping_max_suppress_seconds / SCALE,
}
# Probed four times per flip, each probe enough to flip the check (1 failure, 1 pass); the
# service's port is set once it listens.
CHECK = Check.grpc(
    "flappy",
    interval_seconds=FLIP_SECONDS / 4,
    timeout_seconds=FLIP_SECONDS / 4,
    failures_before_failing=1,
    passes_before_passing=1,
)


async def _events_of(events: EventStream, node_id: str, seen: list[NodeEvent]) -> None:
    """Every event a subscriber of the node's type gets about it, until cancelled."""
    async for event in events:
        if event.node.id == node_id:
            seen.append(event)


async def test_a_node_flapping_for_a_minute_costs_its_subscribers_a_tenth_of_the_events(
    start_frontend, cluster
):
    service = await GrpcHealthServer().start()
    await service.set("flappy", True)
    try:
        check = dataclasses.replace(CHECK, port=service.port)
        # Two registries side by side (two prefixes of one etcd), probing the same flapping service:
        # the baseline without damping, measured in the same run.
        plain = await start_frontend(
            etcd_prefix=f"/{cluster}-plain/", damping_suppress_penalty=0, **SCALED
        )
        damped = await start_frontend(etcd_prefix=f"/{cluster}-damped/", **SCALED)
        seen: dict[str, list[NodeEvent]] = {"plain": [], "damped": []}
        readers = []
        async with (
            RegistryClient(plain.address, config=FAST) as plain_client,
            RegistryClient(damped.address, config=FAST) as damped_client,
        ):
            for name, client in (("plain", plain_client), ("damped", damped_client)):
                # Subscribed before the node registers: its registration is the first event.
                watch = await client.watch_nodes(Scope.of(types="flap"))
                readers.append(asyncio.create_task(_events_of(watch.events(), "f1", seen[name])))
                node = Node("f1", "flap", "dc1", f"127.0.0.1:{free_port()}")
                await client.register(node, checks=[check])
            await eventually(lambda: len(seen["plain"]) and len(seen["damped"]), message="ADDED")
            await eventually(lambda: service.probes.count("flappy") >= 8, message="probed by both")
            before = {name: len(events) for name, events in seen.items()}

            # 1. Sixty flips, one every FLIP_SECONDS: failing, serving, failing, ...
            for flip in range(FLIPS):
                await service.set("flappy", flip % 2 == 1)
                await asyncio.sleep(FLIP_SECONDS)  # the flapping itself is the scenario's clock
            # The last flip (serving) probed by both registries since, and the baseline's
            # subscriber told: every flip's write has landed.
            probed = service.probes.count("flappy")
            await eventually(
                lambda: (
                    service.probes.count("flappy") >= probed + 4
                    and seen["plain"][-1].node.health is Health.PASSING
                ),
                message="the last flip seen by the baseline's subscriber",
            )
            for reader in readers:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            counts = {name: len(events) - before[name] for name, events in seen.items()}

        # 2. Without damping every flip reached the subscriber; with it, a tenth at most.
        assert counts["plain"] >= FLIPS // 2, counts
        assert counts["damped"] <= counts["plain"] / 10, counts
        last = seen["damped"][-1]
        assert (last.type, last.node.health, last.node.damped) == (
            EventType.UPDATED,
            Health.FAILING,
            True,
        )
        # 3. Audited and counted: the damping in the node's trail, the held flips in the keeper's.
        trail = await damped.operations.audit(NodeKey("dc1", "flap", "f1"))
        assert [entry.cause for entry in trail].count(AuditCause.DAMPED) == 1
        assert damped.health_checks.stats.damped_flaps >= FLIPS // 2
        assert plain.health_checks.stats.damped_flaps == 0
    finally:
        await service.stop()


async def test_a_crash_loop_of_registrations_is_damped_then_released_once_it_stops(
    start_frontend,
):
    # Short times (a 2 s half-life, a 4 s longest hold), so that the release is seen.
    frontend = await start_frontend(
        damping_half_life_seconds=2.0,
        damping_max_suppress_seconds=4.0,
        damping_suppress_penalty=1800.0,
        damping_reuse_penalty=500.0,
    )
    node = Node("c1", "crash", "dc1", "127.0.0.1:7000")
    async with RegistryClient(frontend.address, config=FAST) as client:
        healthy = await client.watch_nodes(Scope.of(types="crash", healthy_only=True))
        everything = await client.watch_nodes(Scope.of(types="crash"))
        # 1. The same id registers anew again and again (a process in a crash loop).
        registration = await client.register(node)
        attempts = 1
        while not registration.node.damped and attempts < 8:
            await registration.close()
            registration = await client.register(node)
            attempts += 1
        assert registration.node.damped and registration.node.health is Health.FAILING
        assert attempts >= 3  # the first registration is free, the next ones add up
        await everything.wait_for(lambda nodes: any(n.damped for n in nodes), timeout=5)
        assert len(healthy.current()) == 0  # held: healthy-only readers are not offered it

        # 2. It stays registered: once its penalty decays, its keeper releases it.
        released = await everything.wait_for(
            lambda nodes: any(not n.damped for n in nodes), timeout=4.0 + 3
        )
        assert released.nodes[0].health is Health.UNCHECKED
        await healthy.wait_for(lambda nodes: len(nodes) == 1, timeout=2)
    # 3. Audited: the registration that came back damped says why; then its release.
    trail = await frontend.operations.audit(NodeKey("dc1", "crash", "c1"))
    damped_at = next(i for i, entry in enumerate(trail) if "flap penalty" in entry.detail)
    assert trail[damped_at].cause is AuditCause.REGISTERED
    assert "registered anew too often" in trail[damped_at].detail
    assert [entry.cause for entry in trail[damped_at + 1 :]] == [
        AuditCause.UNDAMPED,
        AuditCause.DEREGISTERED,
    ]
