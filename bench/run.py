"""node-registry benchmarks, with their baselines measured in the same run (this machine is noisy:
read the ratios). Loopback only; every loop is bounded in count and time.

    python -m bench.run [--quick | --smoke] [--output bench/results]

Starts its own etcd, registry frontend(s) and a raw grpc.aio fan-out server, and client processes
for the subscriber fleets. Prints a table and writes JSON (`<time>.json` and `latest.json`); each
figure is compared with the previous `latest.json` when there is one.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from bench import report
from bench.control import eviction, push_switch
from bench.expiry import mass_expiry, silent_nodes
from bench.fanout import fanout
from bench.federation import cross_datacenter
from bench.harness import Bench
from bench.leases import lease_figures
from bench.registrations import registrations
from bench.system import REPO


async def run(bench: Bench) -> None:
    """Every family of rows, in an order where none disturbs the next."""
    config = bench.config
    await eviction(bench)
    await push_switch(bench)
    await cross_datacenter(bench)
    if config["silent"]:
        await silent_nodes(bench, config["silent"])
    for nodes in config["nodes"]:
        await registrations(bench, nodes, ttl=3600)
    if config["hold"]:
        await lease_figures(bench, config["leases"])
    if config["mass"]:
        await mass_expiry(bench, config["mass"])
    for subscribers in config["subscribers"]:
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


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="about 3 minutes")
    parser.add_argument("--smoke", action="store_true", help="seconds; for the test suite")
    parser.add_argument("--output", default=str(REPO / "bench" / "results"))
    args = parser.parse_args()
    profile = "smoke" if args.smoke else "quick" if args.quick else "full"
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    previous = report.previous_run(output, profile)
    with tempfile.TemporaryDirectory(prefix="noderegistry-bench-") as workdir:
        bench = Bench(profile, Path(workdir))
        try:
            await bench.start()
            await run(bench)
        finally:
            await bench.close()
    document = report.report(bench.results, previous)
    print(f"\nwrote {report.write(output, document)}")


if __name__ == "__main__":
    asyncio.run(main())
