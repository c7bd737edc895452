"""What the harness reads of the machine and of the processes it starts: loopback ports, CPU seconds
and resident memory from /proc (Linux), and the child processes every run kills at its end."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A loopback port free at the moment of the call (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    listing = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in listing.read_text().split()] if listing.exists() else []


def cpu_seconds_tree(pid: int) -> float:
    """CPU seconds of a process and its children (a frontend with workers is a supervisor and one
    process per worker)."""
    return cpu_seconds(pid) + sum(cpu_seconds_tree(child) for child in children(pid))


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children."""
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    own = int(match.group(1)) * 1024 if match else 0
    return own + sum(rss_bytes(child) for child in children(pid))


async def settled_rss(pid: int, timeout: float = 60.0) -> int:
    """rss_bytes once three samples a second apart differ by under 0.5% (or after timeout)."""
    deadline = time.monotonic() + timeout
    samples = [rss_bytes(pid)]
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        samples.append(rss_bytes(pid))
        last = samples[-3:]
        if len(last) == 3 and max(last) - min(last) < 0.005 * max(last):
            return samples[-1]
    return samples[-1]


class CpuShare:
    """Cores each named process (with its children) used since the share was made."""

    def __init__(self, **pids: int) -> None:
        self._pids = pids
        self._started = time.monotonic()
        self._before = {name: cpu_seconds_tree(pid) for name, pid in pids.items()}

    def cores(self) -> dict[str, float]:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        return {
            name: round((cpu_seconds_tree(pid) - self._before[name]) / elapsed, 3)
            for name, pid in self._pids.items()
        }


def load_average() -> float:
    """The machine's 1-minute load average: printed beside figures taken on shared cores."""
    return os.getloadavg()[0]


class Processes:
    """Processes the run starts (`python -m ...` in the repository); all killed at its end."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def start(
        self, *args: str, stdin: bool = False, log: Path | None = None
    ) -> subprocess.Popen[str]:
        return self.start_program(sys.executable, *args, stdin=stdin, log=log)

    def start_program(
        self, program: str, *args: str, stdin: bool = False, log: Path | None = None
    ) -> subprocess.Popen[str]:
        """Any executable (ZooKeeper's java), stdout a pipe, stderr to `log` when given."""
        process = subprocess.Popen(
            [program, *args],
            cwd=REPO,
            text=True,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log.open("a") if log else subprocess.DEVNULL,
        )
        self.started.append(process)
        return process

    @staticmethod
    def stop(process: subprocess.Popen[str]) -> None:
        if process.poll() is None:
            process.kill()
            process.wait()

    def stop_all(self) -> None:
        for process in self.started:
            self.stop(process)
        self.started.clear()
