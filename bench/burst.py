"""A fleet restart over a registry that holds leases (issue 21): Registers sent unpaced, 128 in
flight, by one SDK client, while SDK client processes keep renewing the leases they hold.

The registry gets a registry of its own (bench/stack.py). Its figures: the share of the held
leases' renewals on time during the burst (their share in the seconds before it is the same-run
baseline), the burst's completion, the held leases that expired (etcd deleted their live key), the
nodes the registry showed as SUSPECT or REMOVED, the frontend's own leases lost. The baseline of the
whole row is etcd with a Python client: as many bare leases held over LeaseKeepAlive by as many
processes, through as many direct registrations (lease + guarded put) sent as fast.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.harness import Bench
from bench.health import HealthWindow
from bench.holding import HolderFleet
from bench.registrations import direct_registrations
from bench.stack import connected, own_etcd, own_registry
from bench.system import CpuShare
from registry_service.store.etcd_client import EtcdClient, EtcdConfig

HOLD_IN_FLIGHT = 32


async def register_burst(bench: Bench) -> None:
    config = bench.config["burst"]
    held, holders, burst = config["held"], config["holders"], config["burst"]
    ttl, in_flight = config["ttl"], config["in_flight"]
    print(
        f"register burst: {burst:,} Registers ({in_flight} in flight) over {held:,} leases held by "
        f"{holders} SDK clients, TTL {ttl}",
        flush=True,
    )
    ours = await _registry_burst(bench, config)
    theirs = await _etcd_burst(bench, config)
    label = f"{burst:,} Registers ({in_flight} in flight) over {held:,} held, TTL {ttl}"
    results = bench.results
    results.add(
        f"burst: renewals on time during {label}",
        ours["during"].share * 100,
        "%",
        "the same leases before the burst",
        ours["before"].share * 100,
        etcd_client_on_time_pct=round(theirs["during"].share * 100, 2),
        late=ours["during"].late,
        refused=ours["during"].refused,
        sdk_registrations_not_active=ours["during"].registrations_not_active,
        frontend_cpu=ours["cpu"]["frontend"],
        etcd_cpu=ours["cpu"]["etcd"],
        etcd_wal_fsync_ms=round(ours["health"].wal_fsync_ms, 2),
        etcd_slow_applies=ours["health"].slow_applies,
        frontend_etcd_errors=ours["health"].frontend_etcd_errors,
    )
    results.add(
        f"burst: renewals on time in the TTL after {label}",
        ours["after"].share * 100,
        "%",
        "a Python etcd client's leases after a direct burst",
        theirs["after"].share * 100,
    )
    completed = ours["burst"]
    results.add(
        f"burst: {label}: completed in",
        completed["seconds"],
        "s",
        "direct etcd lease + txn, as many as fast",
        theirs["burst_seconds"],
        registered=completed["registered"],
        refused=completed["refused"],
        unregistered=completed["unregistered"],
        failed=completed["failed"],
    )
    results.add(
        f"burst: {label}: held leases expired",
        ours["expired"],
        "leases",
        "a Python etcd client's leases through a direct burst",
        theirs["expired"],
        burst_leases_expired=ours["burst_expired"],
        removed=ours["removed"],
        given_up_registrations_expired=ours["abandoned_expired"],
    )
    results.add(f"burst: {label}: nodes shown SUSPECT", ours["suspect"], "nodes")
    results.add(
        f"burst: {label}: frontend's own keys expired (evictor candidacy, announcement)",
        ours["own_keys"],
        "keys",
    )
    finished = completed["registered"] == burst
    met = (
        finished
        and ours["expired"] == 0
        and ours["burst_expired"] == 0
        and ours["suspect"] == 0
        and ours["during"].share >= 0.99
    )
    results.goal(
        f"{label}: 0 false expiries, 0 SUSPECT, >= 99% renewals on time, the burst completes",
        met,
        f"{ours['expired']} held + {ours['burst_expired']} burst leases expired, "
        f"{ours['suspect']} SUSPECT, {ours['during'].describe()}; burst "
        + (
            f"completed in {completed['seconds']:.1f} s"
            if finished
            else f"left {burst - completed['registered']:,} unregistered after "
            f"{completed['seconds']:.0f} s"
        )
        + f" (a Python etcd client: {theirs['during'].share:.1%} on time, "
        f"{theirs['expired']} expired)",
    )


async def _registry_burst(bench: Bench, config: dict[str, Any]) -> dict[str, Any]:
    ttl, period = config["ttl"], config["ttl"] / 3
    async with own_registry(bench.processes, bench.workdir, "burst") as registry:
        log = bench.workdir / "holders-burst.log"
        held = HolderFleet(bench.processes, registry.frontend.target, ttl, "held", log)
        await held.grow(config["holders"])
        added = await held.add(config["held"], config["pace"], HOLD_IN_FLIGHT, _bound(config))
        print(f"    held: {added}", flush=True)
        await asyncio.sleep(period)  # past the first renewals, which come early
        started = time.monotonic()
        await asyncio.sleep(config["before_seconds"])
        before = await held.report(started, time.monotonic())
        burst = HolderFleet(bench.processes, registry.frontend.target, ttl, "burst", log)
        await burst.grow(1)
        cpu = CpuShare(frontend=registry.frontend.pid, etcd=registry.etcd.process.pid)
        health = HealthWindow(registry.etcd.endpoint, registry.frontend.admin)
        await health.start()
        started = time.monotonic()
        completed = await burst.add(config["burst"], 0, config["in_flight"], _bound(config))
        cores = cpu.cores()
        below = await health.end()
        ended = completed["ended"]
        during = await held.report(started, ended)
        await asyncio.sleep(ttl + 2)  # a renewal missed during the burst expires within a TTL
        after = await held.report(ended, time.monotonic())
        expiries = registry.expiries
        held_ids, burst_ids = await held.ids(), await burst.ids()
        ours, theirs = expiries.among("held", held_ids), expiries.among("burst", burst_ids)
        figures = {
            "before": before,
            "during": during,
            "after": after,
            "burst": completed,
            "cpu": cores,
            "health": below,
            "expired": ours.expired,
            "burst_expired": theirs.expired,
            "suspect": ours.suspect + theirs.suspect,
            "removed": ours.removed + theirs.removed,
            "own_keys": sum(expiries.own_keys_deleted.values()),
            "abandoned_expired": len(expiries.live_deleted["held"] - held_ids)
            + len(expiries.live_deleted["burst"] - burst_ids),
        }
        print(
            f"    before {before.describe()}; during {during.describe()}; after "
            f"{after.describe()}; burst {completed}; frontend {cores}; {below.describe()}",
            flush=True,
        )
        held.stop()
        burst.stop()
        return figures


async def _etcd_burst(bench: Bench, config: dict[str, Any]) -> dict[str, Any]:
    """The baseline: bare leases held by as many etcd-client processes, through as many direct
    registrations sent as fast, on an etcd of its own."""
    ttl, period = config["ttl"], config["ttl"] / 3
    async with own_etcd(bench.workdir, "burst-baseline") as etcd:
        log = bench.workdir / "holders-burst-baseline.log"
        held = HolderFleet(bench.processes, etcd.endpoint, ttl, "held", log, mode="etcd")
        await held.grow(config["holders"])
        await held.add(config["held"], 0, 64, _bound(config))
        await asyncio.sleep(period)
        client = EtcdClient(EtcdConfig(endpoints=(etcd.endpoint,)))
        try:
            await connected(client)
            started = time.monotonic()
            await direct_registrations(client, config["burst"], ttl, in_flight=config["in_flight"])
            ended = time.monotonic()
        finally:
            await client.close()
        during = await held.report(started, ended)
        await asyncio.sleep(ttl + 2)
        after = await held.report(ended, time.monotonic())
        everything = await held.report(started, time.monotonic())
        held.stop()
        print(f"    etcd client: during {during.describe()}; after {after.describe()}", flush=True)
        return {
            "during": during,
            "after": after,
            "burst_seconds": ended - started,
            "expired": everything.refused_registrations,
        }


def _bound(config: dict[str, Any]) -> float:
    """How long registering may take before the row gives up on the rest (bounded load)."""
    return float(config["held"] / config["pace"] * 3 + 120)
