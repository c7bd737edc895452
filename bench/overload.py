"""Overload, then normal load (issue 21): a frontend process holding its measured capacity of
leases (clients holding many) gets as many again for a while, then the extra clients die; how long
until the original leases are renewed at their full rate again.

"Full rate": a renewal period (TTL/3) in which >= 99% of the original registrations got an
on-time renewal; the figure is the time from the overload's end to the start of the first such
period (0 when the renewals never fell behind), looked for in periods starting every 0.25 s for a
bounded time. The same-run baseline is the same leases' share on time before the overload.
"""

from __future__ import annotations

import asyncio
import math
import time

from bench.harness import Bench
from bench.health import HealthWindow
from bench.holding import HolderFleet
from bench.stack import own_registry
from bench.system import CpuShare

FULL_RATE = 0.99
STEP_SECONDS = 0.25


async def overload_recovery(bench: Bench, capacity: int) -> None:
    config = bench.config["overload"]
    ttl, period, pace = config["ttl"], config["ttl"] / 3, config["pace"]
    normal = capacity or config["normal_without_capacity"]
    seconds = config["overload_seconds"]
    source = "the capacity measured above" if capacity else "no capacity measured: a default"
    print(f"overload: 2x {normal:,} leases ({source}) for {seconds:.0f} s, then 1x", flush=True)
    label = f"overload: 2x capacity at TTL {ttl} for {seconds:.0f} s"
    label += config.get("label", "")
    async with own_registry(bench.processes, bench.workdir, "overload") as registry:
        log = bench.workdir / "holders-overload.log"
        target, per_process = registry.frontend.target, config["per_process"]
        base = HolderFleet(bench.processes, target, ttl, "base", log)
        extra = HolderFleet(bench.processes, target, ttl, "extra", log)
        try:
            await base.grow(math.ceil(normal / per_process))
            await base.add(normal, pace, 32, normal / pace * 2 + 60)
            await asyncio.sleep(period)
            started = time.monotonic()
            await asyncio.sleep(config["before_seconds"])
            before = await base.report(started, time.monotonic())
            await extra.grow(math.ceil(normal / per_process))
            began = time.monotonic()
            cpu = CpuShare(frontend=registry.frontend.pid, etcd=registry.etcd.process.pid)
            health = HealthWindow(registry.etcd.endpoint, registry.frontend.admin)
            await health.start()
            added = await extra.add(normal, pace, 32, normal / pace * 2 + 60)
            await asyncio.sleep(max(0.0, added["ended"] + seconds - time.monotonic()))
            during = await base.report(began, time.monotonic())
            cores = cpu.cores()
            below = await health.end()
            extra.stop()  # the extra clients die; their leases expire as a crashed node's do
            ended = time.monotonic()
            await asyncio.sleep(config["observe_seconds"])
            shares = await base.series(ended, time.monotonic(), STEP_SECONDS)
            fate = registry.expiries.among("base", await base.ids())
            expired, suspect = fate.expired, fate.suspect
        finally:
            base.stop()
            extra.stop()
    back = next((i for i, share in enumerate(shares) if share >= FULL_RATE), None)
    recovery = back * STEP_SECONDS if back is not None else None
    print(
        f"    before {before.describe()}; at 2x {during.describe()} (extra: {added}); "
        f"frontend {cores}; {below.describe()}; after: {[round(s, 3) for s in shares[::4]]}",
        flush=True,
    )
    results = bench.results
    results.add(
        f"{label}: renewals on time during the overload",
        during.share * 100,
        "%",
        "the same leases before the overload",
        before.share * 100,
        normal_leases=normal,
        extra_registered=added["registered"],
        extra_refused=added["refused"],
        frontend_cpu=cores["frontend"],
        etcd_cpu=cores["etcd"],
        etcd_wal_fsync_ms=round(below.wal_fsync_ms, 2),
        etcd_slow_applies=below.slow_applies,
        frontend_etcd_errors=below.frontend_etcd_errors,
    )
    if recovery is None:
        results.not_measured(
            f"{label}: time to full renewal rate after it",
            f"not back within {config['observe_seconds']:.0f} s",
        )
    else:
        results.add(
            f"{label}: time to full renewal rate after it",
            recovery,
            "s",
            "the TTL",
            ttl,
            worst_share_after=round(min(shares[back:]), 4),
        )
    results.add(f"{label}: original leases expired", expired, "leases", suspect=suspect)
    results.goal(
        f"{label} ({normal:,} + {normal:,} leases): full renewal rate again within one TTL "
        "of the overload's end, no original lease expired",
        # Recovered, and without losing a live registration on the way (the point).
        recovery is not None and recovery <= ttl and expired == 0,
        (
            f"back to >= 99% on time {recovery:.2f} s after"
            if recovery is not None
            else f"not back within {config['observe_seconds']:.0f} s"
        )
        + f"; {expired} of the original leases expired, {suspect} SUSPECT; during: "
        + during.describe(),
    )
