"""`serve --workers N`: N frontend processes on one gRPC port (SO_REUSEPORT), kept running.

Each worker is a whole frontend (its own etcd watch, evictor candidacy, admin port). The kernel
spreads new connections over the workers. A worker that dies is started again; SIGTERM is passed
on to every worker, which then drain as a single frontend would. Each worker serves its admin HTTP
on a private loopback port; the supervisor serves the configured admin address for the whole host
(host_admin.py: one scrape gives every worker's metrics, labelled by worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import logging
import os
import re
import signal
import socket
import sys

from registry_service.host import Host
from registry_service.host_admin import HostAdmin
from registry_service.settings import SECRET_FILE_VARIABLES, Settings, env_name

log = logging.getLogger(__name__)


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


PARENT_ENV = "NODEREGISTRY_SUPERVISOR_PID"


def die_with_supervisor() -> None:
    """In a worker: get SIGTERM when the supervisor dies (Linux), so no worker outlives it."""
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != int(parent):  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _environment(settings: Settings) -> dict[str, str]:
    """The supervisor's environment with every setting as resolved here (secrets read from their
    files already: a worker given both a secret and its _FILE would refuse to start)."""
    env = {k: v for k, v in os.environ.items() if k not in SECRET_FILE_VARIABLES}
    env[PARENT_ENV] = str(os.getpid())
    for field in dataclasses.fields(Settings):
        value = getattr(settings, field.name)
        env[env_name(field.name)] = ",".join(value) if isinstance(value, tuple) else str(value)
    return env


class Worker:
    def __init__(self, index: int, settings: Settings) -> None:
        self.index = index
        self.settings = settings
        self.process: asyncio.subprocess.Process | None = None
        self.admin_address = ""

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "registry_service",
            "serve",
            env=_environment(self.settings),
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.process.stdout is not None
        line = (await self.process.stdout.readline()).decode()
        match = re.search(r"admin (http://\S+)\)", line)
        if not match:
            raise RuntimeError(f"worker {self.index} did not start: {line!r}")
        self.admin_address = match.group(1)
        log.info(
            "worker %d (pid %d) serving; admin %s", self.index, self.process.pid, self.admin_address
        )


async def supervise(settings: Settings, stop: asyncio.Event) -> None:
    """Runs the workers until `stop` is set; prints one ready line when all of them serve."""
    count = settings.workers or Host.probe(os.environ).cpus
    host, _, port_text = settings.listen.rpartition(":")
    port = int(port_text) or _free_port(host)
    workers = [
        Worker(
            i,
            dataclasses.replace(
                settings,
                workers=1,
                reuse_port=True,
                listen=f"{host}:{port}",
                admin_listen="127.0.0.1:0",  # private: the host's admin port is the supervisor's
            ),
        )
        for i in range(count)
    ]
    await asyncio.gather(*(worker.start() for worker in workers))
    admin = HostAdmin(settings.admin_listen, lambda: [worker.admin_address for worker in workers])
    await admin.start()
    pids = ", ".join(str(w.process.pid) for w in workers if w.process)
    print(
        f"node-registry serving on {host}:{port} ({count} workers, pids {pids}; admin "
        f"{admin.address})",
        flush=True,
    )
    keepers = [asyncio.create_task(_keep_running(worker, stop)) for worker in workers]
    try:
        await stop.wait()
        for worker in workers:
            if worker.process is not None and worker.process.returncode is None:
                worker.process.send_signal(signal.SIGTERM)
        await asyncio.gather(*keepers)
    finally:
        await admin.stop()


async def _keep_running(worker: Worker, stop: asyncio.Event) -> None:
    while True:
        assert worker.process is not None
        code = await worker.process.wait()
        if stop.is_set():
            return
        log.warning(
            "worker %d (pid %d) exited with %s; starting it again",
            worker.index,
            worker.process.pid,
            code,
        )
        await asyncio.sleep(0.5)
        with contextlib.suppress(RuntimeError):
            await worker.start()
            print(f"worker {worker.index} restarted, pid {worker.process.pid}", flush=True)
