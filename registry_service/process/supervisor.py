"""`serve --workers N`: N frontend processes on one gRPC port (SO_REUSEPORT), kept running.

Each worker is a whole frontend (its own etcd watch, evictor candidacy, admin port). The kernel
spreads new connections over the workers. A worker that dies is started again (with backoff);
SIGTERM is passed on to every worker, which then drain as a single frontend would. Each worker
serves its admin HTTP on a private loopback port; the supervisor serves the configured admin
address for the whole host (process/host_admin.py: one scrape gives every worker's metrics,
labelled by worker).

The supervisor claims the shared ports before any worker starts, and a worker joins only a port
its own supervisor claimed (port_claim.py, D42). A worker that cannot start says why in one
`error:` line on its stderr; the supervisor passes the first such line on as its own and stops
the others, so the user reads one line, not one per worker (D42). Every other line a worker
writes to stderr (its log) is passed on whole, so lines of two workers never interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

from registry_service.credentials import Credentials
from registry_service.credentials import stop as stop_credentials
from registry_service.host import Host
from registry_service.listeners import PRIVATE_ADMIN_LISTEN, Listener, Listeners, admin_url_of
from registry_service.part_configs import http_limits
from registry_service.placement import (
    HOST_ADMIN_URL_ENV,
    SUPERVISOR_PID_ENV,
    WORKER_COUNT_ENV,
    WORKER_INDEX_ENV,
)
from registry_service.port_claim import PortClaim, claimed_by
from registry_service.process.host_admin import HostAdmin
from registry_service.retry import Backoff, ThrottledLog
from registry_service.settings import (
    SECRET_FILE_VARIABLES,
    Settings,
    env_name,
    self_preservation_line,
)
from registry_service.startup import ServeError
from registry_service.web.auth import HttpAuth

log = logging.getLogger(__name__)


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


PARENT_ENV = SUPERVISOR_PID_ENV
_ERROR_PREFIX = b"error: "
_STOP_SECONDS = 10.0


def supervisor_pid() -> int | None:
    """In a worker: its supervisor's pid (None in a frontend that is not a worker)."""
    parent = os.environ.get(PARENT_ENV)
    return int(parent) if parent and parent.isdigit() else None


async def claim_shared_ports(settings: Settings, claims: PortClaim) -> Settings:
    """In the supervisor, before any worker starts: claims the ports the workers will share;
    returns the settings with each shared port 0 resolved to the port claimed.

    Raises:
        ServeError: another supervisor holds one (start-up checks already refused a port that
            any process listens on).
    """
    for listener in Listeners.of(settings).shared:
        if listener.port == 0:
            resolved = listener.at(_free_port(listener.host))
            resolved_ports: dict[str, Any] = {listener.setting: resolved.address}
            settings = dataclasses.replace(settings, **resolved_ports)
    for listener in Listeners.of(settings).shared:
        holder = await claims.claim(listener.port)
        if holder is not None:
            by = f"node-registry pid {holder}" if holder else "another node-registry"
            raise listener.refusal(f"address in use by {by}")
    return settings


def verify_shared_ports(settings: Settings) -> None:
    """In a worker: joins (SO_REUSEPORT) only ports that its own supervisor claimed.

    Raises:
        ServeError: a port is not claimed by this worker's parent.
    """
    parent = os.getppid()
    for listener in Listeners.of(settings).shared:
        if not claimed_by(listener.port, parent):
            raise listener.refusal(f"not claimed by this worker's supervisor, pid {parent}")


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


class WorkerStartError(Exception):
    """A worker ended before it served; the message is its own `error:` line."""


