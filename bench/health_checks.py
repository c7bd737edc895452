"""Health-check figures (docs/design.md §13): N nodes, each with a gRPC check every 10 s, shared
by two frontends; the CPU each frontend spends on probing, and how soon failures are seen.

    python -m bench.health_checks [--quick | --smoke] [--output bench/results]

(or from bench/run.py: `await health_checks(results, processes, etcd_endpoint, workdir, nodes)`
with the running benchmark's results, processes, etcd and folder). Two frontends of their own (one
worker each) on that etcd, in a cluster of their own; the checked services are one grpc.aio
server on 100 loopback ports in a process of its own (bench/health_targets.py), so that its CPU
is not the frontends'.

- Probing CPU: each frontend's CPU over a window with the nodes registered without checks (the
  same-run baseline), then over the same window (two intervals) once the same nodes carry their
  checks; the difference is what probing costs (goal: <= 0.5 core per frontend).
- Failures seen: a share of the nodes stop serving at once; each one's delay until a watcher
  sees it FAILING, against its bound, interval x failures + 1 s (goal: every one within it);
  then they serve again, and the delay until each is PASSING (bound: interval x passes + 1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import grpc.aio
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from bench.report import Results, report
from bench.retrying import register_retrying
from bench.system import Processes, cpu_seconds, free_port
from registry_service.process.embedded_etcd import EtcdServer

INTERVAL = 10.0
FAILURES = 3  # the registry's defaults
PASSES = 2
TARGET_PORTS = 100
SHARE_FAILING = 0.01  # of the nodes, stop serving at once
CLUSTER = "bench-health"


class _Frontend:
    def __init__(self, process: subprocess.Popen[str], target: str, admin: str) -> None:
        self.process, self.target, self.admin = process, target, admin

    async def metric(self, name: str) -> float:
        """The sum of a metric's samples on this frontend's admin port."""
        async with aiohttp.ClientSession() as session, session.get(f"{self.admin}/metrics") as r:
            text = await r.text()
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name
        )


async def _start_frontend(processes: Processes, etcd: str, log: Path, interval: float) -> _Frontend:
    process = processes.start(
        "-m",
        "registry_service",
        "serve",
        *("--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--http-listen", ""),
        *("--etcd-endpoints", etcd, "--cluster", CLUSTER, "--workers", "1"),
        *("--health-check-min-interval-seconds", str(min(interval, 1.0))),
        log=log,
    )
    assert process.stdout is not None
    line = await asyncio.to_thread(process.stdout.readline)
    target = re.search(r"serving on (\S+)", line)
    admin = re.search(r"admin (http://\S+)\)", line)
    assert target and admin, f"frontend did not start: {line!r}; see {log}"
    return _Frontend(process, target.group(1), admin.group(1))


class _Targets:
    """bench/health_targets.py: SERVING unless told otherwise."""

    def __init__(self, processes: Processes, log: Path) -> None:
        self._process = processes.start(
            "-m", "bench.health_targets", str(TARGET_PORTS), stdin=True, log=log
        )

    async def ports(self) -> list[int]:
        assert self._process.stdout is not None
        line = await asyncio.to_thread(self._process.stdout.readline)
        assert line.startswith("ready "), f"health targets did not start: {line!r}"
        return [int(port) for port in line.split()[1].split(",")]

    async def command(self, verb: str, services: list[str]) -> None:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write("".join(f"{verb} {service}\n" for service in services))
        self._process.stdin.flush()
        for _ in services:
            await asyncio.to_thread(self._process.stdout.readline)


class _Healths:
    """One WatchNodes stream of the benchmark's nodes: when each turned FAILING or PASSING."""

    def __init__(self, stub: registry_pb2_grpc.RegistryStub) -> None:
        self.seen: dict[tuple[str, int], float] = {}
        self._call = stub.WatchNodes(pb.WatchNodesRequest(scope=pb.Scope(types=["checked"])))
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            async for message in self._call:
                if message.WhichOneof("message") == "delta":
                    now = time.monotonic()
                    for event in message.delta.events:
                        self.seen.setdefault((event.node.id, event.node.health), now)

    def close(self) -> None:
        self._call.cancel()
        self._task.cancel()


