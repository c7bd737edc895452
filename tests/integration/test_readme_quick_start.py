"""The README's Quick start runs top to bottom as printed (issue 11, problem 9), against a
frontend started here. Only the frontend's address differs from what a reader types: the shell
block gets it through `NODEREGISTRY_ENDPOINTS` (the CLI's own variable), and the Python blocks
have `127.0.0.1:50051` replaced by it (on a shared machine that port may be anybody's)."""

from __future__ import annotations

import asyncio
import re
import shlex
import signal
import sys
from pathlib import Path

import pytest

from tests.support.cli import environment

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
DEFAULT_TARGET = "127.0.0.1:50051"


def quick_start_blocks() -> list[tuple[str, str]]:
    """(language, code) of each fenced block of the Quick start section, in order."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", section, re.DOTALL)


async def _start(args: list[str], env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *args,
        cwd=REPO,
        env=environment(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _finish(process: asyncio.subprocess.Process) -> str:
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def _interrupt(process: asyncio.subprocess.Process) -> str:
    """Ctrl-C, as the comment says."""
    process.send_signal(signal.SIGINT)
    return await _finish(process)


async def _read_until(process: asyncio.subprocess.Process, text: str) -> str:
    assert process.stdout is not None
    seen = ""
    async with asyncio.timeout(30):
        while text not in seen:
            line = await process.stdout.readline()
            assert line, f"ended before printing {text!r}: {seen!r}"
            seen += line.decode()
    return seen


async def test_the_quick_start_runs_top_to_bottom_as_printed(start_frontend):
    frontend = await start_frontend()
    blocks = quick_start_blocks()
    assert [language for language, _ in blocks] == ["sh", "python", "python"]
    env = {"NODEREGISTRY_ENDPOINTS": frontend.address}
    printed: list[str] = []
    background: list[asyncio.subprocess.Process] = []
    try:
        # 1. The shell block, line by line: `&` keeps running, Ctrl-C stops `watch`.
        for line in blocks[0][1].splitlines():
            command, _, comment = line.partition("#")
            args = shlex.split(command)
            if args[-1] == "&":
                background.append(await _start(args[:-1], env))
            elif "Ctrl-C" in comment:
                watch = await _start(args, env)
                printed.append(await _read_until(watch, "ADDED dc1/data/data-1 "))
                printed.append(await _interrupt(watch))
            else:
                printed.append(await _finish(await _start(args, env)))
        assert "data-1" in printed[-1].splitlines()[1]  # `nodes`: its table lists data-1

        # 2. The Python blocks, with the CLI's data-1 still registered.
        for _, code in blocks[1:]:
            script = code.replace(DEFAULT_TARGET, frontend.address)
            printed.append(await _finish(await _start([sys.executable, "-c", script], {})))
        assert printed[-2].splitlines() == [
            "['data-1']",
            "ADDED data-2",
            "REMOVED data-2 DEREGISTERED",
        ]
        assert printed[-1].splitlines()[0] == "['data-1', 'job-7']"
    finally:
        for process in background:
            printed.append(await _interrupt(process))
    assert printed[-1].splitlines() == [
        "registered dc1/data/data-1 at 10.0.0.5:9600 (incarnation 1, TTL 10s); Ctrl-C deregisters",
        "deregistered dc1/data/data-1",
    ]
    assert "UNSPECIFIED" not in "".join(printed)
