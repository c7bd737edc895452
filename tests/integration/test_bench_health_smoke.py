"""The health-check benchmark (bench/health_checks.py) starts, measures with its baseline, and
writes valid JSON (it asserts nothing about speed: tests never do)."""

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
        *("-m", "bench.health_checks", "--smoke", "--output", str(tmp_path)),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(110):
        out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()[-3000:]
    assert "| figure | value | baseline (same run) |" in out.decode()
    document = json.loads((tmp_path / "latest-health-smoke.json").read_text())
    rows = {row["figure"]: row for row in document["rows"]}
    probing = rows["frontend 1 of 2: cores with 50 nodes checked every 1s"]
    assert probing["baseline"] == "the same nodes without checks"
    assert probing["probed_nodes"] > 0 and probing["probes_per_second"] > 0
    assert {
        "FAILING seen, worst of 1 nodes (1s check)",
        "PASSING seen, worst of 1 nodes (1s check)",
    } <= set(rows)
    assert len(document["goals"]) == 3
