"""Builds the grpc.aio server: the Registry service, standard health checking and, when asked
for, reflection (it answers without a token, so it is off by default)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from noderegistry.v1 import registry_pb2, registry_pb2_grpc

from registry_service.listeners import Listener
from registry_service.rpc.edge import with_error_edge
from registry_service.rpc.servicer import RegistryServicer

SERVICE_NAME = registry_pb2.DESCRIPTOR.services_by_name["Registry"].full_name


@dataclass(frozen=True)
class KeepalivePolicy:
    """HTTP/2 keepalive on the gRPC port: the frontend pings silent connections to find dead peers
    (a watcher whose host vanished holds a subscription until then), and closes connections whose
    pings come faster than allowed (a ping flood costs the server a reply per ping)."""

    min_ping_interval_seconds: float = 10.0
    max_ping_strikes: int = 2
    keepalive_time_seconds: float = 30.0
    keepalive_timeout_seconds: float = 10.0

    def channel_options(self) -> list[tuple[str, int]]:
        return [
            # Clients may ping with no call open (the SDK keeps idle channels warm) ...
            ("grpc.keepalive_permit_without_calls", 1),
            # ... but not faster than this; each faster ping is a strike.
            ("grpc.http2.min_ping_interval_without_data_ms", _ms(self.min_ping_interval_seconds)),
            ("grpc.http2.max_ping_strikes", self.max_ping_strikes),
            ("grpc.keepalive_time_ms", _ms(self.keepalive_time_seconds)),
            ("grpc.keepalive_timeout_ms", _ms(self.keepalive_timeout_seconds)),
            # gRPC 1.85 waits this long for a ping's ack (default 1 min), not keepalive_timeout.
            ("grpc.http2.ping_timeout_ms", _ms(self.keepalive_timeout_seconds)),
            # Keep pinging a connection that sends nothing (an idle watch): gRPC stops after two
            # pings without data by default, and a peer that vanished then holds its slot forever.
            ("grpc.http2.max_pings_without_data", 0),
        ]


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def build_server(
    servicer: RegistryServicer,
    *,
    max_receive_message_bytes: int,
    max_metadata_bytes: int = 8 * 1024,
    keepalive: KeepalivePolicy | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    reuse_port: bool = False,
    with_reflection: bool = False,
    extra_services: Sequence[tuple[str, Callable[[grpc.aio.Server], None]]] = (),
) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    """The gRPC port's server. `extra_services`: (full service name, function that adds it)
    for services served on the same port (xDS, registry_service/xds/), listed in reflection."""
    server = grpc.aio.server(
        interceptors=list(interceptors),
        options=[
            ("grpc.max_receive_message_length", max_receive_message_bytes),
            ("grpc.max_metadata_size", max_metadata_bytes),
            ("grpc.so_reuseport", int(reuse_port)),
            *(keepalive or KeepalivePolicy()).channel_options(),
        ],
    )
    add_registry_service(servicer, server)
    for _, add_service in extra_services:
        add_service(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if with_reflection:
        reflection.enable_server_reflection(
            (
                SERVICE_NAME,
                *(name for name, _ in extra_services),
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
    return server, health_servicer


def build_health_server(
    health_servicer: health.aio.HealthServicer, reuse_port: bool = False
) -> grpc.aio.Server:
    """A plaintext server with nothing but health checking: Kubernetes' gRPC probes cannot
    present a client certificate to a port that requires mTLS."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", int(reuse_port))])
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    return server


class ServerCertificates:
    """The gRPC port's certificate, key and client CA, replaceable while the port serves: grpc
    asks for the current ones at each new handshake (dynamic server credentials); connections
    already open keep theirs. With a client CA, clients must present a certificate (mTLS)."""

    def __init__(self, cert_file: str, key_file: str, client_ca_file: str) -> None:
        self._require_client_certificate = bool(client_ca_file)
        self._initial = self.load(cert_file, key_file, client_ca_file)
        self._pending: grpc.ServerCertificateConfiguration | None = None
        self._lock = threading.Lock()  # grpc calls the fetcher from its own threads

    @staticmethod
    def load(
        cert_file: str, key_file: str, client_ca_file: str
    ) -> grpc.ServerCertificateConfiguration:
        """The files as grpc takes them (read now; they were checked before, startup.py)."""
        return grpc.ssl_server_certificate_configuration(
            [(Path(key_file).read_bytes(), Path(cert_file).read_bytes())],
            root_certificates=Path(client_ca_file).read_bytes() if client_ca_file else None,
        )

    def replace(self, configuration: grpc.ServerCertificateConfiguration) -> None:
        """The next handshake on the port uses `configuration`."""
        with self._lock:
            self._pending = configuration

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """grpc's question at each handshake: a new configuration, or None to keep the last."""
        with self._lock:
            pending, self._pending = self._pending, None
        return pending

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._initial,
            self._fetch,
            require_client_authentication=self._require_client_certificate,
        )


def _watch_response_bytes(response: registry_pb2.WatchNodesResponse | bytes) -> bytes:
    """WatchNodes yields messages, or bytes already serialized once for many subscribers."""
    if isinstance(response, bytes):
        return response
    encoded: bytes = response.SerializeToString()
    return encoded


def add_registry_service(servicer: RegistryServicer, server: grpc.aio.Server) -> None:
    """What the generated add_RegistryServicer_to_server does, except that every handler runs
    inside the error edge (rpc/edge.py) and WatchNodes accepts pre-serialized responses (see
    rpc/servicer.WireCache)."""
    capture = _Capture()
    registry_pb2_grpc.add_RegistryServicer_to_server(servicer, capture)
    handlers = dict(capture.handlers)
    watch = handlers["WatchNodes"]
    handlers["WatchNodes"] = grpc.unary_stream_rpc_method_handler(
        watch.unary_stream,
        request_deserializer=watch.request_deserializer,
        response_serializer=_watch_response_bytes,
    )
    handlers = {name: with_error_edge(handler) for name, handler in handlers.items()}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


class _Capture:
    """Stands in for a server to collect the generated method handlers."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, generic_handlers: Any) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        self.handlers = dict(handlers)


async def set_serving(health_servicer: health.aio.HealthServicer, serving: bool) -> None:
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for service in ("", SERVICE_NAME):
        await health_servicer.set(service, status)


def bind_port(
    server: grpc.aio.Server,
    listener: Listener,
    credentials: grpc.ServerCredentials | None = None,
) -> int:
    """Adds the listener's port; a failure (a race lost since the start-up checks) names its
    setting."""
    try:
        if credentials is not None:
            port = int(server.add_secure_port(listener.address, credentials))
        else:
            port = int(server.add_insecure_port(listener.address))
    except RuntimeError:  # grpc: "Failed to bind to address ..."
        port = 0
    if port == 0:
        raise listener.refusal(listener.bind_error() or "cannot bind")
    return port
