"""How many leases one frontend process holds at TTL 10, measured at each step of a rising load
until a step breaks (never extrapolated), for clients that hold many registrations and for one
registration per client (issue 21).

Each step registers the difference at a steady pace through SDK client processes, lets a renewal
period pass, then watches a window of renewals. A step **holds** when every Register was accepted,
the renewals were >= 99% on time, no lease expired and no node turned SUSPECT. The first step that
does not hold ends the stepping; it broke **gracefully** when the frontend refused the Registers it
could not take (RESOURCE_EXHAUSTED) and kept every held lease on time. The baseline, at the step
that broke (or the last one): a Python etcd client holding as many bare leases over one
LeaseKeepAlive stream, on an etcd of its own.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any

from bench.expiries import Expiries
from bench.harness import Bench
from bench.health import Health, HealthWindow
from bench.holding import HolderFleet, Renewals
from bench.stack import Registry, own_etcd, own_registry
from bench.system import CpuShare

ON_TIME = 0.99


@dataclass
class Step:
    target: int
    leases: int
    processes: int
    added: dict[str, Any]
    renewals: Renewals
    expired: int
    suspect: int
    removed: int
    own_keys: int
    cores: dict[str, float]
    health: Health

    @property
    def held(self) -> bool:
        return (
            self.added["registered"] == self.added["asked"]
            and self.renewals.share >= ON_TIME
            and self.expired == 0
            and self.suspect == 0
        )

    @property
    def refused(self) -> int:
        """Registers refused as overloaded: the frontend's own count when it keeps one (an SDK
        that waits refusals out inside register() hides them from its caller), else what the
        clients were told."""
        if self.health.registers_refused is not None:
            return self.health.registers_refused
        return int(self.added["refused"])

    @property
    def graceful(self) -> bool:
        """Broke by refusing Registers, every held lease kept on time."""
        return (
            self.refused > 0
            and self.renewals.share >= ON_TIME
            and self.expired == 0
            and self.suspect == 0
        )

    def describe(self) -> str:
        registered = f"{self.added['registered']:,} of {self.added['asked']:,} registered"
        if self.refused:
            registered += f" ({self.refused:,} Registers refused)"
        return (
            f"{registered}; {self.renewals.describe()}; {self.expired} expired, "
            f"{self.suspect} SUSPECT; frontend {self.cores['frontend']:.2f} core, "
            f"etcd {self.cores['etcd']:.2f}, clients {self.cores['clients']:.2f}; "
            + self.health.describe()
        )


async def lease_capacity(bench: Bench, mode: str) -> int:
    """Steps the leases held by one frontend process (`mode` many or single); returns the
    capacity (the largest step held, 0 if none)."""
    config = bench.config["capacity" if mode == "many" else "capacity_single"]
    ttl = config["ttl"]
    who = "clients holding many" if mode == "many" else "one registration per client"
    print(f"lease capacity at TTL {ttl}, {who}: steps {config['steps']}", flush=True)
    steps: list[Step] = []
    async with own_registry(bench.processes, bench.workdir, f"capacity-{mode}") as registry:
        fleet = HolderFleet(
            bench.processes,
            registry.frontend.target,
            ttl,
            "held",
            bench.workdir / f"holders-capacity-{mode}.log",
            mode=mode,
        )
        try:
            for leases in config["steps"]:
                step = await _step(registry, fleet, config, leases)
                steps.append(step)
                verdict = "held" if step.held else "BROKE"
                print(f"    {leases:,}: {verdict}: {step.describe()}", flush=True)
                if not step.held:
                    break
        finally:
            fleet.stop()
    baseline = await _etcd_client(bench, config, steps[-1].target)
    return _report(bench, config, mode, who, steps, baseline)


async def _step(
    registry: Registry, fleet: HolderFleet, config: dict[str, Any], leases: int
) -> Step:
    ttl = config["ttl"]
    await fleet.grow(math.ceil(leases / config["per_process"]))
    more = leases - sum(fleet.assigned)
    expiries = registry.expiries
    before = expiries.among("held", await fleet.ids()) if fleet.clients else Expiries(0, 0, 0)
    own = sum(expiries.own_keys_deleted.values())
    health = HealthWindow(registry.etcd.endpoint, registry.frontend.admin)
    await health.start()
    bound = more / config["pace"] * 2 + 60
    added = await fleet.add(more, config["pace"], config["in_flight"], bound)
    added["asked"] = more
    await asyncio.sleep(ttl / 3)  # past the new registrations' first renewals, which come early
    cpu = CpuShare(frontend=registry.frontend.pid, etcd=registry.etcd.process.pid)
    clients_before = await fleet.cpu_seconds()
    started = time.monotonic()
    await asyncio.sleep(config["window_seconds"])
    ended = time.monotonic()
    cores = cpu.cores()
    cores["clients"] = round((await fleet.cpu_seconds() - clients_before) / (ended - started), 3)
    renewals = await fleet.report(started, ended)
    after = expiries.among("held", await fleet.ids())
    return Step(
        target=leases,
        leases=sum(fleet.assigned) - added["unregistered"],
        processes=len(fleet.clients),
        added=added,
        renewals=renewals,
        expired=after.expired - before.expired,
        suspect=after.suspect - before.suspect,
        removed=after.removed - before.removed,
        own_keys=sum(expiries.own_keys_deleted.values()) - own,
        cores=cores,
        health=await health.end(),
    )


async def _etcd_client(bench: Bench, config: dict[str, Any], leases: int) -> Renewals:
    """A Python etcd client holding `leases` bare leases over one LeaseKeepAlive stream."""
    async with own_etcd(bench.workdir, "capacity-baseline") as etcd:
        log = bench.workdir / "holders-capacity-baseline.log"
        fleet = HolderFleet(bench.processes, etcd.endpoint, config["ttl"], "held", log, mode="etcd")
        try:
            await fleet.grow(1)
            await fleet.add(leases, 0, 64, leases / 500 + 60)
            await asyncio.sleep(config["ttl"] / 3)
            started = time.monotonic()
            await asyncio.sleep(config["window_seconds"])
            return await fleet.report(started, time.monotonic())
        finally:
            fleet.stop()


def _report(
    bench: Bench,
    config: dict[str, Any],
    mode: str,
    who: str,
    steps: list[Step],
    baseline: Renewals,
) -> int:
    results, ttl = bench.results, config["ttl"]
    label = f"leases at TTL {ttl}, {who}" + config.get("label", "")
    for step in steps:
        compared: dict[str, Any] = {}
        if step is steps[-1]:
            compared = {
                "baseline": f"a Python etcd client holding {step.target:,} on one stream",
                "base": baseline.share * 100,
            }
        results.add(
            f"{label}, step {step.target:,}: renewals on time",
            step.renewals.share * 100,
            "%",
            **compared,
            held=step.held,
            leases_held=step.leases,
            false_expiries=step.expired,
            suspect=step.suspect,
            removed=step.removed,
            frontend_own_keys_expired=step.own_keys,
            registers_refused=step.refused,
            refusals_counted_by="clients"
            if step.health.registers_refused is None
            else "frontend (noderegistry_admission_refused_total)",
            unregistered=step.added["unregistered"],
            client_processes=step.processes,
            frontend_cpu=step.cores["frontend"],
            etcd_cpu=step.cores["etcd"],
            clients_cpu=step.cores["clients"],
            etcd_wal_fsync_ms=round(step.health.wal_fsync_ms, 2),
            etcd_slow_applies=step.health.slow_applies,
            frontend_etcd_errors=step.health.frontend_etcd_errors,
        )
        results.add(f"{label}, step {step.target:,}: false expiries", step.expired, "leases")
    capacity = max((s.leases for s in steps if s.held), default=0)
    broke = steps[-1] if not steps[-1].held else None
    results.add(
        f"{label}: capacity (largest step held, one frontend process)",
        capacity,
        "leases",
        steps=[s.target for s in steps],
        broke_at=broke.target if broke else None,
    )
    goal = config.get("goal_leases")
    if goal:
        reached = max(config["steps"]) >= goal
        results.goal(
            f"{label}: >= {goal:,} with 0 false expiries",
            (capacity >= goal) if reached or broke else None,
            f"held up to {capacity:,}"
            + (f"; broke at the {broke.target:,} step: {broke.describe()}" if broke else "")
            + ("" if reached else f" (this profile's steps end at {max(config['steps']):,})"),
        )
    results.goal(
        f"{label}: past capacity new Registers are refused and held leases never expire",
        broke.graceful if broke else None,
        f"broke at the {broke.target:,} step: {broke.describe()}"
        if broke
        else f"no step broke (up to {steps[-1].target:,}): past capacity not reached",
    )
    return capacity
