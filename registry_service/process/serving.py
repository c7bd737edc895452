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
from registry_service.settings import Settings
from registry_service.startup import ServeError, check_files

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
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
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
    if failures:
        raise failures[0]


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
    await stop.wait()
    log.info("stopping: draining streams for up to %.1fs", settings.shutdown_grace_seconds)
    if collector is not None:
        collector.cancel()
    await frontend.stop()
