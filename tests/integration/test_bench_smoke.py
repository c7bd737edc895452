"""The benchmark harness starts, measures with its baselines, and writes valid JSON, every family of
rows at a tiny size (it asserts nothing about speed: tests never do). Each goal's verdict is checked
against the figures it was drawn from. The smoke profile leaves ZooKeeper out (the suite needs no
JVM; `make bench` measures it), and says so in the table."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
ZOOKEEPER_LEFT_OUT = "the smoke profile leaves ZooKeeper out (make bench measures it)"


async def smoke(output: Path, families: str) -> tuple[str, dict[str, Any]]:
    """Runs `python -m bench.run --smoke --only families`; its output and JSON document."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.run",
        "--smoke",
        "--only",
        families,
        "--output",
        str(output),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(280):
        out, _ = await process.communicate()
    text = out.decode()
    assert process.returncode == 0, text[-3000:]
    document = written(output)
    failed = [goal for goal in document["goals"] if goal["goal"].endswith("rows measured")]
    assert not failed, f"{failed}\n{text[-5000:]}"
    return text, document


def written(output: Path) -> dict[str, Any]:
    (document,) = output.glob("*-smoke-only.json")
    return json.loads(document.read_text())  # type: ignore[no-any-return]


def figures(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["figure"]: row for row in document["rows"]}


