"""node-registry benchmarks, with their baselines measured in the same run (this machine is noisy:
read the ratios). Loopback only; every loop is bounded in count and time.

    python -m bench.run [--quick | --smoke] [--only FAMILY,...] [--output bench/results]

Starts its own etcd, registry frontend(s) and a raw grpc.aio fan-out server, and client processes
for the subscriber and holder fleets; the rows that push a registry past what it can take get an
etcd and a frontend of their own. Prints a table and writes JSON (`<time>-<profile>.json` and
`latest-<profile>.json`); each figure is compared with the previous `latest-<profile>.json` when
there is one. `--only` runs some families of rows (their JSON goes to
`<time>-<profile>-only.json`; `latest` is left alone).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import tempfile
import traceback
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import console, health_checks, report
from bench.burst import register_burst
from bench.capacity import lease_capacity
from bench.control import eviction, push_switch
from bench.expiry import mass_expiry, silent_nodes
from bench.fanout import fanout
from bench.federation import cross_datacenter
from bench.harness import Bench
from bench.leases import lease_figures
from bench.overload import overload_recovery
from bench.registrations import registrations
from bench.scale import hundred_thousand_nodes
from bench.system import REPO, load_average
from bench.xds import xds_figures


async def _control(bench: Bench) -> None:
    await eviction(bench)
    await push_switch(bench)


async def _expiry(bench: Bench) -> None:
    if bench.config["silent"]:
        await silent_nodes(bench, bench.config["silent"])


async def _registrations(bench: Bench) -> None:
    for nodes in bench.config["nodes"]:
        await registrations(bench, nodes, ttl=3600)


async def _leases(bench: Bench) -> None:
    if bench.config["hold"]:
        await lease_figures(bench, bench.config["leases"])
    if bench.config["mass"]:
        await mass_expiry(bench, bench.config["mass"])


async def _xds(bench: Bench, only: str) -> None:
    """The xDS rows beside WatchNodes, on a frontend with one worker (as docs/performance.md's
    xDS runs were measured): the fan-out family moves the main frontend to two workers later."""
    if bench.main.workers != 1:
        await bench.replace_frontend(workers=1)
    await xds_figures(bench, only)


async def _fanout(bench: Bench) -> None:
    for subscribers in bench.config["subscribers"]:
        if subscribers >= 5000:  # both cores: a frontend with two workers
            await bench.replace_frontend(workers=2)
        try:
            await fanout(bench, subscribers)
        except TimeoutError:
            # Recorded, not hidden: the run goes on and the table says what failed.
            print(f"  {subscribers} subscribers: not ready in time; not measured")
            bench.results.goal(
                f"fan-out to {subscribers} subscribers measured",
                False,
                "the subscriber streams did not all open within 300 s",
            )


async def _capacity(bench: Bench) -> None:
    bench.measured["capacity"] = await lease_capacity(bench, "many")
    bench.measured["capacity_single"] = await lease_capacity(bench, "single")


async def _overload(bench: Bench) -> None:
    await overload_recovery(bench, int(bench.measured.get("capacity", 0)))


async def _health(bench: Bench) -> None:
    """Registry-run health checks (bench/health_checks.py): two frontends of their own probing
    the nodes, on an etcd of their own, beside the same nodes without checks."""
    sizes = bench.config["health"]
    await health_checks.on_own_etcd(
        bench.results, bench.processes, bench.workdir, sizes["nodes"], sizes["interval"]
    )


async def _console(bench: Bench) -> None:
    """The console in Chromium (bench/console.py), on a frontend of its own: its nodes stay in
    etcd under their own prefix, so it comes last."""
    why = console.missing()
    if why:
        bench.results.not_measured("console: first paint and applying changes, in Chromium", why)
        return
    await console.console_figures(
        bench.results.add, bench.etcd.endpoint, bench.workdir, **bench.config["console"]
    )


# Every family of rows, in the order of a run: none disturbs the next (the xDS rows come before
# the fan-out moves the main frontend to two workers; the overload rows run on registries of
# their own; the console's leave their nodes in etcd, so they come last).
FAMILIES: dict[str, Callable[[Bench], Awaitable[None]]] = {
    "control": _control,
    "federation": cross_datacenter,
    "expiry": _expiry,
    "registrations": _registrations,
    "leases": _leases,
    "xds": functools.partial(_xds, only="fanout"),
    "xds-churn": functools.partial(_xds, only="churn"),
    "fanout": _fanout,
    "burst": register_burst,
    "capacity": _capacity,
    "overload": _overload,
    "scale": hundred_thousand_nodes,
    "health": _health,
    "console": _console,
}


async def run(bench: Bench, families: list[str]) -> None:
    """Every family in turn; one that fails is recorded as such and the run goes on."""
    for name in families:
        print(f"[{name}] (load average {load_average():.1f})", flush=True)
        try:
            await FAMILIES[name](bench)
        except Exception as err:  # recorded, not hidden: the table says what failed
            traceback.print_exc()
            bench.results.goal(f"[{name}] rows measured", False, f"failed: {err!r}"[:300])


def _families(only: str) -> list[str]:
    if not only:
        return list(FAMILIES)
    chosen = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in FAMILIES]
    if unknown:
        raise SystemExit(f"--only: unknown {', '.join(unknown)}; families: {', '.join(FAMILIES)}")
    return [name for name in FAMILIES if name in chosen]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes, labelled as such")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; for the test suite")
    parser.add_argument("--only", default="", help=f"some of: {', '.join(FAMILIES)}")
    parser.add_argument("--output", default=str(REPO / "bench" / "results"))
    args = parser.parse_args()
    families = _families(args.only)
    profile = "smoke" if args.smoke else "quick" if args.quick else "full"
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    previous = report.previous_run(output, profile)
    # Every client process is read by a thread blocked on its pipe (a fleet's for as long as it
    # runs): more than the default executor's handful (cores + 4) on a small machine.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=128))
    with tempfile.TemporaryDirectory(prefix="noderegistry-bench-") as workdir:
        bench = Bench(profile, Path(workdir))
        try:
            await bench.start()
            await run(bench, families)
        finally:
            await bench.close()
    document = report.report(bench.results, previous)
    print(f"\nwrote {report.write(output, document, partial=bool(args.only))}")


if __name__ == "__main__":
    asyncio.run(main())
