"""The README's Health checks section runs as printed: the registry's checks (a gRPC service that
stops serving), the sidecar (an HTTP service beside `noderegistry register --check`), flap
damping (a crash loop of registrations). Only the addresses differ from what a reader types:
the frontend's (`127.0.0.1:50051`, or `NODEREGISTRY_ENDPOINTS` for the shell) and the checked
services' (`127.0.0.1:9600`, port 8081), which are this test's (on a shared machine those ports
may be anybody's)."""

from __future__ import annotations

import asyncio
import re
import shlex
import sys
from pathlib import Path

import pytest

from tests.support.cli import environment, read_line
from tests.support.health_servers import GrpcHealthServer, HttpHealthServer
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def health_blocks() -> list[tuple[str, str]]:
    """(language, code) of each fenced block of the Health checks section, in order."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Health checks\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", section, re.DOTALL)


async def _python(code: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        cwd=REPO,
        env=environment(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_the_health_checks_section_runs_as_printed(start_frontend):
    blocks = health_blocks()
    assert [language for language, _ in blocks] == ["python", "sh", "python"]
    frontend = await start_frontend()
    service = await GrpcHealthServer().start()
    await service.set("api.v1.Api", True)
    website = await HttpHealthServer().start()
    try:
        # 1. The registry's checks: PASSING, offered, then REMOVED (UNHEALTHY) once the gRPC
        # service stops serving.
        code = blocks[0][1].replace("127.0.0.1:50051", frontend.address)
        script = await _python(code.replace("127.0.0.1:9600", service.address))
        assert await read_line(script) == "PASSING"
        assert await read_line(script) == "['api-1']"
        await service.set("api.v1.Api", False)
        assert await read_line(script, timeout=5 * 3 + 5 + 5) == "REMOVED api-1 UNHEALTHY"
        assert await script.wait() == 0

        # 2. The sidecar, line by line: `&` keeps running.
        env = {"NODEREGISTRY_ENDPOINTS": frontend.address}
        sidecar_block = blocks[1][1].replace("8081", str(website.port))
        register_line, nodes_line = sidecar_block.strip().splitlines()
        args = shlex.split(register_line.partition("#")[0])
        assert args[-1] == "&"
        sidecar = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / args[0]),
            *args[1:-1],
            env=environment(env),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        first = await read_line(sidecar)
        assert first.startswith("registered dc1/web/web-1") and "health PASSING" in first

        async def listed() -> str:
            nodes = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).parent / "noderegistry"),
                *shlex.split(nodes_line.partition("#")[0])[1:],
                env=environment(env),
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await nodes.communicate()
            return out.decode()

        assert "web-1" in await listed()
        assert website.probes.count("/healthz") >= 1
        website.healthy = False  # the service fails its check: not listed as healthy any more
        await eventually(lambda: _not_listed(listed), timeout=5 * 3 + 5, message="web-1 failing")
        sidecar.send_signal(2)
        assert await sidecar.wait() == 0

        # 3. Flap damping: the sixth registration of a crash loop comes back damped.
        damping = await _python(blocks[2][1].replace("127.0.0.1:50051", frontend.address))
        assert await read_line(damping) == "FAILING True"
        assert await damping.wait() == 0
    finally:
        await service.stop()
        await website.stop()


async def _not_listed(listed) -> bool:
    return "web-1" not in await listed()
