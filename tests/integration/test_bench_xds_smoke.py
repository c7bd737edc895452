"""bench/xds.py starts, measures the xDS fleets beside their WatchNodes baseline, checks every
client against the registry's view, and writes its JSON (nothing about speed: tests never)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


async def test_the_xds_smoke_benchmark_writes_its_rows(tmp_path):
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.xds",
        "--smoke",
        "--output",
        str(tmp_path),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(120):
        out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()[-3000:]
    document = json.loads((tmp_path / "xds-latest-smoke.json").read_text())
    rows = {row["figure"]: row for row in document["rows"]}
    assert rows["change->last of 10 xDS clients updated p99"]["baseline"] == (
        "10 WatchNodes subscribers"
    )
    churn = rows["200 changes with 5 xDS clients: converged after each quiet period, p99"]
    assert (churn["bursts_not_converged"], churn["nacks"]) == (0, 0)
    assert all(goal["met"] for goal in document["goals"])
