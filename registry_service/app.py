"""Composition root: settings -> etcd client -> store -> watch hub -> evictor -> registry -> gRPC,
the admin port and the HTTP API port (process/serving.py runs a frontend, or workers, as a process).

Shutdown runs in the reverse order: health NOT_SERVING first, then streams end with UNAVAILABLE,
then the server stops within the grace period, the evictor resigns (so another frontend takes
over at once), and the etcd connections close. Registrations are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import socket
import time

import grpc.aio
from noderegistry import __version__

from registry_service.bearer_tokens import TokenTable
from registry_service.control import Announcement
from registry_service.core.announcer import Announcer
from registry_service.core.evictor import Evictor
from registry_service.core.operations import Operations
from registry_service.core.reads import Reads
from registry_service.core.registry import Registry
from registry_service.core.self_preservation import BudgetPolicy
from registry_service.datacenters import Datacenters
from registry_service.errors import StoreAccessError, StoreUnavailableError
from registry_service.federation.follower import Federation
from registry_service.hub.watch_hub import WatchHub
from registry_service.placement import Placement, advertised_host, url_host
from registry_service.retry import Backoff
from registry_service.rpc.access import AuthInterceptor, StreamCounter
from registry_service.rpc.server import (
    KeepalivePolicy,
    bind_port,
    build_health_server,
    build_server,
    server_credentials,
    set_serving,
)
from registry_service.rpc.servicer import RegistryServicer
from registry_service.settings import Settings, env_name
from registry_service.startup import (
    ServeError,
    listen_refusal,
    one_line,
)
from registry_service.store.etcd import EtcdRegistryStore
from registry_service.store.etcd_client import EtcdClient, EtcdConfig
from registry_service.store.etcd_control import EtcdControlStore
from registry_service.telemetry.metrics import Metrics, MetricsInterceptor
from registry_service.web.admin import AdminServer
from registry_service.web.admin_config import AdminConfig, Readiness
from registry_service.web.admin_control import cluster_convergence
from registry_service.web.api import ApiServer
from registry_service.web.api_config import ApiConfig
from registry_service.web.auth import AdminAuth, client_context, server_context
from registry_service.web.peers import PeerAdmins
from registry_service.xds.service import SERVICE_NAME as XDS_SERVICE_NAME
from registry_service.xds.service import AggregatedDiscovery, add_xds_service
from registry_service.xds.session import XdsParts

log = logging.getLogger(__name__)


def new_frontend_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Frontend:
    """One registry frontend process's worth of parts, started and stopped in order."""

    def __init__(
        self,
        settings: Settings,
        frontend_id: str | None = None,
        placement: Placement | None = None,
    ) -> None:
        self.settings = settings
        self.frontend_id = frontend_id or new_frontend_id()
        self.placement = placement or Placement()
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
                outage_detection_seconds=settings.etcd_outage_detection_seconds,
            ),
            observe=self.metrics.observe_etcd,
        )
        self.store = EtcdRegistryStore(
            self.client,
            settings.prefix,
            self.frontend_id,
            audit_retention_seconds=settings.audit_retention_seconds,
        )
        self.control = EtcdControlStore(self.client, self.store)
        self.datacenters = Datacenters.from_settings(
            settings.datacenter, settings.remote_datacenters
        )
        self.hub = WatchHub(
            self.store,
            history_revisions=settings.watch_history_revisions,
            queue_messages=settings.watch_queue_messages,
            progress_seconds=settings.watch_progress_seconds,
            slice_subscribers=settings.watch_fanout_slice_subscribers,
            store_connected=lambda: self.client.watcher.connected,
            observe=self.metrics.observe_stage,
            ack_deadline_seconds=settings.ack_deadline_seconds,
            remote_datacenters=self.datacenters.remotes,
        )
        self.federation = Federation(self.datacenters.remotes, self.hub.remotes, settings)
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
                type_minimum=settings.eviction_budget_type_minimum,
            ),
            dry_run=settings.evictor_dry_run,
            store_settled=self._store_settled,
        )
        self.registry = Registry(
            self.store,
            self.hub,
            settings.limits,
            coalesce_seconds=settings.keepalive_coalesce_seconds,
            datacenters=self.datacenters,
        )
        self.reads = Reads(
            self.store,
            self.hub,
            settings.limits,
            sync_timeout_seconds=settings.etcd_request_timeout_seconds,
        )
        self.tokens = TokenTable.load(settings.auth_tokens_file)
        # Open streams per peer, counted across the gRPC port and the HTTP API's event streams.
        self.streams = StreamCounter(settings.max_streams_per_peer)
        self.servicer = RegistryServicer(
            self.registry,
            self.reads,
            max_registrations_per_stream=settings.keepalive_max_registrations_per_stream,
            metrics=self.metrics,
            tokens=self.tokens,
            keepalive_max_messages_per_second=settings.keepalive_max_messages_per_second,
            streams=self.streams,
        )
        self.xds = AggregatedDiscovery(
            XdsParts(self.reads, settings.limits, settings.datacenter, self.metrics),
            streams=self.streams,
            tokens=self.tokens,
        )
        self.operations = Operations(
            self.store,
            self.control,
            self.hub,
            self.registry,
            settings.limits,
            self.frontend_id,
            self.datacenters,
        )
        self.metrics.attach(self.hub, self.evictor)
        self.peers = PeerAdmins(
            client_context(
                settings.peer_ca_file or settings.tls_client_ca_file,
                settings.tls_cert_file,
                settings.tls_key_file,
            )
            if settings.tls_cert_file
            else None,
            settings.peer_timeout_seconds,
        )
        self.admin = AdminServer(self._admin_config())
        self.api = ApiServer(self._api_config()) if settings.http_listen else None
        self.announcer: Announcer | None = None
        self.server: grpc.aio.Server | None = None
        self.health_server: grpc.aio.Server | None = None
        self.health_port = 0
        self._health = None
        self._evictor_task: asyncio.Task[None] | None = None
        self._serving = False
        self.port = 0

    def _admin_config(self) -> AdminConfig:
        """The admin port: the gRPC port's TLS and mTLS, unless behind a supervisor (then it is
        private, on loopback, and the supervisor's port carries them)."""
        settings, worker = self.settings, self.placement.behind_supervisor
        tls = settings.tls_cert_file and not worker
        return AdminConfig(
            listen=settings.admin_listen,
            frontend_id=self.frontend_id,
            metrics=self.metrics.registry,
            readiness=self.readiness,
            watch=self.hub,
            eviction=self.evictor,
            operations=self.operations,
            auth=AdminAuth(
                self.tokens,
                settings.admin_token,
                client_certificates=bool(tls and settings.tls_client_ca_file),
                trust_forwarded=worker,
            ),
            peers=self.peers,
            ssl_context=server_context(
                settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
            )
            if tls
            else None,
        )

    def _api_config(self) -> ApiConfig:
        """The HTTP API port: the gRPC port's TLS, mTLS and tokens, in every worker too (the
        workers share the port: none of them is behind the supervisor there)."""
        settings = self.settings
        return ApiConfig(
            listen=settings.http_listen,
            reads=self.reads,
            feed=self.hub,
            operator=self.operations,
            convergence=functools.partial(
                cluster_convergence, self.hub, self.peers, self.frontend_id
            ),
            readiness=self.readiness,
            auth=AdminAuth(
                self.tokens,
                settings.admin_token,
                client_certificates=bool(settings.tls_cert_file and settings.tls_client_ca_file),
            ),
            streams=self.streams,
            limits=settings.limits,
            max_wait_seconds=settings.http_max_wait_seconds,
            suspect_ceiling_seconds=settings.suspect_ceiling_seconds,
            max_request_bytes=settings.max_receive_message_bytes,
            max_header_bytes=settings.max_metadata_bytes,
            shutdown_grace_seconds=settings.shutdown_grace_seconds,
            ssl_context=server_context(
                settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
            ),
        )

    def announcement(self) -> Announcement:
        """How this frontend announces itself (once its ports are known)."""
        settings, placement = self.settings, self.placement
        host = url_host(advertised_host(settings.advertise_address, settings.listen))
        admin_url = placement.host_admin_url or (
            f"{'https' if settings.tls_cert_file else 'http'}://{host}:{self.admin.port}"
        )
        return Announcement(
            id=self.frontend_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            worker_index=placement.worker_index,
            worker_count=placement.worker_count,
            grpc_address=f"{host}:{self.port}",
            admin_url=admin_url,
            version=__version__,
            started_at=time.time(),
        )

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

    def readiness(self) -> Readiness:
        """Ready means "can serve" (DESIGN.md §7): the member list is loaded and the frontend is
        not stopping. Without etcd it still serves its last list, marked stale, so it stays
        ready and says `degraded`: a 503 would take every frontend out of its Service exactly
        when the stale lists are needed."""
        connected = self.client.watcher.connected
        age = round(self.hub.age_seconds, 3)
        if self.stopping:
            return Readiness(False, "shutting down", connected, age)
        if not self.hub.revision:
            return Readiness(False, "member list not loaded yet", connected, age)
        if not connected:
            return Readiness(
                True,
                "degraded: etcd unreachable or without quorum; serving the last known lists "
                "(marked stale), refusing writes",
                connected,
                age,
            )
        return Readiness(True, "ok", connected, age)

    async def start(self, reuse_port: bool = False) -> None:
        """Starts every part; on failure stops what started and raises.

        Raises:
            ServeError: etcd did not answer within `etcd_connect_timeout_seconds`, or a port could
                not be bound (a race lost after the start-up checks).
        """
        try:
            await self._start(reuse_port)
        except BaseException:
            await self.stop()
            raise

    async def _start(self, reuse_port: bool) -> None:
        await self._load_members()
        self.federation.start()  # never waited for: a remote datacenter may be unreachable
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
            extra_services=[(XDS_SERVICE_NAME, functools.partial(add_xds_service, self.xds))],
        )
        credentials = None
        if settings.tls_cert_file:
            credentials = server_credentials(
                settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
            )
        self.port = bind_port(self.server, settings.listen, "listen", credentials)
        await self.server.start()
        self._serving = True
        if settings.health_listen:
            self.health_server = build_health_server(self._health, reuse_port)
            self.health_port = bind_port(
                self.health_server, settings.health_listen, "health_listen"
            )
            await self.health_server.start()
        try:
            await self.admin.start()
        except OSError as err:
            raise listen_refusal(settings.admin_listen, err, "admin_listen") from err
        if self.api is not None:
            try:
                await self.api.start(reuse_port=reuse_port)
            except OSError as err:
                raise listen_refusal(settings.http_listen, err, "http_listen") from err
        self.announcer = Announcer(
            self.store,
            self.control,
            self.announcement(),
            lambda: len(self.hub.subscriptions),
            lease_ttl_seconds=settings.frontend_lease_ttl_seconds,
            refresh_seconds=settings.announce_refresh_seconds,
        )
        await self.announcer.start()
        await set_serving(self._health, True)
        log.info(
            "node-registry %s serving on %s (etcd %s, prefix %s)",
            self.frontend_id,
            self.address,
            ",".join(self.settings.etcd_endpoints),
            self.settings.prefix,
        )

    async def _load_members(self) -> None:
        """Reads the member list, retrying (etcd may be starting too) until the connect timeout."""
        timeout = self.settings.etcd_connect_timeout_seconds
        backoff = Backoff(initial=0.1, maximum=1.0)
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.hub.start()
                return
            except StoreAccessError as err:
                raise ServeError(
                    f"etcd refused this frontend ({one_line(str(err))}): set "
                    f"{env_name('etcd_username')} and {env_name('etcd_password')}, or grant the "
                    "user's role the prefix"
                ) from err
            except StoreUnavailableError as err:
                if time.monotonic() + backoff.next_delay() >= deadline:
                    raise ServeError(
                        f"cannot reach etcd at {','.join(self.settings.etcd_endpoints)} within "
                        f"{timeout:g}s ({one_line(str(err))}): set "
                        f"{env_name('etcd_endpoints')} (or wait longer: "
                        f"{env_name('etcd_connect_timeout_seconds')})"
                    ) from err
                log.debug("etcd not reachable yet: %s", err)
                await backoff.wait()

    async def _wait_for_watch(self) -> None:
        """Serves only once the etcd watch is up: before, every write would be refused as if
        etcd were down (store-outage mode)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.etcd_request_timeout_seconds):
                await self.client.watcher.up.wait()
        if not self.client.watcher.connected:
            log.warning("the etcd watch is not up yet: serving cached lists, refusing writes")

    async def stop(self) -> None:
        """Stops what started, in order; a second call does nothing."""
        if self.stopping:
            return
        self.stopping = True
        if self._health is not None:
            await set_serving(self._health, False)
        if self.announcer is not None:  # the cluster-wide views stop asking this frontend
            await self.announcer.stop()
        self.servicer.begin_shutdown()
        self.xds.begin_shutdown()
        await self.federation.stop()
        await self.hub.close()
        if self.api is not None:  # event streams ended with the hub; blocking reads answer now
            await self.api.stop()
        if self.server is not None and self._serving:
            await self.server.stop(self.settings.shutdown_grace_seconds)
        if self.health_server is not None and self.health_port:
            await self.health_server.stop(0)
        if self._evictor_task is not None:
            self._evictor_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._evictor_task
        await self.evictor.close()
        await self.client.close()
        await self.admin.stop()