async def _register(
    stub: registry_pb2_grpc.RegistryStub,
    nodes: int,
    ports: list[int],
    interval: float,
    tokens: dict[str, str],
    *,
    checks: bool,
) -> None:
    """Registers every node (without checks), or updates each with its check (its token)."""
    queue = iter(range(nodes))

    async def worker() -> None:
        for i in queue:
            node_id = f"n{i}"
            request = pb.RegisterRequest(
                node=pb.Node(
                    id=node_id,
                    type="checked",
                    datacenter="dc1",
                    address=f"127.0.0.1:{ports[i % len(ports)]}",
                ),
                ttl_seconds=3600,
                token=tokens.get(node_id, ""),
            )
            if checks:
                request.checks.append(
                    pb.Check(kind=pb.CHECK_KIND_GRPC, service=node_id, interval_seconds=interval)
                )
            # A loaded machine's etcd may miss a deadline, the frontend may shed: retried.
            response = await register_retrying(stub, request, attempts=20)
            tokens[node_id] = response.token

    await asyncio.gather(*(worker() for _ in range(64)))


async def _cpu_window(frontends: list[_Frontend], seconds: float) -> list[float]:
    """Cores each frontend used over `seconds` from now."""
    before = [cpu_seconds(f.process.pid) for f in frontends]
    started = time.monotonic()
    await asyncio.sleep(seconds)  # the window measured (bounded)
    elapsed = time.monotonic() - started
    return [
        (cpu_seconds(f.process.pid) - b) / elapsed for f, b in zip(frontends, before, strict=True)
    ]


async def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout:.0f}s")
        await asyncio.sleep(0.5)  # a bounded poll of metrics


