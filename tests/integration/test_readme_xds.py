"""The README's "Any gRPC client (xDS)" Python example runs as printed: its bootstrap file (the
frontend's address in place of 127.0.0.1:50051, as the Quick start's test does) in the working
directory, its code unchanged, against nodes that serve grpc.health.v1."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc.aio
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from noderegistry.v1 import registry_pb2 as pb

from tests.support.api import register

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
DEFAULT_TARGET = "127.0.0.1:50051"


def xds_blocks() -> dict[str, str]:
    """The first fenced block of each language in the section."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Any gRPC client (xDS)\n", 1)[1].split("\n## ", 1)[0]
    blocks: dict[str, str] = {}
    for language, code in re.findall(r"```(\w+)\n(.*?)```", section, re.DOTALL):
        blocks.setdefault(language, code)
    return blocks


@pytest.fixture
async def serving_node() -> AsyncIterator[int]:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    yield port
    await server.stop(0)


async def test_the_readme_python_example_reaches_a_registered_node(
    start_frontend, connect, serving_node, tmp_path: Path
):
    frontend = await start_frontend()
    await register(
        connect(frontend),
        pb.Node(id="data-1", type="data", datacenter="dc1", address=f"127.0.0.1:{serving_node}"),
    )
    blocks = xds_blocks()
    assert DEFAULT_TARGET in blocks["json"]
    (tmp_path / "bootstrap.json").write_text(
        blocks["json"].replace(DEFAULT_TARGET, frontend.address)
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        blocks["python"],
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert out.decode().strip() == "SERVING"
