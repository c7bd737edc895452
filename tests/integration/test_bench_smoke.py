"""The benchmark harness starts, measures with its baselines, and writes valid JSON, every family of
rows at a tiny size (it asserts nothing about speed: tests never do)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


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


def measured_or_said_why(row: dict[str, Any]) -> bool:
    return row["value"] is not None or bool(row.get("not_measured"))


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
    # ZooKeeper beside etcd and the registry: measured, or "not measured" with the reason.
    assert measured_or_said_why(rows["registrations/s (50, 64 in flight), beside ZooKeeper"])
    assert measured_or_said_why(rows["change->last of 10 subscribers p99, beside ZooKeeper"])
    assert document["goals"] and document["machine"]["cpus"]


@pytest.mark.timeout(300)
async def test_the_overload_and_scale_rows_run_at_tiny_sizes(tmp_path):
    out, document = await smoke(tmp_path, "burst,capacity,overload,scale")
    rows = figures(document)
    burst = "50 Registers (16 in flight) over 100 held, TTL 3"
    assert rows[f"burst: renewals on time during {burst}"]["baseline"] == (
        "the same leases before the burst"
    )
    assert f"burst: {burst}: held leases expired" in rows
    for who in ("clients holding many", "one registration per client"):
        capacity = rows[f"leases at TTL 3, {who} (smoke steps): capacity (largest step held, "
                        "one frontend process)"]  # fmt: skip
        assert capacity["steps"], capacity
        first = capacity["steps"][0]
        assert f"leases at TTL 3, {who} (smoke steps), step {first:,}: renewals on time" in rows
    assert any(name.startswith("overload: 2x capacity at TTL 3") for name in rows)
    scale = [row for name, row in rows.items() if name.startswith("scale, 200 nodes (smoke)")]
    assert len(scale) == 4 and all(measured_or_said_why(row) for row in scale)
    # Every goal has its verdict printed: met, NOT MET, or not measured with the reason.
    verdicts = {goal["met"] for goal in document["goals"]}
    assert verdicts <= {True, False, None}
    assert "| goal | met | measured |" in out