async def health_checks(
    results: Results,
    processes: Processes,
    etcd_endpoint: str,
    workdir: Path,
    nodes: int,
    interval: float = INTERVAL,
) -> None:
    """The figures of the module's docstring, for `nodes` nodes each checked every `interval`."""
    print(f"health checks: {nodes} nodes, a gRPC check every {interval:g}s, two frontends")
    targets = _Targets(processes, workdir / "health-targets.log")
    ports = await targets.ports()
    frontends = [
        await _start_frontend(processes, etcd_endpoint, workdir / f"health-fe{i}.log", interval)
        for i in range(2)
    ]
    channel = grpc.aio.insecure_channel(frontends[0].target)
    stub = registry_pb2_grpc.RegistryStub(channel)
    tokens: dict[str, str] = {}
    try:
        # 1. The baseline: the nodes, registered, no checks.
        await _register(stub, nodes, ports, interval, tokens, checks=False)
        await asyncio.sleep(2)  # registration's own after-work (watch events) settles
        window = 2 * interval  # each CPU window: two rounds of every node's probes
        baseline = await _cpu_window(frontends, window)

        # 2. The same nodes with their checks: once both frontends probe, the same window.
        await _register(stub, nodes, ports, interval, tokens, checks=True)

        async def all_probed() -> bool:
            shares = [await f.metric("noderegistry_health_probed_nodes") for f in frontends]
            return sum(shares) == nodes and all(shares)

        await _wait(all_probed, 60, "every node owned by a frontend")
        await asyncio.sleep(interval)  # every node's first (jittered) probe has run
        probes_before = [await f.metric("noderegistry_health_probes_total") for f in frontends]
        started = time.monotonic()
        checked = await _cpu_window(frontends, window)
        elapsed = time.monotonic() - started
        rates = [
            (await f.metric("noderegistry_health_probes_total") - before) / elapsed
            for f, before in zip(frontends, probes_before, strict=True)
        ]
        shares = [await f.metric("noderegistry_health_probed_nodes") for f in frontends]
        listing = await stub.GetNodes(pb.GetNodesRequest(scope=pb.Scope(types=["checked"])))
        spurious = sum(
            1 for dc in listing.datacenters for n in dc.nodes if n.health == pb.HEALTH_FAILING
        )
        results.add(
            f"nodes failing with every service serving ({nodes} nodes)",
            spurious,
            "nodes",
            note="probes that timed out: a starved frontend or service (a loaded machine)",
        )
        for index, (with_checks, without) in enumerate(zip(checked, baseline, strict=True)):
            results.add(
                f"frontend {index + 1} of 2: cores with {nodes} nodes checked every {interval:g}s",
                with_checks,
                "cores",
                "the same nodes without checks",
                without,
                probed_nodes=shares[index],
                probes_per_second=round(rates[index], 1),
            )
        probing = [max(0.0, c - b) for c, b in zip(checked, baseline, strict=True)]
        results.add(
            f"probing CPU per frontend ({nodes} nodes, {interval:g}s, 2 frontends), worst",
            max(probing),
            "cores",
            probes_per_second=round(max(rates), 1),
        )
        results.goal(
            f"<= 0.5 core per frontend for probing ({nodes} nodes, {interval:g}s gRPC check, "
            "two frontends)",
            max(probing) <= 0.5,
            ", ".join(
                f"frontend {i + 1}: {p:.3f} cores ({s:.0f} nodes, {r:.0f} probes/s)"
                for i, (p, s, r) in enumerate(zip(probing, shares, rates, strict=True))
            ),
        )

        # 3. Failures: a share of the nodes stop serving at once; then serve again.
        watch = _Healths(stub)
        failing = [f"n{i}" for i in range(0, nodes, max(1, round(1 / SHARE_FAILING)))]
        for verb, health, bound in (
            ("fail", pb.HEALTH_FAILING, interval * FAILURES + 1),
            ("serve", pb.HEALTH_PASSING, interval * PASSES + 1),
        ):
            started = time.monotonic()
            await targets.command(verb, failing)

            async def seen(h: int = health) -> bool:
                return all((node, h) in watch.seen for node in failing)

            with contextlib.suppress(TimeoutError):
                await _wait(seen, bound + 10, f"{len(failing)} nodes {verb}")
            delays = [
                watch.seen[(n, health)] - started for n in failing if (n, health) in watch.seen
            ]
            worst = max(delays, default=float("inf"))
            within = sum(1 for delay in delays if delay <= bound)
            name = "FAILING" if verb == "fail" else "PASSING"
            results.add(
                f"{name} seen, worst of {len(failing)} nodes ({interval:g}s check)",
                worst,
                "s",
                "its bound, interval x threshold + 1 s",
                bound,
                seen=len(delays),
            )
            results.goal(
                f"every {name.lower()} node seen within its bound ({nodes} nodes)",
                within == len(failing),
                f"{within} of {len(failing)} within {bound:g}s (worst {worst:.1f}s)",
            )
        watch.close()
    finally:
        await channel.close()


async def on_own_etcd(
    results: Results, processes: Processes, workdir: Path, nodes: int, interval: float
) -> None:
    """`health_checks` on an etcd of its own under `workdir` (its frontends and nodes disturb no
    other row of a run)."""
    etcd = EtcdServer(
        data_dir=workdir / "health-etcd",
        client_port=free_port(),
        peer_port=free_port(),
        name="bench-health",
    )
    etcd.start()
    etcd.wait_ready()
    try:
        await health_checks(results, processes, etcd.endpoint, workdir, nodes, interval)
    finally:
        etcd.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="2,000 nodes")
    parser.add_argument("--smoke", action="store_true", help="50 nodes, a 1 s check")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    profile = "smoke" if args.smoke else "quick" if args.quick else "full"
    nodes = {"smoke": 50, "quick": 2000, "full": 10_000}[profile]
    interval = 1.0 if args.smoke else INTERVAL
    results, processes = Results(f"health-{profile}"), Processes()
    with tempfile.TemporaryDirectory(prefix="noderegistry-bench-health-") as directory:
        workdir = Path(directory)
        try:
            await on_own_etcd(results, processes, workdir, nodes, interval)
        finally:
            processes.stop_all()
    document = report(results, None)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2)
    (output / f"latest-health-{profile}.json").write_text(text)
    print(f"\nwrote {output / f'latest-health-{profile}.json'}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
