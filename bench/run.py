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
import contextlib
import json
import os
import platform
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import grpc.aio
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from bench.console import console_figures
from bench.expiry import mass_expiry, silent_nodes
from bench.federation import cross_datacenter
from bench.leases import lease_figures
from registry_service.process.embedded_etcd import EtcdServer
from registry_service.store._etcdpb import rpc_pb2 as etcd_pb
from registry_service.store.etcd_client import EtcdClient, EtcdConfig

REPO = Path(__file__).resolve().parent.parent
PROFILES: dict[str, dict[str, Any]] = {
    # subscribers; node counts registered; changes sampled per fan-out run; seconds each lease
    # load is held; subscriber processes; registrations kept alive for the lease figures; silent
    # nodes for the expiry figure; registrations expiring at once.
    "smoke": {
        "subscribers": [10],
        "nodes": [50],
        "changes": 5,
        "hold": 0.0,
        "processes": 1,
        "leases": 0,
        "silent": 5,
        "mass": 0,
        "console": {"nodes": 200, "changes": 20},
    },
    "quick": {
        "subscribers": [100, 1000],
        "nodes": [1000],
        "changes": 20,
        "hold": 11.0,
        "processes": 2,
        "leases": 2000,
        "silent": 100,
        "mass": 2000,
        "console": {"nodes": 10000, "changes": 100},
    },
    "full": {
        "subscribers": [100, 1000, 5000],
        "nodes": [1000, 10000, 50000],
        "changes": 40,
        "hold": 22.0,
        "processes": 2,
        "leases": 3000,
        "silent": 100,
        "mass": 10000,
        "console": {"nodes": 10000, "changes": 100},
    },
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


STAGES = ("commit_to_received", "received_to_queued", "queued_to_written", "written_to_acked")


async def evictor_settled(admin: str) -> None:
    """Waits until the frontend's evictor leads and has swept past the grace that follows its
    connecting to etcd (`evictor_outage_grace_seconds`): the eviction row measures a running
    registry, not the first seconds of a frontend just started."""
    async with aiohttp.ClientSession() as session, asyncio.timeout(60):
        while True:
            async with session.get(f"{admin}/admin/evictor") as response:
                status = await response.json()
            if status["leader"] and status["last_sweep"] and not status["held_by_outage"]:
                return
            await asyncio.sleep(0.2)  # a bounded poll of a status page (60 s at the most)


async def stage_buckets(admin: str) -> dict[str, dict[float, float]]:
    """The frontend's cumulative `noderegistry_change_stage_seconds` buckets, stage -> {le: count},
    summed over its workers."""
    async with aiohttp.ClientSession() as session, session.get(f"{admin}/metrics") as response:
        text = await response.text()
    buckets: dict[str, dict[float, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "noderegistry_change_stage_seconds":
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    per_stage = buckets.setdefault(sample.labels["stage"], {})
                    le = float(sample.labels["le"])
                    per_stage[le] = per_stage.get(le, 0.0) + sample.value
    return buckets


def bucket_quantile(q: float, cumulative: dict[float, float]) -> float | None:
    """Prometheus' histogram_quantile: linear within the bucket that holds the q-th observation."""
    bounds = sorted(cumulative)
    total = cumulative[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children (a frontend with workers is a supervisor
    and one process per worker)."""
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    own = int(match.group(1)) * 1024 if match else 0
    return own + sum(rss_bytes(child) for child in children(pid))


async def settled_rss(pid: int, timeout: float = 60.0) -> int:
    """rss_bytes once three samples a second apart differ by under 0.5% (or after timeout)."""
    deadline = time.monotonic() + timeout
    samples = [rss_bytes(pid)]
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        samples.append(rss_bytes(pid))
        last = samples[-3:]
        if len(last) == 3 and max(last) - min(last) < 0.005 * max(last):
            return samples[-1]
    return samples[-1]


def cpu_seconds_tree(pid: int) -> float:
    return cpu_seconds(pid) + sum(cpu_seconds_tree(child) for child in children(pid))


def children(pid: int) -> list[int]:
    listing = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in listing.read_text().split()] if listing.exists() else []


@dataclass
class Results:
    profile: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    goals: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        figure: str,
        value: float,
        unit: str,
        baseline: str = "",
        base: float = 0.0,
        **extra: Any,
    ) -> None:
        row = {"figure": figure, "value": round(value, 6), "unit": unit, **extra}
        if baseline:
            row.update(
                baseline=baseline,
                baseline_value=round(base, 6),
                ratio=round(value / base, 3) if base else None,
            )
        self.rows.append(row)
        print(
            f"  {figure}: {value:.4g} {unit}"
            + (f"  ({baseline}: {base:.4g}, ratio {row['ratio']})" if baseline else ""),
            flush=True,
        )

    def goal(self, name: str, met: bool, detail: str) -> None:
        self.goals.append({"goal": name, "met": met, "detail": detail})


class Processes:
    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def start(
        self, *args: str, stdin: bool = False, log: Path | None = None
    ) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=REPO,
            text=True,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log.open("a") if log else subprocess.DEVNULL,
        )
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait()


class Fleet:
    """Subscriber streams spread over client processes (bench/subscribers.py)."""

    def __init__(self, processes: Processes, kind: str, target: str, total: int, count: int):
        per = [total // count + (1 if i < total % count else 0) for i in range(count)]
        self.clients = [
            processes.start("-m", "bench.subscribers", kind, target, str(n), stdin=True)
            for n in per
            if n
        ]
        self.seen: dict[str, list[float]] = {}
        self.reopened = 0  # stream opens the server shed (CANCELLED) and the client retried
        self._events: dict[str, asyncio.Event] = {}

    async def ready(self, timeout: float = 300) -> None:
        async with asyncio.timeout(timeout):
            for client in self.clients:
                assert client.stdout is not None
                line = await asyncio.to_thread(client.stdout.readline)
                if not line.startswith("ready"):
                    raise RuntimeError(f"subscriber process failed: {line!r}")
                self.reopened += int(line.split()[1])
        self._readers = [asyncio.create_task(self._read(c)) for c in self.clients]

    async def _read(self, client: subprocess.Popen[str]) -> None:
        assert client.stdout is not None
        while line := await asyncio.to_thread(client.stdout.readline):
            _, marker, at = line.split()
            self.seen.setdefault(marker, []).append(float(at))
            if len(self.seen[marker]) == len(self.clients):
                self._events.setdefault(marker, asyncio.Event()).set()

    async def last_receipt(self, marker: str, timeout: float = 30) -> float:
        event = self._events.setdefault(marker, asyncio.Event())
        async with asyncio.timeout(timeout):
            await event.wait()
        return max(self.seen[marker])

    def close(self) -> None:
        for client in self.clients:
            with contextlib.suppress(OSError):
                assert client.stdin is not None
                client.stdin.close()
            client.kill()
            client.wait()
        for reader in getattr(self, "_readers", []):
            reader.cancel()


def bench_node(node_id: str, node_type: str = "bench") -> pb.Node:
    return pb.Node(id=node_id, type=node_type, datacenter="dc1", address=f"10.0.0.1:{7000}")


async def fanout_latencies(fleet: Fleet, trigger: Any, changes: int) -> list[float]:
    latencies = []
    for i in range(changes):
        marker = f"c{i}-{secrets.token_hex(3)}"
        started = time.monotonic()
        await trigger(marker)
        latencies.append(await fleet.last_receipt(marker) - started)
    return latencies


class Bench:
    def __init__(self, profile: str, workdir: Path) -> None:
        self.profile = profile
        self.config = PROFILES[profile]
        self.workdir = workdir
        self.processes = Processes()
        self.results = Results(profile)

    async def start(self) -> None:
        port = free_port()
        self.etcd = EtcdServer(
            data_dir=self.workdir / "etcd",
            client_port=port,
            peer_port=free_port(),
            name="bench",
            extra_args=["--quota-backend-bytes=8589934592"],
        )
        self.etcd.start()
        self.etcd.wait_ready()
        self.etcd_client = EtcdClient(EtcdConfig(endpoints=(self.etcd.endpoint,)))
        self.frontend, self.target, self.admin = await self.start_frontend(workers=1)
        self.raw = self.processes.start("-m", "bench.raw_fanout")
        assert self.raw.stdout is not None
        self.raw_target = f"127.0.0.1:{self.raw.stdout.readline().strip()}"
        self.channel = grpc.aio.insecure_channel(self.target)
        self.stub = registry_pb2_grpc.RegistryStub(self.channel)

    async def start_frontend(self, workers: int) -> tuple[subprocess.Popen[str], str, str]:
        process = self.processes.start(
            "-m",
            "registry_service",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--etcd-endpoints",
            self.etcd.endpoint,
            "--cluster",
            "bench",
            "--workers",
            str(workers),
            "--watch-queue-messages",
            "100000",
            # Thousands of subscribers come from one address here; and the eviction figures
            # measure the plain eviction path: not the budget (self-preservation; raised so
            # that a mass expiry may be removed whole), nor the grace the evictor gives
            # renewing nodes after etcd (or the frontend) comes up.
            "--max-streams-per-peer",
            "100000",
            "--eviction-budget-minimum",
            "100000",
            "--eviction-budget-type-minimum",
            "100000",
            "--evictor-outage-grace-seconds",
            "0",
            log=self.workdir / f"frontend-{workers}.log",
        )
        assert process.stdout is not None
        line = await asyncio.to_thread(process.stdout.readline)
        target = re.search(r"serving on (\S+)", line).group(1)
        return process, target, re.search(r"admin (http://\S+)\)", line).group(1)

    def cpu_now(self) -> dict[str, float]:
        """CPU seconds used so far by the frontend (with its workers) and by etcd."""
        return {
            "frontend": cpu_seconds_tree(self.frontend.pid),
            "etcd": cpu_seconds_tree(self.etcd.process.pid),
        }

    def cpu_since(self, before: dict[str, float]) -> dict[str, float]:
        now = self.cpu_now()
        return {name: now[name] - before[name] for name in now}

    async def close(self) -> None:
        await self.channel.close()
        await self.etcd_client.close()
        self.processes.stop_all()
        self.etcd.stop()

    # -- figures ------------------------------------------------------------------------------

    async def fanout(self, subscribers: int) -> None:
        changes, count = self.config["changes"], self.config["processes"]
        print(f"fan-out to {subscribers} subscribers ({changes} changes)", flush=True)
        # A frontend just started is still loading every member: measure from where it settles.
        rss_before = await settled_rss(self.frontend.pid)

        register_latencies: list[float] = []
        probe_latencies: list[float] = []  # an etcd put at the same moment: etcd's own delay

        async def timed(latencies: list[float], call: Any) -> None:
            started = time.monotonic()
            await call
            latencies.append(time.monotonic() - started)

        async def registry_trigger(marker: str, node_type: str = "bench") -> None:
            register = self.stub.Register(
                pb.RegisterRequest(node=bench_node(marker, node_type), ttl_seconds=60)
            )
            probe = self.etcd_client.kv.put(b"/bench/probe", marker.encode())
            await asyncio.gather(timed(register_latencies, register), timed(probe_latencies, probe))

        # The writer's own Register with nobody watching, on the same frontend: its baseline
        # (of a type outside the subscribers' scope, so that their snapshots do not grow).
        for i in range(changes):
            await registry_trigger(f"quiet{i}-{secrets.token_hex(3)}", "quiet")
        quiet, register_latencies = register_latencies, []
        quiet_probe, probe_latencies = probe_latencies, []

        async def etcd_trigger(marker: str) -> None:
            await self.etcd_client.kv.put(b"/bench/fanout/" + marker.encode(), b"x")

        async with grpc.aio.insecure_channel(self.raw_target) as raw_channel:
            push = raw_channel.unary_unary("/bench.Raw/Push")

            async def raw_trigger(marker: str) -> None:
                await push(marker.encode())

            figures, reopened = {}, {}
            for kind, target, trigger in (
                ("registry", self.target, registry_trigger),
                ("direct etcd watchers", self.etcd.endpoint, etcd_trigger),
                ("raw grpc.aio fan-out", self.raw_target, raw_trigger),
            ):
                fleet_kind = {"registry": "registry", "direct etcd watchers": "etcd"}.get(
                    kind, "raw"
                )
                fleet = Fleet(self.processes, fleet_kind, target, subscribers, count)
                try:
                    await fleet.ready()
                    if kind == "registry":
                        await asyncio.sleep(1)  # let the frontend settle its RSS
                        per_subscriber = (rss_bytes(self.frontend.pid) - rss_before) / subscribers
                        stages_before = await stage_buckets(self.admin)
                    figures[kind] = await fanout_latencies(fleet, trigger, changes)
                    if kind == "registry":
                        stages_after = await stage_buckets(self.admin)
                    reopened[kind] = fleet.reopened
                finally:
                    fleet.close()
        ours, etcd, raw = (
            figures[k] for k in ("registry", "direct etcd watchers", "raw grpc.aio fan-out")
        )
        for q in (50, 99):
            self.results.add(
                f"change->last of {subscribers} subscribers p{q}",
                percentile(ours, q) * 1000,
                "ms",
                "direct etcd watchers",
                percentile(etcd, q) * 1000,
                subscribers=subscribers,
                opens_shed_and_retried=reopened["registry"],
            )
            self.results.add(
                f"raw fan-out limit, {subscribers} subscribers p{q}",
                percentile(raw, q) * 1000,
                "ms",
                subscribers=subscribers,
                opens_shed_and_retried=reopened["raw grpc.aio fan-out"],
            )
        self.stage_figures(subscribers, stages_before, stages_after, ours)
        busy, calm = percentile(register_latencies, 50), percentile(quiet, 50)
        self.results.add(
            f"Register p50 while {subscribers} subscribers receive its change",
            busy * 1000,
            "ms",
            "Register p50 with no subscribers",
            calm * 1000,
            subscribers=subscribers,
            etcd_put_p50_ms=round(percentile(probe_latencies, 50) * 1000, 3),
            etcd_put_p50_quiet_ms=round(percentile(quiet_probe, 50) * 1000, 3),
        )
        busy_put, calm_put = (percentile(x, 50) * 1000 for x in (probe_latencies, quiet_probe))
        print(
            f"    an etcd put sent beside each Register: p50 {busy_put:.1f} ms "
            f"(with no subscribers: {calm_put:.1f} ms)",
            flush=True,
        )
        if subscribers == max(self.config["subscribers"]):
            self.results.goal(
                f"Register p50 while {subscribers:,} subscribers receive a change <= 2x its p50 "
                "with none",
                busy <= 2 * calm,
                f"{busy * 1000:.1f} vs {calm * 1000:.1f} ms: {busy / calm:.2f}x",
            )
        self.results.add(
            f"frontend memory per subscriber ({subscribers})",
            per_subscriber / 1024,
            "KiB",
            subscribers=subscribers,
        )
        p99, p99_etcd, p99_raw = (percentile(x, 99) for x in (ours, etcd, raw))
        if subscribers == 1000:
            self.results.goal(
                "1,000 subscribers p99 <= direct etcd watchers",
                p99 <= p99_etcd,
                f"{p99 * 1000:.1f} ms vs {p99_etcd * 1000:.1f} ms",
            )
            self.results.goal(
                "1,000 subscribers p99 <= 1.2x raw fan-out limit",
                p99 <= 1.2 * p99_raw,
                f"{p99 / p99_raw:.2f}x",
            )
        if subscribers == 5000:
            self.results.goal("5,000 subscribers p99 <= 300 ms", p99 <= 0.3, f"{p99 * 1000:.0f} ms")
        self.results.goal(
            f"memory per subscriber <= 50 KB ({subscribers})",
            per_subscriber <= 50_000,
            f"{per_subscriber / 1024:.1f} KiB",
        )

    def stage_figures(
        self,
        subscribers: int,
        before: dict[str, dict[float, float]],
        after: dict[str, dict[float, float]],
        end_to_end: list[float],
    ) -> None:
        """The frontend's own stage histograms over the same changes, beside the end-to-end
        figure (estimated from buckets, as Prometheus would): they should add up to about it."""
        p50s = []
        for stage in STAGES:
            delta = {
                le: count - before.get(stage, {}).get(le, 0.0)
                for le, count in after.get(stage, {}).items()
            }
            for q in (50, 99):
                value = bucket_quantile(q / 100, delta)
                if value is None:
                    print(f"  stage {stage}: no observations", flush=True)
                    break
                if q == 50 and stage != "written_to_acked":
                    p50s.append(value)
                self.results.add(
                    f"stage {stage} p{q} ({subscribers} subscribers)",
                    value * 1000,
                    "ms",
                    subscribers=subscribers,
                    observations=int(delta.get(float("inf"), 0)),
                )
        print(
            f"    stages to written, p50s added up: {sum(p50s) * 1000:.1f} ms; end to end "
            f"(change -> last subscriber) p50: {percentile(end_to_end, 50) * 1000:.1f} ms",
            flush=True,
        )

    async def register_many(
        self, nodes: int, ttl: int, node_type: str, in_flight: int = 64
    ) -> tuple[list[pb.RegisterResponse], list[float]]:
        """Registers `nodes` new nodes of `node_type`, `in_flight` at a time; (responses,
        latencies)."""
        responses: list[pb.RegisterResponse] = []
        latencies: list[float] = []
        queue = iter(range(nodes))
        run = secrets.token_hex(2)

        async def worker() -> None:
            for i in queue:
                started = time.monotonic()
                responses.append(
                    await self.stub.Register(
                        pb.RegisterRequest(
                            node=bench_node(f"n{run}-{i}", node_type),
                            ttl_seconds=ttl,
                            idempotency_key=f"{run}-{i}",
                        )
                    )
                )
                latencies.append(time.monotonic() - started)

        await asyncio.gather(*(worker() for _ in range(in_flight)))
        return responses, latencies

    async def direct_registrations(self, nodes: int, ttl: int, rate: float = 0.0) -> list[float]:
        """What a hand-written etcd client does per registration: a lease, then a guarded put,
        64 at a time; paced at `rate` per second when given. Returns the latencies."""
        latencies: list[float] = []
        queue = iter(range(nodes))
        run = secrets.token_hex(2)
        started = time.monotonic()

        async def worker() -> None:
            for i in queue:
                if rate:
                    await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
                begun = time.monotonic()
                lease = await self.etcd_client.lease.grant(ttl)
                key = f"/bench/direct/{run}/{i}".encode()
                await self.etcd_client.kv.txn(
                    etcd_pb.TxnRequest(
                        compare=[
                            etcd_pb.Compare(
                                key=key,
                                target=etcd_pb.Compare.CompareTarget.VERSION,
                                result=etcd_pb.Compare.CompareResult.EQUAL,
                                version=0,
                            )
                        ],
                        success=[
                            etcd_pb.RequestOp(
                                request_put=etcd_pb.PutRequest(
                                    key=key, value=b'{"address":"10.0.0.1:7000"}', lease=lease
                                )
                            )
                        ],
                    )
                )
                latencies.append(time.monotonic() - begun)

        await asyncio.gather(*(worker() for _ in range(64)))
        return latencies

    async def registrations(self, nodes: int, ttl: int) -> list[pb.RegisterResponse]:
        print(f"registrations: {nodes} with 64 in flight", flush=True)
        rss_before = rss_bytes(self.frontend.pid)
        cpu = self.cpu_now()
        started = time.monotonic()
        responses, latencies = await self.register_many(nodes, ttl, "load")
        rate = nodes / (time.monotonic() - started)
        await asyncio.sleep(0.5)  # the watch events and evictor wake-ups this caused
        ours = self.cpu_since(cpu)
        await asyncio.sleep(0.5)
        per_node = (rss_bytes(self.frontend.pid) - rss_before) / nodes

        started = time.monotonic()
        direct_latencies = await self.direct_registrations(nodes, ttl)
        direct_rate = nodes / (time.monotonic() - started)
        self.results.add(
            f"registrations/s ({nodes}, 64 in flight)",
            rate,
            "/s",
            "direct etcd (lease + txn)",
            direct_rate,
            nodes=nodes,
        )
        self.results.add(
            f"register p99 ({nodes})",
            percentile(latencies, 99) * 1000,
            "ms",
            "direct etcd",
            percentile(direct_latencies, 99) * 1000,
            nodes=nodes,
        )
        self.results.add(f"frontend memory per node ({nodes})", per_node, "bytes", nodes=nodes)
        per_register = ours["frontend"] / nodes
        floor = await self.unary_floor()
        self.results.add(
            f"frontend CPU per Register ({nodes})",
            per_register * 1e6,
            "us",
            "raw grpc.aio unary call (the floor of any RPC)",
            floor * 1e6,
            nodes=nodes,
        )
        self.results.goal(
            f"registrations/s >= 0.5x direct etcd ({nodes})",
            rate >= 0.5 * direct_rate,
            f"{rate:.0f}/s vs {direct_rate:.0f}/s: {rate / direct_rate:.2f}x",
        )
        self.results.goal(
            f"frontend CPU per Register <= 500 us ({nodes})",
            per_register <= 500e-6,
            f"{per_register * 1e6:.0f} us (a raw grpc.aio unary call alone: {floor * 1e6:.0f} us)",
        )
        if nodes <= 10_000:
            # etcd's CPU per operation falls as its load rises (more proposals per raft round
            # and fsync), so the baseline runs at the registry's own rate.
            cpu = self.cpu_now()
            await self.direct_registrations(nodes, ttl, rate=rate)
            await asyncio.sleep(0.5)
            direct = self.cpu_since(cpu)
            ratio = ours["etcd"] / max(direct["etcd"], 1e-9)
            self.results.add(
                f"etcd CPU per registration ({nodes})",
                ours["etcd"] / nodes * 1e6,
                "us",
                f"direct lease + txn at the same {rate:.0f}/s",
                direct["etcd"] / nodes * 1e6,
                nodes=nodes,
            )
            self.results.goal(
                f"etcd CPU per registration <= 1.5x direct lease + put ({nodes})",
                ratio <= 1.5,
                f"{ours['etcd'] / nodes * 1e6:.0f} vs {direct['etcd'] / nodes * 1e6:.0f} us: "
                f"{ratio:.2f}x",
            )
        if nodes >= 10_000 or nodes == max(self.config["nodes"]):
            self.results.goal(
                f"memory per node <= 2 KB ({nodes})", per_node <= 2000, f"{per_node:.0f} B"
            )
        return responses

    async def unary_floor(self, calls: int = 3000) -> float:
        """CPU seconds the raw grpc.aio server spends per unary call that does nothing."""
        async with grpc.aio.insecure_channel(self.raw_target) as channel:
            echo = channel.unary_unary("/bench.Raw/Echo")
            queue = iter(range(calls))

            async def worker() -> None:
                for _ in queue:
                    await echo(b"x" * 120)

            before = cpu_seconds(self.raw.pid)
            await asyncio.gather(*(worker() for _ in range(64)))
            return (cpu_seconds(self.raw.pid) - before) / calls

    async def eviction(self) -> None:
        print("eviction: 5 nodes stop renewing (TTL 3)", flush=True)
        await evictor_settled(self.admin)
        watcher = self.stub.WatchNodes(pb.WatchNodesRequest(scope=pb.Scope(types=["evict"])))
        registered_at = {}
        for i in range(5):
            node_id = f"e{i}-{secrets.token_hex(2)}"
            await self.stub.Register(
                pb.RegisterRequest(node=bench_node(node_id, "evict"), ttl_seconds=3)
            )
            registered_at[node_id] = time.monotonic()
        delays = []
        async with asyncio.timeout(30):
            async for message in watcher:
                if message.WhichOneof("message") != "delta":
                    continue
                for event in message.delta.events:
                    if event.type == pb.EVENT_TYPE_REMOVED:
                        delays.append(time.monotonic() - registered_at[event.node.id] - 3)
                if len(delays) == 5:
                    break
        watcher.cancel()
        self.results.add(
            "eviction: REMOVED after the TTL, median",
            statistics.median(delays),
            "s",
            worst=round(max(delays), 3),
        )

    async def push_switch(self) -> None:
        """One operator command (PUT /admin/push on one frontend) until every worker of two
        frontends applies it, read from each process's own gauge (docs/design.md §9)."""
        print("push switch: 3 processes (2 frontends, one with 2 workers) follow", flush=True)
        second, _, second_admin = await self.start_frontend(workers=2)
        gauges = [(self.admin, ""), (second_admin, "0"), (second_admin, "1")]
        times = []
        async with aiohttp.ClientSession() as session:

            async def followed(enabled: bool) -> bool:
                for admin, worker in gauges:
                    async with session.get(f"{admin}/metrics") as response:
                        text = await response.text()
                    (family,) = (
                        f
                        for f in text_string_to_metric_families(text)
                        if f.name == "noderegistry_push_enabled"
                    )
                    values = [
                        s.value for s in family.samples if s.labels.get("worker", "") == worker
                    ]
                    if values != [float(enabled)]:
                        return False
                return True

            for _ in range(max(1, self.config["changes"] // 5)):
                for enabled in (False, True):
                    started = time.monotonic()
                    body = {"enabled": enabled}
                    async with session.put(f"{self.admin}/admin/push", json=body) as response:
                        assert response.status == 200, await response.text()
                    async with asyncio.timeout(30):
                        while True:  # polled: each process's gauge is its own
                            if await followed(enabled):
                                break
                            await asyncio.sleep(0.005)
                    times.append(time.monotonic() - started)
        second.kill()
        second.wait()
        self.results.add(
            "push switch: command -> all 3 processes follow, median",
            statistics.median(times),
            "s",
            worst=round(max(times), 3),
            switches=len(times),
        )

    async def run(self) -> Results:
        await self.start()
        try:
            await self.eviction()
            await self.push_switch()
            await cross_datacenter(self)
            if self.config["silent"]:
                await silent_nodes(self, self.config["silent"])
            for nodes in self.config["nodes"]:
                await self.registrations(nodes, ttl=3600)
            if self.config["hold"]:
                await lease_figures(self, self.config["leases"])
            if self.config["mass"]:
                await mass_expiry(self, self.config["mass"])
            for subscribers in self.config["subscribers"]:
                if subscribers >= 5000:  # both cores: a frontend with two workers
                    self.frontend, self.target, self.admin = await self.start_frontend(workers=2)
                    await self.channel.close()
                    self.channel = grpc.aio.insecure_channel(self.target)
                    self.stub = registry_pb2_grpc.RegistryStub(self.channel)
                try:
                    await self.fanout(subscribers)
                except TimeoutError:
                    # Recorded, not hidden: the run goes on and the table says what failed.
                    print(f"  {subscribers} subscribers: not ready in time; not measured")
                    self.results.goal(
                        f"fan-out to {subscribers} subscribers measured",
                        False,
                        "the subscriber streams did not all open within 300 s",
                    )
            if self.config.get("console"):  # bench/console.py: last, its nodes stay in etcd
                await console_figures(
                    self.results.add, self.etcd.endpoint, self.workdir, **self.config["console"]
                )
        finally:
            await self.close()
        return self.results


def report(results: Results, previous: dict[str, Any] | None) -> dict[str, Any]:
    before = {row["figure"]: row["value"] for row in (previous or {}).get("rows", [])}
    print("\n| figure | value | baseline (same run) | ratio | previous run | ratio |")
    print("|---|---|---|---|---|---|")
    for row in results.rows:
        old = before.get(row["figure"])
        base = f"{row['baseline']}: {row['baseline_value']:.4g}" if "baseline" in row else ""
        print(
            f"| {row['figure']} | {row['value']:.4g} {row['unit']} | {base} | "
            f"{row.get('ratio') or ''} | {'' if old is None else f'{old:.4g}'} | "
            f"{'' if not old else round(row['value'] / old, 2)} |"
        )
    print("\n| goal | met | measured |\n|---|---|---|")
    for goal in results.goals:
        print(f"| {goal['goal']} | {'yes' if goal['met'] else 'NO'} | {goal['detail']} |")
    return {
        "profile": results.profile,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "rows": results.rows,
        "goals": results.goals,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="about 3 minutes")
    parser.add_argument("--smoke", action="store_true", help="seconds; for the test suite")
    parser.add_argument("--output", default=str(REPO / "bench" / "results"))
    args = parser.parse_args()
    profile = "smoke" if args.smoke else "quick" if args.quick else "full"
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    latest = output / f"latest-{profile}.json"
    previous = json.loads(latest.read_text()) if latest.exists() else None
    with tempfile.TemporaryDirectory(prefix="noderegistry-bench-") as workdir:
        results = await Bench(profile, Path(workdir)).run()
    document = report(results, previous)
    text = json.dumps(document, indent=2)
    (output / f"{document['time'].replace(':', '')}-{profile}.json").write_text(text)
    latest.write_text(text)
    print(f"\nwrote {latest}")


if __name__ == "__main__":
    asyncio.run(main())
