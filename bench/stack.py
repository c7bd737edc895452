"""Starting what the benchmarks measure: etcd members and registry frontends, on loopback, as child
processes of the run."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.expiries import ExpiryWatch
from bench.system import Processes, free_port
from registry_service.errors import StoreError
from registry_service.process.embedded_etcd import EtcdServer
from registry_service.store.etcd_client import EtcdClient, EtcdConfig

# What every frontend of the run is told beside its listen addresses: all clients come from one
# address here (thousands of subscribers or renewing clients from 127.0.0.1).
LOOPBACK_CLIENTS = ("--max-streams-per-peer", "100000")


async def start_etcd(directory: Path, name: str = "bench", quota_bytes: int = 0) -> EtcdServer:
    """A single-member etcd on two free loopback ports, ready to serve."""
    etcd = EtcdServer(
        data_dir=directory,
        client_port=free_port(),
        peer_port=free_port(),
        name=name,
        extra_args=[f"--quota-backend-bytes={quota_bytes}"] if quota_bytes else [],
    )
    etcd.start()
    await asyncio.to_thread(etcd.wait_ready)
    return etcd


async def connected(client: EtcdClient, timeout: float = 60.0) -> None:
    """Waits until `client` reaches its etcd (a first connection on a saturated machine can miss
    gRPC's connect deadline), so that a timed figure does not start with it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await client.kv.current_revision(b"/")
            return
        except StoreError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)  # a bounded retry (timeout)


@dataclass
class Frontend:
    """A frontend process (a supervisor when it has several workers) and its addresses."""

    process: subprocess.Popen[str]
    target: str
    admin: str
    api: str
    workers: int = 1

    @property
    def pid(self) -> int:
        return self.process.pid


async def start_frontend(
    processes: Processes,
    etcd_endpoint: str,
    log: Path,
    *,
    workers: int = 1,
    cluster: str = "bench",
    listen: str = "127.0.0.1:0",
    extra: Sequence[str] = LOOPBACK_CLIENTS,
) -> Frontend:
    """Starts `python -m registry_service serve` and waits for its ready line (printed once it has
    read every member and serves)."""
    process = processes.start(
        "-m",
        "registry_service",
        "serve",
        "--listen",
        listen,
        "--admin-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--etcd-endpoints",
        etcd_endpoint,
        "--cluster",
        cluster,
        "--workers",
        str(workers),
        *extra,
        log=log,
    )
    assert process.stdout is not None
    line = await asyncio.to_thread(process.stdout.readline)
    target = re.search(r"serving on (\S+)", line)
    admin = re.search(r"admin (http://\S+)\)", line)
    api = re.search(r"api (http://\S+)/v1/", line)
    if target is None or admin is None:
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise RuntimeError(f"frontend did not start: {line!r}\n{tail}")
    return Frontend(process, target.group(1), admin.group(1), api.group(1) if api else "", workers)


@dataclass
class Registry:
    """A registry of its own for one row: an etcd, one frontend, a client of that etcd, and the
    watch of its expiries."""

    etcd: EtcdServer
    etcd_client: EtcdClient
    frontend: Frontend
    cluster: str
    expiries: ExpiryWatch


@contextlib.asynccontextmanager
async def own_registry(
    processes: Processes,
    workdir: Path,
    name: str,
    *,
    workers: int = 1,
    extra: Sequence[str] = LOOPBACK_CLIENTS,
) -> AsyncIterator[Registry]:
    """A fresh etcd and frontend for rows that push a registry past what it can take: nothing of
    theirs (leases left to expire, a frontend that lost its evictor lease) reaches the next row.
    The frontend keeps the default eviction budget, so that expiries show as REMOVED or SUSPECT
    as they would in production."""
    etcd = await start_etcd(workdir / f"etcd-{name}", name=name, quota_bytes=8 * 1024**3)
    etcd_client = EtcdClient(EtcdConfig(endpoints=(etcd.endpoint,)))
    cluster = f"bench-{name}"
    try:
        frontend = await start_frontend(
            processes,
            etcd.endpoint,
            workdir / f"frontend-{name}.log",
            workers=workers,
            cluster=cluster,
            extra=extra,
        )
        expiries = ExpiryWatch(etcd_client, cluster, frontend.target)
        await expiries.start()
        try:
            yield Registry(etcd, etcd_client, frontend, cluster, expiries)
        finally:
            await expiries.close()
            processes.stop(frontend.process)
    finally:
        await etcd_client.close()
        await asyncio.to_thread(etcd.stop)
        shutil.rmtree(workdir / f"etcd-{name}", ignore_errors=True)


@contextlib.asynccontextmanager
async def own_etcd(workdir: Path, name: str) -> AsyncIterator[EtcdServer]:
    """A fresh etcd for a baseline that must not share one with a registry's leftovers."""
    etcd = await start_etcd(workdir / f"etcd-{name}", name=name, quota_bytes=8 * 1024**3)
    try:
        yield etcd
    finally:
        await asyncio.to_thread(etcd.stop)
        shutil.rmtree(workdir / f"etcd-{name}", ignore_errors=True)
