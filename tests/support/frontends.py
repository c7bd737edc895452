"""Registry frontends for tests: in-process (fast) or as a child process (to SIGKILL)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
import grpc.aio
from noderegistry.v1 import registry_pb2_grpc


class FrontendProcess:
    """`python -m registry_service serve` on a free port; its settings come as flags."""

    def __init__(self, flags: Sequence[str], log_path: Path) -> None:
        self.flags = list(flags)
        self.log_path = log_path
        self.process: subprocess.Popen[str] | None = None
        self.address = ""
        self.ready_line = ""

    async def start(self, timeout: float = 30.0) -> None:
        if self.process is not None and self.process.poll() is not None:
            self._close_pipe()  # the previous run's (a restart)
        log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "registry_service",
                "serve",
                "--listen",
                "127.0.0.1:0",
                *self.flags,
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        assert self.process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), timeout)
        self.ready_line = line
        match = re.search(r"serving on (\S+)", line)
        if not match:
            raise RuntimeError(f"frontend did not start: {line!r}; see {self.log_path}")
        self.address = match.group(1)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.send_signal(signal.SIGCONT)
            self.process.wait()
        self._close_pipe()

    def _close_pipe(self) -> None:
        """The process has ended: its stdout pipe is closed with it (or it leaks a file)."""
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    async def read_line(self, timeout: float = 30.0) -> str:
        assert self.process is not None and self.process.stdout is not None
        stdout = self.process.stdout
        return await asyncio.wait_for(asyncio.to_thread(stdout.readline), timeout)

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def terminate(self, timeout: float = 20.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close_pipe()
        return int(self.process.returncode)


def stub(address: str) -> tuple[grpc.aio.Channel, registry_pb2_grpc.RegistryStub]:
    channel = grpc.aio.insecure_channel(address)
    return channel, registry_pb2_grpc.RegistryStub(channel)
