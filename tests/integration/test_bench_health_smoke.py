"""The health-check rows of `make bench` (bench/health_checks.py, the `health` family of
bench.run) start, measure with their baseline, and write valid JSON (nothing about speed: tests
never assert it)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


async def test_the_smoke_health_benchmark_writes_its_table_and_json(tmp_path):
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "bench.run", "--smoke", "--only", "health", "--output", str(tmp_path)),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(150):
        out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()[-3000:]
    assert "| figure | value | baseline (same run) |" in out.decode()
    (written,) = tmp_path.glob("*-smoke-only.json")
    document = json.loads(written.read_text())
    rows = {row["figure"]: row for row in document["rows"]}
    probing = rows["frontend 1 of 2: cores with 50 nodes checked every 1s"]
    assert probing["baseline"] == "the same nodes without checks"
    assert probing["probed_nodes"] > 0 and probing["probes_per_second"] > 0
    assert {
        "FAILING seen, worst of 1 nodes (1s check)",
        "PASSING seen, worst of 1 nodes (1s check)",
    } <= set(rows)
    assert len(document["goals"]) == 3