def goals(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {goal["goal"]: goal for goal in document["goals"]}


@pytest.mark.timeout(300)
async def test_the_smoke_benchmark_writes_its_table_and_json(tmp_path):
    out, document = await smoke(tmp_path, "control,federation,expiry,registrations,leases,fanout")
    assert "| figure | value | baseline (same run) |" in out
    rows = figures(document)
    assert "change->last of 10 subscribers p99" in rows
    assert "registrations/s (50, 64 in flight)" in rows
    assert "cross-datacenter change->subscriber in the other datacenter p99" in rows
    baselines = {row["baseline"] for row in rows.values() if "baseline" in row}
    assert {"direct etcd watchers", "direct etcd (lease + txn)", "same datacenter"} <= baselines
    floor = rows["frontend CPU per Register against its floor (50)"]
    assert floor["baseline"] == "raw grpc.aio unary call + a Python etcd client's lease + txn"
    # ZooKeeper's rows and goals are in the table, not measured, saying why (whether or not this
    # machine has ZooKeeper: the suite never starts a JVM).
    verdicts = goals(document)
    beside = {
        "registrations/s (50, 64 in flight), beside ZooKeeper": "registrations/s >= 0.5x "
        "ZooKeeper's (50)",
        "change->last of 10 subscribers p99, beside ZooKeeper": "registry fan-out p99 <= "
        "ZooKeeper's (10 subscribers)",
    }
    for figure, goal in beside.items():
        assert rows[figure]["value"] is None
        assert rows[figure]["not_measured"] == ZOOKEEPER_LEFT_OUT
        assert (verdicts[goal]["met"], verdicts[goal]["detail"]) == (None, ZOOKEEPER_LEFT_OUT)
    assert f"not measured: {ZOOKEEPER_LEFT_OUT}" in out
    assert document["machine"]["cpus"]


def burst_verdict(rows: dict[str, dict[str, Any]], label: str, burst: int) -> bool:
    """bench/burst.py's goal, from its rows."""
    expired = rows[f"burst: {label}: held leases expired"]
    return (
        rows[f"burst: {label}: completed in"]["registered"] == burst
        and expired["value"] == 0
        and expired["burst_leases_expired"] == 0
        and rows[f"burst: {label}: nodes shown SUSPECT"]["value"] == 0
        and rows[f"burst: renewals on time during {label}"]["value"] >= 99
    )


def capacity_verdict(rows: dict[str, dict[str, Any]], label: str) -> bool | None:
    """bench/capacity.py's "past capacity" goal, from its rows: None when no step broke, else
    whether the step that broke refused Registers and kept every held lease on time."""
    capacity = rows[f"{label}: capacity (largest step held, one frontend process)"]
    assert capacity["steps"], capacity
    for step in capacity["steps"]:
        assert f"{label}, step {step:,}: false expiries" in rows
    if capacity["broke_at"] is None:
        return None
    broke = rows[f"{label}, step {capacity['broke_at']:,}: renewals on time"]
    assert broke["refusals_counted_by"] in (
        "clients",
        "frontend (noderegistry_admission_refused_total)",
    )
    return (
        broke["registers_refused"] > 0
        and broke["value"] >= 99
        and broke["false_expiries"] == 0
        and broke["suspect"] == 0
    )


@pytest.mark.timeout(300)
async def test_the_overload_and_scale_rows_run_at_tiny_sizes(tmp_path):
    out, document = await smoke(tmp_path, "burst,capacity,overload,scale")
    rows = figures(document)
    verdicts = goals(document)
    # Every goal's verdict is the one its figures give; every goal is accounted for below.
    expected: dict[str, bool | None] = {}
    burst = "50 Registers (16 in flight) over 100 held, TTL 3"
    assert rows[f"burst: renewals on time during {burst}"]["baseline"] == (
        "the same leases before the burst"
    )
    expected[
        f"{burst}: 0 false expiries, 0 SUSPECT, >= 99% renewals on time, the burst completes"
    ] = burst_verdict(rows, burst, 50)
    for who in ("clients holding many", "one registration per client"):
        label = f"leases at TTL 3, {who} (smoke steps)"
        expected[
            f"{label}: past capacity new Registers are refused and held leases never expire"
        ] = capacity_verdict(rows, label)
    overload = [name for name in verdicts if name.startswith("overload: 2x capacity at TTL 3")]
    assert len(overload) == 1, verdicts
    label = "overload: 2x capacity at TTL 3 for 3 s (smoke)"
    recovery = rows[f"{label}: time to full renewal rate after it"]
    assert recovery["value"] is not None or recovery["not_measured"]
    expired = rows[f"{label}: original leases expired"]["value"]
    recovered = recovery["value"] is not None and recovery["value"] <= 3
    expected[overload[0]] = recovered and expired == 0
    scale = [row for name, row in rows.items() if name.startswith("scale, 200 nodes (smoke)")]
    assert len(scale) == 4, scale
    for row in scale:
        assert row["value"] is not None or row["not_measured"], row
    for name in verdicts:
        if name.startswith("200 nodes (smoke): "):  # a goal for 100,000 nodes: not this profile's
            expected[name] = None
            assert verdicts[name]["detail"].endswith(
                "(this profile has 200 nodes; the goal is for 100,000)"
            )
    assert len(expected) == 4 + 4
    assert {name: goal["met"] for name, goal in verdicts.items()} == expected
    assert "| goal | met | measured |" in out


@pytest.mark.timeout(300)
async def test_the_xds_rows_run_beside_watchnodes(tmp_path):
    """bench/xds.py's two families: the fan-out to xDS clients beside as many WatchNodes
    subscribers, and the churn with every client's endpoint set checked after each burst."""
    out, document = await smoke(tmp_path, "xds,xds-churn")
    rows = figures(document)
    for q in (50, 99):
        row = rows[f"change->last of 10 xDS clients updated p{q}"]
        assert row["baseline"] == "10 WatchNodes subscribers"
        assert row["value"] > 0 and row["baseline_value"] > 0
        assert row["changes"] == 5
    churn = rows["200 changes with 5 xDS clients: converged after each quiet period, p99"]
    assert churn["bursts"] == 2
    assert (churn["bursts_not_converged"], churn["nacks"]) == (0, 0)
    (goal,) = document["goals"]  # the fan-out's goal is for 1,000 clients: not this profile's
    assert goal["goal"].startswith("200 changes with 5 xDS clients: every endpoint set equals")
    assert goal["met"] is True
    assert "| change->last of 10 xDS clients updated p99 |" in out


@pytest.mark.timeout(300)
async def test_the_console_rows_run_in_chromium(tmp_path):
    """bench/console.py's family: the console's first paint and its applying of changes, each
    beside the same stream read bare in the same page (issue 26)."""
    out, document = await smoke(tmp_path, "console")
    rows = figures(document)
    paint = rows["console: first paint with 200 nodes (navigation -> first page shown)"]
    assert paint["baseline"] == "the same snapshot read bare from /v1/watch and parsed"
    applied = rows["console: apply 20 changes among 200 nodes (first arrives -> last shown)"]
    assert applied["baseline"] == "the same events on a bare event stream (first -> last)"
    assert paint["value"] > 0 and applied["value"] >= 0 and applied["changes"] == 20
    assert "| console: first paint with 200 nodes" in out