class Worker:
    """One worker process of the supervisor: how it was started, its admin address, its last
    error."""

    def __init__(
        self, index: int, settings: Settings, log_level: str, placement: dict[str, str]
    ) -> None:
        self.index = index
        self.settings = settings
        self.log_level = log_level
        self.placement = placement  # where it runs (placement.py), passed in its environment
        self.process: asyncio.subprocess.Process | None = None
        self.admin_address = ""
        self.error = ""  # the last `error:` line it wrote
        self.quiet = False  # set: its stderr is no longer passed on
        self._stderr: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Starts the process and waits for its ready line.

        Raises:
            WorkerStartError: it ended first (the message is its error line, or its exit status).
        """
        self.error = ""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "registry_service",
            "serve",
            "--log-level",
            self.log_level,
            env={**_environment(self.settings), **self.placement},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self._stderr = asyncio.create_task(self._pass_on(self.process.stderr))
        line = (await self.process.stdout.readline()).decode()
        self.admin_address = admin_url_of(line)
        if not self.admin_address:
            code = await self.process.wait()
            await self._stderr
            raise WorkerStartError(self.error or f"worker {self.index} exited with {code}")
        log.info(
            "worker %d (pid %d) serving; admin %s", self.index, self.process.pid, self.admin_address
        )

    async def _pass_on(self, stderr: asyncio.StreamReader) -> None:
        """Copies the worker's stderr to ours line by line, keeping its `error:` line back."""
        while line := await stderr.readline():
            if line.startswith(_ERROR_PREFIX):
                self.error = line[len(_ERROR_PREFIX) :].decode(errors="replace").strip()
            elif not self.quiet:
                sys.stderr.buffer.write(line)
                sys.stderr.flush()

    async def stop(self, timeout: float = _STOP_SECONDS) -> None:
        """SIGTERM (it drains), then SIGKILL after `timeout`."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


async def supervise(settings: Settings, stop: asyncio.Event) -> None:
    """Runs the workers until `stop` is set; prints one ready line when all of them serve.

    Raises:
        ServeError: a worker could not start (its own one-line reason).
    """
    count = settings.workers or Host.probe(os.environ).cpus
    listeners = Listeners.of(settings)  # the shared ports are not 0: claim_shared_ports resolved
    log_level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    workers: list[Worker] = []
    # The host's admin port first: the workers announce its URL, which answers for all of them.
    credentials = Credentials(settings, grpc_port=False)
    admin = _host_admin(
        credentials, listeners.admin, lambda: [worker.admin_address for worker in workers]
    )
    try:
        await admin.start()
    except OSError as err:
        raise listeners.admin.refusal(err) from err
    reloading = credentials.start()
    admin_url = listeners.admin.url(admin.port, host=listeners.advertised_host)
    workers.extend(
        Worker(
            i,
            # A worker's own admin port is private: the host's admin port is the supervisor's.
            dataclasses.replace(settings, workers=1, admin_listen=PRIVATE_ADMIN_LISTEN),
            log_level,
            {
                WORKER_INDEX_ENV: str(i),
                WORKER_COUNT_ENV: str(count),
                HOST_ADMIN_URL_ENV: admin_url,
            },
        )
        for i in range(count)
    )
    try:
        await _start_all(workers)
    except BaseException:
        await stop_credentials(reloading)
        await admin.stop()
        raise
    pids = ", ".join(str(w.process.pid) for w in workers if w.process)
    api_port = listeners.api.port if listeners.api is not None else 0
    print(
        listeners.ready_line(
            listeners.grpc.port, admin.port, api_port, workers=f"{count} workers, pids {pids}; "
        ),
        flush=True,
    )
    log.info("%s", self_preservation_line(settings))
    keepers = [asyncio.create_task(_keep_running(worker, stop)) for worker in workers]
    try:
        await stop.wait()
        for worker in workers:
            if worker.process is not None and worker.process.returncode is None:
                worker.process.send_signal(signal.SIGTERM)
        await asyncio.gather(*keepers)
    finally:
        await stop_credentials(reloading)
        await admin.stop()


async def _start_all(workers: list[Worker]) -> None:
    """Starts every worker; when one cannot, stops the others and raises its reason once."""
    starts = [asyncio.create_task(worker.start()) for worker in workers]
    try:
        for started in asyncio.as_completed(starts):
            await started
    except WorkerStartError as err:
        for worker in workers:
            worker.quiet = True  # the others would only repeat it, or log their shutdown
        for task in starts:
            task.cancel()
        await asyncio.gather(*starts, return_exceptions=True)
        await asyncio.gather(*(worker.stop() for worker in workers))
        raise ServeError(str(err)) from None


def _host_admin(
    credentials: Credentials, listener: Listener, workers: Callable[[], list[str]]
) -> HostAdmin:
    """The host's admin port, with the frontends' TLS, mTLS and tokens (web/auth.py), each
    read again when its files change, as in the workers."""
    settings = credentials.settings
    http_tls = credentials.http_tls
    return HostAdmin(
        listener,
        workers,
        auth=HttpAuth(
            credentials.tokens,
            settings.admin_token,
            client_certificates=listener.tls and bool(settings.tls_client_ca_file),
        ),
        ssl_context=http_tls.context if http_tls is not None else None,
        limits=http_limits(settings),
    )


async def _keep_running(worker: Worker, stop: asyncio.Event) -> None:
    backoff = Backoff(initial=0.5, maximum=30.0)
    restarts = ThrottledLog(log, f"worker {worker.index}")
    while True:
        assert worker.process is not None
        code = await worker.process.wait()
        if stop.is_set():
            return
        reason = f": {worker.error}" if worker.error else ""
        restarts.failed(f"pid {worker.process.pid} exited with {code}{reason}; starting it again")
        await backoff.wait()
        if stop.is_set():
            return
        try:
            await worker.start()
        except WorkerStartError:
            continue  # its exit is handled at the top
        restarts.succeeded()
        backoff.reset()
        print(f"worker {worker.index} restarted, pid {worker.process.pid}", flush=True)
