"""The installed `noderegistry` command (the .venv's entry point) run as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

COMMAND = Path(sys.executable).parent / "noderegistry"


def environment(variables: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any NODEREGISTRY_* variable, plus `variables`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NODEREGISTRY_")}
    return {**clean, **(variables or {})}


async def start_cli(*args: str, env: Mapping[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        COMMAND,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment(env),
    )


@contextlib.asynccontextmanager
async def running_cli(
    *args: str, env: Mapping[str, str] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A long-running verb (register, watch); killed on the way out if still running."""
    process = await start_cli(*args, env=env)
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 30
) -> tuple[int, str, str]:
    """Runs the command to its end: (exit status, stdout, stderr)."""
    process = await start_cli(*args, env=env)
    async with asyncio.timeout(timeout):
        out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def read_line(process: asyncio.subprocess.Process, timeout: float = 15) -> str:
    assert process.stdout is not None
    async with asyncio.timeout(timeout):
        line = await process.stdout.readline()
    assert line, "the command ended without printing the line"
    return line.decode().rstrip("\n")


async def interrupt(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    """Ctrl-C, then (exit status, the rest of stdout, stderr)."""
    process.send_signal(signal.SIGINT)
    async with asyncio.timeout(20):
        out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()
