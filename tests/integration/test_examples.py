"""The examples run as documented, against a real frontend."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from registry_service.domain import NodeKey, NodeStatus
from tests.support.api import node, register

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def test_a_session_node_picks_the_registered_data_nodes_that_are_up(start_frontend, connect):
    frontend = await start_frontend()
    # data-8 is registered too, but an operator put it OUT_OF_SERVICE: it gets no work.
    await register(connect(frontend), node("data-8"), ttl=60)
    await frontend.operations.set_override(
        NodeKey("dc1", "data", "data-8"), NodeStatus.OUT_OF_SERVICE, "test"
    )
    data = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "data_node.py"),
        "--target",
        frontend.address,
        "--id",
        "data-7",
        "--seconds",
        "60",
        stdout=asyncio.subprocess.PIPE,
    )
    assert data.stdout is not None
    async with asyncio.timeout(20):
        first = (await data.stdout.readline()).decode()
    assert first.startswith("registered dc1/data/data-7 (incarnation 1)")

    session = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "session_node.py"),
        "--target",
        frontend.address,
        "--requests",
        "3",
        "--interval",
        "0.05",
        stdout=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, _ = await session.communicate()
    assert session.returncode == 0
    assert out.decode().splitlines() == [f"request {i}: data-7 at 127.0.0.1:9600" for i in range(3)]
    lines = []
    async with asyncio.timeout(20):
        while not any(line.startswith("session session-1 joined") for line in lines):
            lines.append((await data.stdout.readline()).decode())
    assert lines[0] == "session nodes now: []\n"
    data.terminate()
    await data.wait()
