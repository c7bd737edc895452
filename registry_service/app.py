"""Composition root: settings -> etcd client -> store -> watch hub -> evictor -> registry -> gRPC.

Shutdown runs in the reverse order: health NOT_SERVING first, then streams end with UNAVAILABLE,
then the server stops within the grace period, the evictor resigns (so another frontend takes
over at once), and the etcd connections close. Registrations are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import signal
import socket
import time

import grpc.aio

from registry_service.admin import AdminConfig, AdminServer
from registry_service.bearer_tokens import TokenTable
from registry_service.embedded_etcd import EtcdServer
from registry_service.evictor import Evictor
from registry_service.gc_policy import collect_every, take_full_collections_off_the_hot_path
from registry_service.metrics import Metrics, MetricsInterceptor
from registry_service.registry import Registry
from registry_service.rpc.access import AuthInterceptor
from registry_service.rpc.server import (
    KeepalivePolicy,
    build_health_server,
    build_server,
    server_credentials,
    set_serving,
)
from registry_service.rpc.servicer import RegistryServicer
from registry_service.self_preservation import BudgetPolicy
from registry_service.settings import Settings
from registry_service.store.etcd import EtcdRegistryStore
from registry_service.store.etcd_client import EtcdClient, EtcdConfig
from registry_service.supervisor import supervise
from registry_service.watch_hub import WatchHub

log = logging.getLogger(__name__)


def new_frontend_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Frontend:
    """One registry frontend process's worth of parts, started and stopped in order."""

    def __init__(self, settings: Settings, frontend_id: str | None = None) -> None:
        self.settings = settings
        self.frontend_id = frontend_id or new_frontend_id()
        self.metrics = Metrics()
        self.stopping = False
        self.client = EtcdClient(
            EtcdConfig(
                endpoints=settings.etcd_endpoints,
                username=settings.etcd_username,
                password=settings.etcd_password,
                ca_file=settings.etcd_ca_file,
                cert_file=settings.etcd_cert_file,
                key_file=settings.etcd_key_file,
                request_timeout_seconds=settings.etcd_request_timeout_seconds,
                watch_stale_seconds=settings.etcd_watch_stale_seconds,
            ),
            observe=self.metrics.observe_etcd,
        )
        self.store = EtcdRegistryStore(
            self.client,
            settings.prefix,
            self.frontend_id,
            audit_retention_seconds=settings.audit_retention_seconds,
        )
        self.hub = WatchHub(
            self.store,
            history_revisions=settings.watch_history_revisions,
            queue_messages=settings.watch_queue_messages,
            progress_seconds=settings.watch_progress_seconds,
            store_connected=lambda: self.client.watcher.connected,
            observe=self.metrics.observe_stage,
        )
        self.evictor = Evictor(
            self.store,
            self.hub,
            candidate=self.frontend_id,
            lease_ttl_seconds=settings.evictor_lease_ttl_seconds,
            poll_seconds=settings.evictor_poll_seconds,
            reconcile_seconds=settings.evictor_reconcile_seconds,
            policy=BudgetPolicy(
                ratio=settings.eviction_budget_ratio,
                minimum=settings.eviction_budget_minimum,
                window_seconds=settings.eviction_window_seconds,
                ceiling_seconds=settings.suspect_ceiling_seconds,
            ),
            dry_run=settings.evictor_dry_run,
            store_settled=self._store_settled,
        )
        self.registry = Registry(
            self.store,
            self.hub,
            settings.limits,
            sync_timeout_seconds=settings.etcd_request_timeout_seconds,
            coalesce_seconds=settings.keepalive_coalesce_seconds,
        )
        self.tokens = TokenTable.load(settings.auth_tokens_file)
        self.servicer = RegistryServicer(
            self.registry,
            max_registrations_per_stream=settings.keepalive_max_registrations_per_stream,
            metrics=self.metrics,
            tokens=self.tokens,
            max_streams_per_peer=settings.max_streams_per_peer,
            keepalive_max_messages_per_second=settings.keepalive_max_messages_per_second,
        )
        self.metrics.attach(self.hub, self.evictor)
        self.admin = AdminServer(
            AdminConfig(
                listen=settings.admin_listen,
                frontend_id=self.frontend_id,
                metrics=self.metrics.registry,
                readiness=self.readiness,
                watch=self.hub,
                eviction=self.evictor,
                operations=self.registry,
                admin_token=settings.admin_token,
                tokens=self.tokens,
            )
        )
        self.server: grpc.aio.Server | None = None
        self.health_server: grpc.aio.Server | None = None
        self.health_port = 0
        self._health = None
        self._evictor_task: asyncio.Task[None] | None = None
        self.port = 0

    def _store_settled(self) -> bool:
        """etcd has been reachable for the outage grace period (the evictor may act)."""
        watcher = self.client.watcher
        return (
            watcher.connected
            and time.monotonic() - watcher.connected_since
            >= self.settings.evictor_outage_grace_seconds
        )

    @property
    def address(self) -> str:
        host = self.settings.listen.rpartition(":")[0]
        return f"{host}:{self.port}"

    def readiness(self) -> tuple[bool, str]:
        """Ready: not stopping, the member list loaded, and the etcd watch connected."""
        if self.stopping:
            return False, "shutting down"
        if not self.hub.revision:
            return False, "member list not loaded yet"
        if not self.client.watcher.connected:
            return False, "etcd watch not connected (etcd unreachable or without a leader)"
        return True, "ok"

    async def start(self, reuse_port: bool = False) -> None:
        await self.hub.start()
        await self._wait_for_watch()
        self._evictor_task = asyncio.create_task(self.evictor.run(), name="evictor")
        settings = self.settings
        self.server, self._health = build_server(
            self.servicer,
            max_receive_message_bytes=settings.max_receive_message_bytes,
            max_metadata_bytes=settings.max_metadata_bytes,
            keepalive=KeepalivePolicy(
                min_ping_interval_seconds=settings.grpc_min_ping_interval_seconds,
                max_ping_strikes=settings.grpc_max_ping_strikes,
                keepalive_time_seconds=settings.grpc_keepalive_time_seconds,
                keepalive_timeout_seconds=settings.grpc_keepalive_timeout_seconds,
            ),
            interceptors=[MetricsInterceptor(self.metrics), AuthInterceptor(self.tokens)],
            reuse_port=reuse_port,
        )
        if settings.tls_cert_file:
            credentials = server_credentials(
                settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
            )
            self.port = self.server.add_secure_port(settings.listen, credentials)
        else:
            self.port = self.server.add_insecure_port(settings.listen)
        if self.port == 0:
            raise OSError(f"cannot listen on {settings.listen}")
        await self.server.start()
        if settings.health_listen:
            self.health_server = build_health_server(self._health, reuse_port)
            self.health_port = self.health_server.add_insecure_port(settings.health_listen)
            if self.health_port == 0:
                raise OSError(f"cannot listen on {settings.health_listen}")
            await self.health_server.start()
        await self.admin.start()
        await set_serving(self._health, True)
        log.info(
            "node-registry %s serving on %s (etcd %s, prefix %s)",
            self.frontend_id,
            self.address,
            ",".join(self.settings.etcd_endpoints),
            self.settings.prefix,
        )

    async def _wait_for_watch(self) -> None:
        """Serves only once the etcd watch is up: before, every write would be refused as if
        etcd were down (store-outage mode)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.etcd_request_timeout_seconds):
                await self.client.watcher.up.wait()
        if not self.client.watcher.connected:
            log.warning("the etcd watch is not up yet: serving cached lists, refusing writes")

    async def stop(self) -> None:
        self.stopping = True
        if self._health is not None:
            await set_serving(self._health, False)
        self.servicer.begin_shutdown()
        await self.hub.close()
        if self.server is not None:
            await self.server.stop(self.settings.shutdown_grace_seconds)
        if self.health_server is not None:
            await self.health_server.stop(0)
        if self._evictor_task is not None:
            self._evictor_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._evictor_task
        await self.evictor.close()
        await self.client.close()
        await self.admin.stop()


async def serve(settings: Settings) -> None:
    """Runs a frontend (and a local etcd when no endpoints are set) until SIGINT or SIGTERM."""
    etcd: EtcdServer | None = None
    if not settings.etcd_endpoints:
        etcd = EtcdServer(
            data_dir=os.path.join(settings.embedded_etcd_dir, "member-data"),
            client_port=settings.embedded_etcd_port,
            peer_port=settings.embedded_etcd_port + 1,
            name="local",
        )
        log.info(
            "no etcd endpoints configured: starting a local etcd on %s (data in %s)",
            etcd.endpoint,
            settings.embedded_etcd_dir,
        )
        etcd.start()
        await asyncio.to_thread(etcd.wait_ready)
        settings = dataclasses.replace(settings, etcd_endpoints=(etcd.endpoint,))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if (settings.workers or os.cpu_count() or 1) > 1:
        try:
            await supervise(settings, stop)
        finally:
            if etcd is not None:
                await asyncio.to_thread(etcd.stop)
        return
    frontend = Frontend(settings)
    try:
        await frontend.start(reuse_port=settings.reuse_port)
        collector = None
        if settings.gc_full_collection_seconds > 0:
            take_full_collections_off_the_hot_path()
            collector = asyncio.create_task(collect_every(settings.gc_full_collection_seconds))
        print(
            f"node-registry serving on {frontend.address} (admin http://"
            f"{settings.admin_listen.rpartition(':')[0]}:{frontend.admin.port})",
            flush=True,
        )
        await stop.wait()
        log.info("stopping: draining streams for up to %.1fs", settings.shutdown_grace_seconds)
        if collector is not None:
            collector.cancel()
        await frontend.stop()
    finally:
        if etcd is not None:
            await asyncio.to_thread(etcd.stop)
