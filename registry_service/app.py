"""Composition root: settings -> etcd client -> store -> watch hub -> evictor -> registry -> gRPC,
the health checks (with their network prober), the admin port and the HTTP API port
(process/serving.py runs a frontend, or workers, as a process).
Each part gets its typed config from part_configs.py; the operator state and the followed
datacenters' views are created here and handed to the hub (their writer) and to their readers.

Shutdown runs in the reverse order: health NOT_SERVING first, then streams end with UNAVAILABLE,
then the server stops within the grace period, the evictor resigns (so another frontend takes
over at once), and the etcd connections close. Registrations are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import secrets
import socket
import ssl
import time

import grpc.aio
from noderegistry import __version__

from registry_service.control import Announcement
from registry_service.core.announcer import Announcer
from registry_service.core.evictor import Evictor
from registry_service.core.health_keeper import HealthKeeper
from registry_service.core.identity_gc import IdentityCollector
from registry_service.core.operations import Operations
from registry_service.core.reads import Reads
from registry_service.core.registry import Registry
from registry_service.credentials import Credentials
from registry_service.credentials import stop as stop_credentials
from registry_service.datacenters import Datacenters
from registry_service.errors import StoreAccessError, StoreUnavailableError
from registry_service.federation.follower import Federation
from registry_service.hub.operator_state import OperatorState
from registry_service.hub.remote_view import RemoteViews
from registry_service.hub.watch_hub import WatchHub
from registry_service.listeners import Listener, Listeners
from registry_service.metrics import Metrics
from registry_service.part_configs import PartConfigs
from registry_service.placement import Placement
from registry_service.probes import NetworkProber
from registry_service.retry import Backoff
from registry_service.rpc.access import StreamCounter
from registry_service.rpc.admission import Admission
from registry_service.rpc.interceptors import AuthInterceptor, MetricsInterceptor
from registry_service.rpc.server import (
    bind_port,
    build_health_server,
    build_server,
    set_serving,
)
from registry_service.rpc.servicer import RegistryServicer
from registry_service.settings import Settings, env_name
from registry_service.startup import ServeError, etcd_tls_refusal, one_line
from registry_service.store.etcd import EtcdRegistryStore
from registry_service.store.etcd_client import EtcdClient
from registry_service.store.etcd_control import EtcdControlStore
from registry_service.web.admin import AdminServer
from registry_service.web.admin_config import AdminConfig
from registry_service.web.admin_control import ControlRoutes, cluster_convergence
from registry_service.web.api import ApiServer
from registry_service.web.api_config import ApiConfig
from registry_service.web.auth import HttpAuth
from registry_service.web.peers import PeerAdmins
from registry_service.web.readiness import Readiness
from registry_service.xds.service import SERVICE_NAME as XDS_SERVICE_NAME
from registry_service.xds.service import AggregatedDiscovery, add_xds_service
from registry_service.xds.session import XdsParts

log = logging.getLogger(__name__)


def new_frontend_id() -> str:
    """A frontend id unique per process start: host, pid, and a random suffix."""
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
        # A worker's own admin port is private (plaintext, loopback): its supervisor's carries TLS.
        self.listeners = Listeners.of(settings, private_admin=self.placement.behind_supervisor)
        self.metrics = Metrics()
        self.stopping = False
        configs = self.configs = PartConfigs.from_settings(settings)
        self.client = EtcdClient(configs.etcd, observe=self.metrics.observe_etcd)
        self.store = EtcdRegistryStore(
            self.client,
            settings.prefix,
            self.frontend_id,
            audit_retention_seconds=settings.audit_retention_seconds,
        )
        self.control = EtcdControlStore(self.client, self.store.keys, self.store.audit)
        self.datacenters = Datacenters.from_settings(
            settings.datacenter, settings.remote_datacenters
        )
        # Owned here and handed in: the hub writes the operator state from its watch and fans the
        # followed datacenters out; the others read both (OperatorView, RemoteReads).
        self.operator_state = OperatorState()
        self.remotes = RemoteViews(
            self.datacenters.remotes, configs.hub.history_revisions, time.monotonic
        )
        self.hub = WatchHub(
            self.store,
            configs.hub,
            operator=self.operator_state,
            remotes=self.remotes,
            store_connected=lambda: self.client.watcher.connected,
            observe=self.metrics.observe_stage,
        )
        self.client.watcher.on_change(self.hub.store_connection_changed)
        self.federation = Federation(self.datacenters.remotes, self.remotes, settings)
        self.evictor = Evictor(
            self.store,
            self.hub,
            configs.evictor,
            candidate=self.frontend_id,
            connection=self.client.watcher,
        )
        # Identity records of ids long gone: collected by whichever frontend leads eviction.
        self.identity_gc = IdentityCollector(
            self.store, lambda: self.evictor.status.leader, configs.identity_gc
        )
        self.registry = Registry(
            self.store, self.hub, configs.registry, datacenters=self.datacenters
        )
        self.reads = Reads(self.store, self.hub, configs.reads, remotes=self.remotes)
        # Tokens and certificates, each read again when its files change (credentials.py).
        self.credentials = Credentials(settings)
        self.credentials.count_reloads(
            self.metrics.attach_credentials(self.credentials.expiry.seconds_left)
        )
        self.credentials.attach_etcd(self.client.connection)
        self.credentials.attach_federation(self.federation)
        self.tokens = self.credentials.tokens
        # Open streams per peer, counted across the gRPC port and the HTTP API's event streams.
        self.streams = StreamCounter(configs.servicer.max_streams_per_peer)
        # Renewals first: Registers and reads that would queue behind them are refused early.
        self.admission = Admission(configs.admission)
        self.servicer = RegistryServicer(
            self.registry,
            self.reads,
            configs.servicer,
            metrics=self.metrics,
            tokens=self.tokens,
            streams=self.streams,
            admission=self.admission,
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
        self.metrics.attach(self.hub, self.evictor, self.operator_state, self.remotes)
        self.metrics.attach_admission(self.admission)
        # This frontend's share of the registry-run health checks (docs/design.md §13).
        self.health_checks = HealthKeeper(
            self.store,
            self.hub,
            self.operator_state,
            NetworkProber(f"noderegistry-health-check/{self.frontend_id}"),
            self.frontend_id,
            configs.health,
            observe=self.metrics.probes.observe,
        )
        self.metrics.attach_health(self.health_checks, self.hub, self.evictor)
        self.peers = PeerAdmins(
            self.credentials.peer_context(),
            settings.peer_timeout_seconds,
            server_name=settings.peer_tls_server_name,
        )
        self.credentials.attach_peers(self.peers)
        self.admin = AdminServer(self._admin_config())
        api = self.listeners.api
        self.api = ApiServer(self._api_config(api)) if api is not None else None
        if self.api is not None:
            api_server = self.api
            self.metrics.attach_http(lambda: api_server.event_streams, lambda: api_server.waiting)
        self.announcer: Announcer | None = None
        self.server: grpc.aio.Server | None = None
        self.health_server: grpc.aio.Server | None = None
        self.health_port = 0
        self._health = None
        self._evictor_task: asyncio.Task[None] | None = None
        self._health_checks_task: asyncio.Task[None] | None = None
        self._identity_gc_task: asyncio.Task[None] | None = None
        self._credentials_task: asyncio.Task[None] | None = None
        self._serving = False
        self.port = 0

    def _admin_config(self) -> AdminConfig:
        """The admin port: the gRPC port's TLS and mTLS, unless behind a supervisor (then it is
        private, on loopback, and the supervisor's port carries them)."""
        settings, worker = self.settings, self.placement.behind_supervisor
        listener = self.listeners.admin
        tls = listener.tls
        return AdminConfig(
            listener=listener,
            frontend_id=self.frontend_id,
            metrics=self.metrics.registry,
            readiness=self.readiness,
            watch=self.hub,
            operator_state=self.operator_state,
            eviction=self.evictor,
            operations=self.operations,
            auth=HttpAuth(
                self.tokens,
                settings.admin_token,
                client_certificates=bool(tls and settings.tls_client_ca_file),
                trust_forwarded=worker,
            ),
            peers=self.peers,
            http_limits=self.configs.http,
            ssl_context=self._http_tls() if tls else None,
        )

    def _http_tls(self) -> ssl.SSLContext | None:
        """The HTTP ports' TLS (one context for both: it follows the files, credentials.py)."""
        http_tls = self.credentials.http_tls
        return http_tls.context if http_tls is not None else None

    def _api_config(self, listener: Listener) -> ApiConfig:
        """The HTTP API port: the gRPC port's TLS, mTLS and tokens, in every worker too (the
        workers share the port: none of them is behind the supervisor there)."""
        settings = self.settings
        auth = HttpAuth(
            self.tokens,
            settings.admin_token,
            client_certificates=listener.tls and bool(settings.tls_client_ca_file),
            anonymous_writes=False,
        )
        return ApiConfig(
            listener=listener,
            reads=self.reads,
            feed=self.hub,
            operator=self.operations,
            convergence=functools.partial(
                cluster_convergence, self.operator_state, self.peers, self.frontend_id
            ),
            readiness=self.readiness,
            auth=auth,
            streams=self.streams,
            limits=settings.limits,
            max_wait_seconds=settings.http_max_wait_seconds,
            suspect_ceiling_seconds=settings.suspect_ceiling_seconds,
            max_request_bytes=settings.max_receive_message_bytes,
            http_limits=self.configs.http,
            shutdown_grace_seconds=settings.shutdown_grace_seconds,
            ssl_context=self._http_tls(),
            observe=self.metrics.observe_http,
            control=ControlRoutes(dataclasses.replace(self._admin_config(), auth=auth)),
            admission=self.admission,
        )

    def announcement(self) -> Announcement:
        """How this frontend announces itself (once its ports are known)."""
        listeners, placement = self.listeners, self.placement
        host = listeners.advertised_host
        admin_url = placement.host_admin_url or listeners.admin.url(self.admin.port, host=host)
        return Announcement(
            id=self.frontend_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            worker_index=placement.worker_index,
            worker_count=placement.worker_count,
            grpc_address=listeners.grpc.host_port(self.port, host=host),
            admin_url=admin_url,
            version=__version__,
            started_at=time.time(),
        )

    @property
    def address(self) -> str:
        """`host:port` of the gRPC port as bound."""
        return self.listeners.grpc.host_port(self.port)

    def readiness(self) -> Readiness:
        """Ready is "can serve" (docs/design.md §7): the member list is loaded and the frontend is
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
        self._identity_gc_task = asyncio.create_task(
            self.identity_gc.run(), name="identity-collection"
        )
        settings = self.settings
        self.server, self._health = build_server(
            self.servicer,
            max_receive_message_bytes=settings.max_receive_message_bytes,
            max_metadata_bytes=settings.max_metadata_bytes,
            keepalive=self.configs.grpc_keepalive,
            interceptors=[MetricsInterceptor(self.metrics), AuthInterceptor(self.tokens)],
            reuse_port=reuse_port,
            with_reflection=settings.grpc_reflection,
            extra_services=[(XDS_SERVICE_NAME, functools.partial(add_xds_service, self.xds))],
        )
        listeners = self.listeners
        credentials = self.credentials.grpc_credentials() if listeners.grpc.tls else None
        self.port = bind_port(self.server, listeners.grpc, credentials)
        self.admission.start()
        await self.server.start()
        self._serving = True
        if listeners.health is not None:
            self.health_server = build_health_server(self._health, reuse_port)
            self.health_port = bind_port(self.health_server, listeners.health)
            await self.health_server.start()
        try:
            await self.admin.start()
        except OSError as err:
            raise listeners.admin.refusal(err) from err
        if self.api is not None and listeners.api is not None:
            try:
                await self.api.start(reuse_port=reuse_port)
            except OSError as err:
                raise listeners.api.refusal(err) from err
        self.announcer = Announcer(
            self.store,
            self.control,
            self.announcement(),
            lambda: len(self.hub.subscriptions),
            lease_ttl_seconds=settings.frontend_lease_ttl_seconds,
            refresh_seconds=settings.announce_refresh_seconds,
        )
        await self.announcer.start()
        # After the announcement: the probes are shared among the announced frontends.
        self._health_checks_task = asyncio.create_task(self.health_checks.run(), name="health")
        await set_serving(self._health, True)
        self._credentials_task = self.credentials.start()
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
                    endpoints = ",".join(self.settings.etcd_endpoints)
                    refused = etcd_tls_refusal(self.settings, endpoints, str(err))
                    if refused is not None:
                        raise refused from err
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
        await stop_credentials(self._credentials_task)
        if self._health is not None:
            await set_serving(self._health, False)
        if self._health_checks_task is not None:  # its nodes move with the announcement
            self._health_checks_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_checks_task
        if self.announcer is not None:  # the cluster-wide views stop asking this frontend
            await self.announcer.stop()
        # Eviction (and with it the cluster-wide gauges) goes to another frontend first, while
        # this one drains its streams: the next leader takes over within its poll (D87).
        for task in (self._identity_gc_task, self._evictor_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.evictor.close()
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
        await self.admission.close()
        await self.client.close()
        await self.admin.stop()
