"""ZooKeeper beside etcd and the registry (issue 21): Debian's `zookeeper` package, started by the
bench as a standalone server on loopback (as etcd is), and kazoo as its client. When either is
missing, or the profile leaves ZooKeeper out (the smoke one: the test suite runs no JVM), the rows
say "not measured" and why; nothing else changes.

Registrations: an ephemeral znode per node, created over 64 sessions with one create in flight
each (the registry's row has 64 Registers in flight). Fan-out: a child watch per subscriber, each
subscriber a session of its own (bench/zk_clients.py).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from bench.fleet import Fleet, fanout_latencies
from bench.system import Processes, free_port

ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
SESSIONS = 64


def missing() -> str:
    """Why ZooKeeper cannot run here ("" when it can)."""
    try:
        import kazoo  # noqa: F401
    except ImportError:
        return "kazoo is not installed (pip install -e '.[dev]')"
    if not ZOOKEEPER_JAR.exists():
        return "Debian's zookeeper package is not installed (make system-zookeeper)"
    if shutil.which("java") is None:
        return "no java on PATH (Debian's zookeeper package brings one)"
    return ""


def _answers(port: int, word: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(word)
        return sock.recv(64)


class ZooKeeperServer:
    """A standalone ZooKeeper on a free loopback port, its data in `directory`."""

    def __init__(self, processes: Processes, directory: Path) -> None:
        self._processes = processes
        self._directory = directory
        self.port = free_port()
        self.process: Any = None

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        data = self._directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self._directory / "zoo.cfg"
        config.write_text(
            f"tickTime=2000\ndataDir={data}\nclientPort={self.port}\n"
            "clientPortAddress=127.0.0.1\nmaxClientCnxns=0\nadmin.enableServer=false\n"
            "4lw.commands.whitelist=ruok\n"
        )
        self.process = self._processes.start_program(
            "java",
            "-Xmx1g",
            "-cp",
            str(ZOOKEEPER_JAR),
            "org.apache.zookeeper.server.ZooKeeperServerMain",
            str(config),
            log=self._directory / "zookeeper.log",
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if await asyncio.to_thread(_answers, self.port, b"ruok") == b"imok":
                    return
            except OSError:
                pass
            if self.process.poll() is not None:
                break
            await asyncio.sleep(0.2)  # a bounded wait for the JVM (60 s at the most)
        raise RuntimeError(f"ZooKeeper did not start (see {self._directory / 'zookeeper.log'})")

    def stop(self) -> None:
        if self.process is not None:
            self._processes.stop(self.process)


async def registrations(processes: Processes, hosts: str, count: int) -> dict[str, float]:
    """Registers `count` nodes in ZooKeeper (bench/zk_clients.py); rate and p99 latency."""
    process = processes.start(
        "-m", "bench.zk_clients", "register", hosts, str(count), str(SESSIONS)
    )
    assert process.stdout is not None
    line = await asyncio.to_thread(process.stdout.readline)
    await asyncio.to_thread(process.wait)
    if not line:
        raise RuntimeError("the ZooKeeper registration client failed")
    return json.loads(line)  # type: ignore[no-any-return]


class Trigger:
    """Creates the ephemeral znode of each fan-out change, from one session of the bench's."""

    def __init__(self, hosts: str) -> None:
        from kazoo.client import KazooClient

        self._client = KazooClient(hosts=hosts, timeout=30.0)

    async def start(self) -> None:
        await asyncio.to_thread(self._client.start, 60)

    async def __call__(self, marker: str) -> None:
        await asyncio.to_thread(self._client.create, f"/bench/fanout/{marker}", b"x", None, True)

    async def close(self) -> None:
        await asyncio.to_thread(self._client.stop)
        await asyncio.to_thread(self._client.close)


async def fanout_latencies_over(
    processes: Processes, hosts: str, subscribers: int, changes: int, count: int
) -> list[float]:
    """Seconds from each change (a new ephemeral znode) to the last of `subscribers` child
    watches over `count` client processes having it."""
    trigger = Trigger(hosts)
    await trigger.start()
    fleet = Fleet(processes, "zookeeper", hosts, subscribers, count, module="bench.zk_clients")
    try:
        await fleet.ready()
        return await fanout_latencies(fleet, trigger, changes)
    finally:
        fleet.close()
        await trigger.close()
