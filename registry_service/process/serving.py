"""`noderegistry serve` as a process: a frontend, or a supervisor and its workers, and a local etcd
when no endpoints are set, until SIGINT or SIGTERM; the ready line. The frontend itself is
composed in app.py."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal

from registry_service.app import Frontend
from registry_service.listeners import Listeners
from registry_service.placement import Placement
from registry_service.port_claim import PortClaim
from registry_service.process import local_etcd
from registry_service.process.embedded_etcd import EtcdServer
from registry_service.process.gc_policy import collect_every, take_full_collections_off_the_hot_path
from registry_service.process.supervisor import (
    claim_shared_ports,
    supervise,
    supervisor_pid,
    verify_shared_ports,
)
from registry_service.settings import Settings, self_preservation_line
from registry_service.startup import ServeError, check_certificates, check_files

log = logging.getLogger(__name__)


async def serve(settings: Settings) -> None:
    """Runs a frontend, or a supervisor and its workers (and a local etcd when no endpoints are
    set), until SIGINT or SIGTERM.

    Raises:
        ServeError: it cannot start (a port served by another process, a file it cannot use,
            etcd unreachable), or the local etcd keeps dying.
    """
    worker = supervisor_pid() is not None
    supervising = not worker and (settings.workers or os.cpu_count() or 1) > 1
    check_files(settings)
    check_certificates(settings)
    Listeners.of(settings).check(worker=worker)
    if worker:
        verify_shared_ports(settings)
    claims = PortClaim()
    etcd: EtcdServer | None = None
    keeper: asyncio.Task[None] | None = None
    failures: list[ServeError] = []
    stop = asyncio.Event()
    try:
        if supervising:
            settings = await claim_shared_ports(settings, claims)
        if not settings.etcd_endpoints:
            etcd = local_etcd.local_etcd(settings)
            await local_etcd.start(etcd)
            settings = dataclasses.replace(settings, etcd_endpoints=(etcd.endpoint,))
            keeper = asyncio.create_task(
                _keep_etcd(etcd, settings.embedded_etcd_max_restarts, stop, failures)
            )
        _stop_on_signals(stop, worker=worker)
        if supervising:
            await supervise(settings, stop)
        else:
            await _run_frontend(settings, stop, reuse_port=worker)
    except ServeError:
        if failures:  # the local etcd's failure is the cause of whatever failed after it
            raise failures[0] from None
        raise
    finally:
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        if etcd is not None:
            await asyncio.to_thread(etcd.stop)
        claims.release()
        _ignore_interrupts()
    if failures:
        raise failures[0]


def _stop_on_signals(stop: asyncio.Event, *, worker: bool) -> None:
    """SIGTERM, and Ctrl-C (SIGINT), start one graceful stop; a second Ctrl-C during it is
    noted, never a traceback nor an abrupt exit. A worker leaves SIGINT alone (a Ctrl-C reaches
    every process of the terminal's group): its supervisor stops it with SIGTERM."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        if stop.is_set():
            log.info("%s: already stopping", signum.name)
        stop.set()

    if worker:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    else:
        loop.add_signal_handler(signal.SIGINT, on_signal, signal.SIGINT)
    loop.add_signal_handler(signal.SIGTERM, on_signal, signal.SIGTERM)


def _ignore_interrupts() -> None:
    """Once stopped, a late Ctrl-C must not raise KeyboardInterrupt inside the event loop's or
    grpc's teardown (which prints their tracebacks, or kills the process mid-exit)."""
    with contextlib.suppress(RuntimeError, ValueError):
        asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
    with contextlib.suppress(ValueError):  # not the main thread (tests): nothing to guard
        signal.signal(signal.SIGINT, signal.SIG_IGN)


async def _keep_etcd(
    etcd: EtcdServer, max_restarts: int, stop: asyncio.Event, failures: list[ServeError]
) -> None:
    """Keeps the local etcd running; when it cannot, the frontend stops and serve exits 1."""
    try:
        await local_etcd.keep_running(etcd, max_restarts)
    except ServeError as err:
        failures.append(err)
        stop.set()


async def _run_frontend(settings: Settings, stop: asyncio.Event, *, reuse_port: bool) -> None:
    placement = Placement.from_environment(os.environ)
    frontend = Frontend(settings, placement=placement)
    await frontend.start(reuse_port=reuse_port)
    collector = None
    if settings.gc_full_collection_seconds > 0:
        take_full_collections_off_the_hot_path()
        collector = asyncio.create_task(collect_every(settings.gc_full_collection_seconds))
    api_port = frontend.api.port if frontend.api is not None else 0
    print(frontend.listeners.ready_line(frontend.port, frontend.admin.port, api_port), flush=True)
    if not placement.behind_supervisor:
        log.info("%s", self_preservation_line(settings))
    await stop.wait()
    log.info("stopping: draining streams for up to %.1fs", settings.shutdown_grace_seconds)
    if collector is not None:
        collector.cancel()
    await frontend.stop()
