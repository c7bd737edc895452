"""The benchmark harness starts, measures with its baselines, and writes valid JSON (it asserts
nothing about speed: tests never do)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


async def test_the_smoke_benchmark_writes_its_table_and_json(tmp_path):
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.run",
        "--smoke",
        "--output",
        str(tmp_path),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(180):  # the console's figure starts a Chromium too
        out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()[-3000:]
    assert "| figure | value | baseline (same run) |" in out.decode()
    document = json.loads((tmp_path / "latest-smoke.json").read_text())
    figures = {row["figure"] for row in document["rows"]}
    assert "change->last of 10 subscribers p99" in figures
    assert "registrations/s (50, 64 in flight)" in figures
    assert "cross-datacenter change->subscriber in the other datacenter p99" in figures
    assert "console: first paint with 200 nodes (navigation -> first page shown)" in figures
    assert "console: apply 20 changes among 200 nodes (first arrives -> last shown)" in figures
    baselines = {row["baseline"] for row in document["rows"] if "baseline" in row}
    assert {"direct etcd watchers", "direct etcd (lease + txn)", "same datacenter"} <= baselines
    assert document["goals"] and document["machine"]["cpus"]
