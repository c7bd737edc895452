"""Fan-out rows: a change -> the last of W subscribers, on the registry beside direct etcd watchers
and the raw grpc.aio fan-out server (the ceiling of any Python frontend); the frontend's own stage
histograms over the same changes; the writer's Register during the fan-out; memory per
subscriber."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import aiohttp
import grpc.aio
from noderegistry.v1 import registry_pb2 as pb
from prometheus_client.parser import text_string_to_metric_families

from bench.fleet import Fleet, fanout_latencies
from bench.harness import Bench, bench_node
from bench.stats import bucket_quantile, percentile
from bench.system import rss_bytes, settled_rss
from bench.zookeeper import fanout_latencies_over

STAGES = ("commit_to_received", "received_to_queued", "queued_to_written", "written_to_acked")


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


async def fanout(bench: Bench, subscribers: int) -> None:
    changes, count = bench.config["changes"], bench.config["processes"]
    print(f"fan-out to {subscribers} subscribers ({changes} changes)", flush=True)
    # A frontend just started is still loading every member: measure from where it settles.
    rss_before = await settled_rss(bench.frontend.pid)

    register_latencies: list[float] = []
    probe_latencies: list[float] = []  # an etcd put at the same moment: etcd's own delay

    async def timed(latencies: list[float], call: Any) -> None:
        started = time.monotonic()
        await call
        latencies.append(time.monotonic() - started)

    async def registry_trigger(marker: str, node_type: str = "bench") -> None:
        register = bench.stub.Register(
            pb.RegisterRequest(node=bench_node(marker, node_type), ttl_seconds=60)
        )
        probe = bench.etcd_client.kv.put(b"/bench/probe", marker.encode())
        await asyncio.gather(timed(register_latencies, register), timed(probe_latencies, probe))

    # The writer's own Register with nobody watching, on the same frontend: its baseline
    # (of a type outside the subscribers' scope, so that their snapshots do not grow).
    for i in range(changes):
        await registry_trigger(f"quiet{i}-{secrets.token_hex(3)}", "quiet")
    quiet, register_latencies = register_latencies, []
    quiet_probe, probe_latencies = probe_latencies, []

    async def etcd_trigger(marker: str) -> None:
        await bench.etcd_client.kv.put(b"/bench/fanout/" + marker.encode(), b"x")

    async with grpc.aio.insecure_channel(bench.raw_target) as raw_channel:
        push = raw_channel.unary_unary("/bench.Raw/Push")

        async def raw_trigger(marker: str) -> None:
            await push(marker.encode())

        figures, reopened = {}, {}
        for kind, target, trigger in (
            ("registry", bench.target, registry_trigger),
            ("direct etcd watchers", bench.etcd.endpoint, etcd_trigger),
            ("raw grpc.aio fan-out", bench.raw_target, raw_trigger),
        ):
            fleet_kind = {"registry": "registry", "direct etcd watchers": "etcd"}.get(kind, "raw")
            fleet = Fleet(bench.processes, fleet_kind, target, subscribers, count)
            try:
                await fleet.ready()
                if kind == "registry":
                    await asyncio.sleep(1)  # let the frontend settle its RSS
                    per_subscriber = (rss_bytes(bench.frontend.pid) - rss_before) / subscribers
                    stages_before = await stage_buckets(bench.admin)
                figures[kind] = await fanout_latencies(fleet, trigger, changes)
                if kind == "registry":
                    stages_after = await stage_buckets(bench.admin)
                reopened[kind] = fleet.reopened
            finally:
                fleet.close()
    ours, etcd, raw = (
        figures[k] for k in ("registry", "direct etcd watchers", "raw grpc.aio fan-out")
    )
    for q in (50, 99):
        bench.results.add(
            f"change->last of {subscribers} subscribers p{q}",
            percentile(ours, q) * 1000,
            "ms",
            "direct etcd watchers",
            percentile(etcd, q) * 1000,
            subscribers=subscribers,
            opens_shed_and_retried=reopened["registry"],
        )
        bench.results.add(
            f"raw fan-out limit, {subscribers} subscribers p{q}",
            percentile(raw, q) * 1000,
            "ms",
            subscribers=subscribers,
            opens_shed_and_retried=reopened["raw grpc.aio fan-out"],
        )
    stage_figures(bench, subscribers, stages_before, stages_after, ours)
    busy, calm = percentile(register_latencies, 50), percentile(quiet, 50)
    bench.results.add(
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
    if subscribers == max(bench.config["subscribers"]):
        bench.results.goal(
            f"Register p50 while {subscribers:,} subscribers receive a change <= 2x its p50 "
            "with none",
            busy <= 2 * calm,
            f"{busy * 1000:.1f} vs {calm * 1000:.1f} ms: {busy / calm:.2f}x",
        )
    bench.results.add(
        f"frontend memory per subscriber ({subscribers})",
        per_subscriber / 1024,
        "KiB",
        subscribers=subscribers,
    )
    p99, p99_etcd, p99_raw = (percentile(x, 99) for x in (ours, etcd, raw))
    if subscribers == 1000:
        bench.results.goal(
            "1,000 subscribers p99 <= direct etcd watchers",
            p99 <= p99_etcd,
            f"{p99 * 1000:.1f} ms vs {p99_etcd * 1000:.1f} ms",
        )
        bench.results.goal(
            "1,000 subscribers p99 <= 1.2x raw fan-out limit",
            p99 <= 1.2 * p99_raw,
            f"{p99 / p99_raw:.2f}x",
        )
    if subscribers == 5000:
        bench.results.goal("5,000 subscribers p99 <= 300 ms", p99 <= 0.3, f"{p99 * 1000:.0f} ms")
    bench.results.goal(
        f"memory per subscriber <= 50 KB ({subscribers})",
        per_subscriber <= 50_000,
        f"{per_subscriber / 1024:.1f} KiB",
    )
    if subscribers == bench.config["zookeeper_subscribers"]:
        await beside_zookeeper(bench, subscribers, ours)


def stage_figures(
    bench: Bench,
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
            bench.results.add(
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


async def beside_zookeeper(bench: Bench, subscribers: int, ours: list[float]) -> None:
    """The same number of subscribers as ZooKeeper child watches, the same number of changes as
    new ephemeral znodes: the design this registry replaces, in the same run."""
    figure = f"change->last of {subscribers} subscribers p99, beside ZooKeeper"
    goal = f"registry fan-out p99 <= ZooKeeper's ({subscribers:,} subscribers)"
    server = await bench.zookeeper()
    if server is None:
        bench.results.not_measured(figure, bench.zookeeper_missing)
        bench.results.goal(goal, None, bench.zookeeper_missing)
        return
    changes, count = bench.config["changes"], bench.config["zookeeper_processes"]
    try:
        theirs = await fanout_latencies_over(
            bench.processes, server.hosts, subscribers, changes, count
        )
    except (TimeoutError, RuntimeError) as err:
        reason = f"the ZooKeeper subscribers failed: {err!r}"
        bench.results.not_measured(figure, reason)
        bench.results.goal(goal, None, reason)
        return
    p99, their_p99 = percentile(ours, 99), percentile(theirs, 99)
    bench.results.add(
        figure,
        p99 * 1000,
        "ms",
        "ZooKeeper child watches (a session each)",
        their_p99 * 1000,
        subscribers=subscribers,
        zookeeper_client_processes=count,
        zookeeper_p50_ms=round(percentile(theirs, 50) * 1000, 3),
        registry_p50_ms=round(percentile(ours, 50) * 1000, 3),
    )
    bench.results.goal(
        goal, p99 <= their_p99, f"{p99 * 1000:.1f} ms vs ZooKeeper's {their_p99 * 1000:.1f} ms"
    )
