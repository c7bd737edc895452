"""Every Prometheus metric of a frontend, defined once (the gRPC interceptor that counts RPCs is
rpc/interceptors.py; the gauges read at scrape time are gauges.py's).

Each Frontend has its own CollectorRegistry (several frontends may share a process in tests), with
the standard process, platform and GC collectors and no `_created` series. RPC metrics use
go-grpc-prometheus's names and labels, so standard gRPC dashboards work. Gauges that describe state
(nodes, subscribers, leadership, lag) are read from the running parts at scrape time, so they are
never stale; the core keeps plain counters and hooks and knows nothing of Prometheus.
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import grpc
import grpc.aio
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

from registry_service.domain import ChangeStage
from registry_service.health_metrics import HealthCollector, ProbeMetrics
from registry_service.metrics.gauges import (
    AdmissionCollector,
    AdmissionState,
    CertificateCollector,
    HttpCollector,
    StateCollector,
)

if TYPE_CHECKING:
    from registry_service.core.evictor import Evictor
    from registry_service.core.health_keeper import HealthKeeper
    from registry_service.hub.operator_state import OperatorView
    from registry_service.hub.remote_view import RemoteReads
    from registry_service.hub.watch_hub import WatchHub

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def package_version() -> str:
    """The installed package's version for `noderegistry_build_info`; `unknown` from a source
    tree."""
    try:
        return importlib.metadata.version("node-registry")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def standard_registry() -> CollectorRegistry:
    """A registry with the process, platform (python_info) and GC collectors, no `_created`."""
    disable_created_metrics()  # type: ignore[no-untyped-call]  # process-wide; else every counter doubles
    registry = CollectorRegistry(auto_describe=True)
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry


class Metrics:
    """Every Prometheus metric of one frontend, defined once, in the frontend's own registry."""

    def __init__(self) -> None:
        self.registry = standard_registry()
        Gauge(
            "noderegistry_build_info",
            "Always 1; the labels say what runs.",
            ("version", "python_version", "grpc_version"),
            registry=self.registry,
        ).labels(package_version(), platform.python_version(), grpc.__version__).set(1)
        labels = ("grpc_type", "grpc_service", "grpc_method")
        self.grpc_started = Counter(
            "grpc_server_started_total",
            "RPCs started on the server.",
            labels,
            registry=self.registry,
        )
        self.grpc_handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, by status code.",
            (*labels, "grpc_code"),
            registry=self.registry,
        )
        self.grpc_received = Counter(
            "grpc_server_msg_received_total",
            "Messages received from clients (stream messages one by one).",
            labels,
            registry=self.registry,
        )
        self.grpc_sent = Counter(
            "grpc_server_msg_sent_total",
            "Messages sent to clients (stream messages one by one).",
            labels,
            registry=self.registry,
        )
        self.grpc_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time from RPC start to its end (streams: lifetime).",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.keepalives = Counter(
            "noderegistry_keepalives_total",
            "Registration renewals answered, by result.",
            ("result",),
            registry=self.registry,
        )
        self.events_sent = Counter(
            "noderegistry_watch_events_sent_total",
            "Node events written to WatchNodes streams.",
            registry=self.registry,
        )
        stage_seconds = Histogram(
            "noderegistry_change_stage_seconds",
            "A change's way to a subscriber, per stage: commit_to_received (the writing frontend "
            "sent the transaction -> this frontend's watch received it; wall clocks of two hosts "
            "when another frontend wrote), received_to_queued, queued_to_written (one observation "
            "per subscriber), written_to_acked (subscribers that acknowledge; includes their "
            "acknowledgement interval).",
            ("stage",),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        # Bound once: queued_to_written is observed per subscriber per change (the hot path).
        self.stage = {stage: stage_seconds.labels(stage.value) for stage in ChangeStage}
        # xDS (docs/design.md §12): ADS streams open, and their responses, ACKs and NACKs per
        # protocol (sotw, delta) and resource type (listener, cluster, route, endpoints).
        self.xds_streams = Gauge(
            "noderegistry_xds_streams",
            "Open xDS (ADS) streams, by protocol (sotw: state of the world, delta).",
            ("protocol",),
            registry=self.registry,
        )
        self.xds_messages = Counter(
            "noderegistry_xds_messages_total",
            "xDS responses sent, and the clients' ACKs and NACKs of them, by protocol, resource "
            "type and kind (responses, acks, nacks: a NACK keeps the client's last good version).",
            ("protocol", "type", "kind"),
            registry=self.registry,
        )
        self.etcd_seconds = Histogram(
            "noderegistry_etcd_request_seconds",
            "etcd request latency, by operation.",
            ("operation",),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.etcd_errors = Counter(
            "noderegistry_etcd_request_errors_total",
            "etcd requests that failed, by operation and gRPC code.",
            ("operation", "code"),
            registry=self.registry,
        )

        self.http_requests = Counter(
            "noderegistry_http_requests",
            "HTTP API requests answered, by route (its pattern), method and status code.",
            ("route", "method", "code"),
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "noderegistry_http_request_seconds",
            "HTTP API request duration, by route and method (event streams and blocking reads: "
            "their whole length).",
            ("route", "method"),
            buckets=(*_LATENCY_BUCKETS, 30, 60, 300),
            registry=self.registry,
        )

        self.probes = ProbeMetrics(self.registry)
        """The health checks' probes, by kind and result (health_metrics.py)."""

    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        """Counts and times one HTTP API request by route pattern, method and status."""
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_seconds.labels(route, method).observe(seconds)

    def attach_http(self, event_streams: Callable[[], int], waiting: Callable[[], int]) -> None:
        """Registers the HTTP API's gauges, read at scrape time: open event streams, and
        blocking reads waiting for a change."""
        self.registry.register(HttpCollector(event_streams, waiting))

    def attach_health(self, keeper: HealthKeeper, hub: WatchHub, evictor: Evictor) -> None:
        """Registers the collector of the health checks' state: this frontend's share and
        flaps, and (from the leading evictor only, so that a sum over frontends counts each node
        once) every node's health and the damped nodes per datacenter."""
        self.registry.register(HealthCollector(keeper, hub, evictor))

    def observe_etcd(self, operation: str, seconds: float, code: str = "OK") -> None:
        """Times one etcd call attempt, and counts it as an error unless its code is OK."""
        self.etcd_seconds.labels(operation).observe(seconds)
        if code != "OK":
            self.etcd_errors.labels(operation, code).inc()

    def observe_stage(self, stage: ChangeStage, seconds: float) -> None:
        """Times one stage of a change on its way to subscribers (D33)."""
        self.stage[stage].observe(seconds)

    def attach(
        self, hub: WatchHub, evictor: Evictor, operator: OperatorView, remotes: RemoteReads
    ) -> None:
        """Registers the collector that reads the frontend's state at scrape time: the hub's
        subscribers and stats, the evictor, the operator state and the followed datacenters."""
        self.registry.register(StateCollector(hub, evictor, operator, remotes))

    def attach_admission(self, admission: AdmissionState) -> None:
        """Registers the collector of admission control's state (rpc/admission.py, D72)."""
        self.registry.register(AdmissionCollector(admission))

    def attach_credentials(
        self, seconds_left: Callable[[], Mapping[str, float]]
    ) -> Callable[[str, bool], None]:
        """Registers the certificates' expiry (seconds left per file, read at scrape time) and
        returns the hook that counts credential reloads (credential_files.py)."""
        reloads = Counter(
            "noderegistry_credential_reloads_total",
            "Changed credential files read again, by set (tokens, server_tls, etcd_tls, "
            "peer_tls, remote_tls) and result (applied; refused: the ones in use were kept, the "
            "log says why).",
            ("credentials", "result"),
            registry=self.registry,
        )
        self.registry.register(CertificateCollector(seconds_left))

        def observe(credentials: str, applied: bool) -> None:
            reloads.labels(credentials, "applied" if applied else "refused").inc()

        return observe
