"""Every Prometheus metric of a frontend, defined once (the gRPC interceptor that counts RPCs is
rpc/interceptors.py).

Each Frontend has its own CollectorRegistry (several frontends may share a process in tests), with
the standard process, platform and GC collectors and no `_created` series. RPC metrics use
go-grpc-prometheus's names and labels, so standard gRPC dashboards work. Gauges that describe state
(nodes, subscribers, leadership, lag) are read from the running parts at scrape time, so they are
never stale; the core keeps plain counters and hooks and knows nothing of Prometheus.

Cluster-wide gauges (nodes per datacenter/type/status, the self-preservation alarm, the budget)
come only from the frontend that leads eviction: every frontend holds the whole cluster's view,
and a sum over pods must count each node once (docs/decisions.md D34).
"""

from __future__ import annotations

import collections
import importlib.metadata
import platform
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

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
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from registry_service.domain import ChangeStage, NodeStatus, Scope
from registry_service.health_metrics import HealthCollector, ProbeMetrics

if TYPE_CHECKING:
    from registry_service.core.concurrency_limit import AdaptiveLimit
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

        self.probes = ProbeMetrics(self.registry)
        """The health checks' probes, by kind and result (health_metrics.py)."""

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
        self.registry.register(_StateCollector(hub, evictor, operator, remotes))

    def attach_admission(self, admission: AdmissionState) -> None:
        """Registers the collector of admission control's state (rpc/admission.py, D72)."""
        self.registry.register(_AdmissionCollector(admission))

    def attach_credentials(
        self, seconds_left: Callable[[], Mapping[str, float]]
    ) -> Callable[[str, bool], None]:
        """Registers the certificates' expiry (seconds left per file, read at scrape time) and
        returns the hook that counts credential reloads (credential_files.py)."""
        reloads = Counter(
            "noderegistry_credential_reloads_total",
            "Changed credential files read again, by set (tokens, server_tls, etcd_tls, "
            "peer_tls) and result (applied; refused: the ones in use were kept, the log says why).",
            ("credentials", "result"),
            registry=self.registry,
        )
        self.registry.register(_CertificateCollector(seconds_left))

        def observe(credentials: str, applied: bool) -> None:
            reloads.labels(credentials, "applied" if applied else "refused").inc()

        return observe


class AdmissionState(Protocol):
    """What the metrics read of admission control (rpc/admission.Admission)."""

    registers: AdaptiveLimit
    loop_lag_seconds: float
    registers_refused: int
    reads_refused: int

    @property
    def waiting(self) -> int:
        """Registers waiting for admission now."""


class _AdmissionCollector(Collector):
    def __init__(self, admission: AdmissionState) -> None:
        self._admission = admission

    def collect(self) -> Iterator[Any]:
        admission, limit = self._admission, self._admission.registers
        yield GaugeMetricFamily(
            "noderegistry_admission_register_limit",
            "Registers this frontend takes at once now: the adaptive limit (0 while its event "
            "loop is saturated); beyond it a Register is refused with RESOURCE_EXHAUSTED.",
            value=limit.limit,
        )
        yield GaugeMetricFamily(
            "noderegistry_admission_registers_in_flight",
            "Registers being served now.",
            value=limit.in_flight,
        )
        yield GaugeMetricFamily(
            "noderegistry_admission_registers_waiting",
            "Registers waiting for a slot within the limit now.",
            value=admission.waiting,
        )
        yield GaugeMetricFamily(
            "noderegistry_admission_register_latency_seconds",
            "The long-run average latency of a Register, which the adaptive limit compares each "
            "one with.",
            value=limit.long_rtt_seconds,
        )
        yield GaugeMetricFamily(
            "noderegistry_event_loop_lag_seconds",
            "How late the frontend's event loop ran a timer at the last measurement: what every "
            "callback, a renewal's included, waits.",
            value=admission.loop_lag_seconds,
        )
        refused = CounterMetricFamily(
            "noderegistry_admission_refused",
            "Calls refused as overloaded (RESOURCE_EXHAUSTED with a retry pushback), to serve "
            "renewals first: Registers that found no slot in time, reads while the event loop "
            "lags.",
            labels=("call",),
        )
        refused.add_metric(("Register",), admission.registers_refused)
        refused.add_metric(("read",), admission.reads_refused)
        yield refused


class _CertificateCollector(Collector):
    def __init__(self, seconds_left: Callable[[], Mapping[str, float]]) -> None:
        self._seconds_left = seconds_left

    def collect(self) -> Iterator[Any]:
        expiry = GaugeMetricFamily(
            "noderegistry_certificate_expiry_seconds",
            "Seconds until the first certificate of each certificate or CA file in use expires, "
            "by the setting naming the file (negative: expired).",
            labels=("setting",),
        )
        for setting, seconds in sorted(self._seconds_left().items()):
            expiry.add_metric((setting,), round(seconds, 3))
        yield expiry


class _StateCollector(Collector):
    def __init__(
        self, hub: WatchHub, evictor: Evictor, operator: OperatorView, remotes: RemoteReads
    ) -> None:
        self._hub = hub
        self._evictor = evictor
        self._operator = operator
        self._remotes = remotes

    def collect(self) -> Iterator[Any]:
        hub, evictor = self._hub, self._evictor
        stats = hub.stats()
        yield _node_counts(hub, evictor)

        subscriptions = hub.subscriptions
        yield GaugeMetricFamily(
            "noderegistry_watch_subscribers", "Open WatchNodes streams.", value=len(subscriptions)
        )
        acking = [s for s in subscriptions if s.acked_revision]
        yield GaugeMetricFamily(
            "noderegistry_watch_subscribers_converged",
            "Subscribers that acknowledged everything they were sent up to the frontend's latest "
            "revision.",
            value=sum(1 for s in acking if s.converged(hub.revision)),
        )
        now = time.monotonic()
        yield GaugeMetricFamily(
            "noderegistry_watch_unacknowledged_seconds",
            "How long the acknowledging subscriber that has owed an acknowledgement longest has "
            "owed it (past ack_deadline_seconds it is re-pushed: resync UNCONFIRMED).",
            value=max(
                (now - s.unacked_since for s in subscriptions if s.unacked_since),
                default=0.0,
            ),
        )
        yield GaugeMetricFamily(
            "noderegistry_watch_subscribers_held",
            "Subscribers the push switch holds back (switched off, or on the gray list).",
            value=sum(1 for s in subscriptions if s.held),
        )
        yield GaugeMetricFamily(
            "noderegistry_watch_slowest_ack_lag_revisions",
            "How far the slowest acknowledging subscriber is behind the frontend's revision.",
            value=max((hub.revision - s.acked_revision for s in acking), default=0),
        )
        resyncs = CounterMetricFamily(
            "noderegistry_watch_resyncs", "Resync snapshots sent, by reason.", labels=("reason",)
        )
        for reason, count in sorted(stats.resyncs.items(), key=lambda item: item[0].value):
            resyncs.add_metric((reason.value,), count)
        yield resyncs
        yield CounterMetricFamily(
            "noderegistry_watch_relists",
            "Full re-reads of etcd after a compacted watch.",
            value=stats.relists,
        )
        yield GaugeMetricFamily(
            "noderegistry_push_enabled",
            "1 while WatchNodes pushes are on (the push switch).",
            value=int(self._operator.push_enabled),
        )
        yield GaugeMetricFamily(
            "noderegistry_watch_lag_revisions",
            "etcd's latest revision seen by the watch minus the revision applied.",
            value=stats.lag_revisions,
        )
        yield GaugeMetricFamily(
            "noderegistry_cache_age_seconds",
            "Time since the frontend's etcd watch last spoke.",
            value=hub.age_seconds,
        )
        yield GaugeMetricFamily(
            "noderegistry_store_connected",
            "1 while etcd answers with a quorum; 0 while the frontend serves stale lists and "
            "refuses writes (degraded, still ready).",
            value=int(not hub.stale),
        )
        yield from _remote_datacenters(self._remotes)
        status = evictor.status
        evictions = CounterMetricFamily(
            "noderegistry_evictions",
            "Members removed by this frontend's evictor, by cause (EXPIRED, BUDGET_RELEASED, "
            "CEILING).",
            labels=("cause",),
        )
        for cause, count in sorted(status.removed.items()):
            evictions.add_metric((cause,), count)
        yield evictions
        yield CounterMetricFamily(
            "noderegistry_suspects_marked",
            "Expired members this frontend's evictor held as SUSPECT (over the eviction budget).",
            value=status.suspected,
        )
        preserving = GaugeMetricFamily(
            "noderegistry_self_preservation",
            "1 while a datacenter holds silent members as SUSPECT instead of removing them (the "
            "alarm), as the evictor last planned; only the leading evictor reports it.",
            labels=("datacenter",),
        )
        remaining = GaugeMetricFamily(
            "noderegistry_eviction_budget_remaining",
            "Evictions a datacenter may still have in the current window (leading evictor only).",
            labels=("datacenter",),
        )
        type_remaining = GaugeMetricFamily(
            "noderegistry_eviction_type_budget_remaining",
            "Evictions a (datacenter, type) may still have in the current window, for types with "
            "silent members (leading evictor only).",
            labels=("datacenter", "type"),
        )
        if status.leader:
            for datacenter, budget in sorted(status.plan.datacenters.items()):
                preserving.add_metric((datacenter,), int(budget.preserving))
                remaining.add_metric((datacenter,), max(0, budget.budget - budget.spent))
            for (datacenter, node_type), budget in sorted(status.plan.types.items()):
                type_remaining.add_metric(
                    (datacenter, node_type), max(0, budget.budget - budget.spent)
                )
        yield preserving
        yield remaining
        yield type_remaining
        yield GaugeMetricFamily(
            "noderegistry_evictor_leader",
            "1 while this frontend leads eviction.",
            value=int(evictor.status.leader),
        )


def _node_counts(hub: WatchHub, evictor: Evictor) -> GaugeMetricFamily:
    """`noderegistry_nodes`, from the frontend that leads eviction only (D34). Every status of
    every (datacenter, type) the view knows is reported, 0 when no node has it: a count that drops
    to 0 stays a series (an autoscaler reading it sees 0, not nothing), and a new leader reports
    the same series, since every frontend's view knows the same types (D87)."""
    nodes = GaugeMetricFamily(
        "noderegistry_nodes",
        "Registered nodes per datacenter, type and status (cluster-wide: only the frontend that "
        "leads eviction reports it, so a sum over frontends counts each node once; every status "
        "of every type that had a node within identity_retention_seconds, 0 when none has it).",
        labels=("datacenter", "type", "status"),
    )
    if not (hub.revision and evictor.status.leader):
        return nodes
    view = hub.view
    counts: collections.Counter[tuple[str, str, str]] = collections.Counter(
        {
            (dc, node_type, status.value): 0
            for dc, node_type in view.known_types()
            for status in NodeStatus
        }
    )
    for member in view.members(Scope()):
        node = member.registration.node
        counts[(node.datacenter, node.type, node.status.value)] += 1
    for labels, count in sorted(counts.items()):
        nodes.add_metric(labels, count)
    return nodes


def _remote_datacenters(remotes: RemoteReads) -> Iterator[Any]:
    """The federation: each followed datacenter's staleness, age, size and revision."""
    families = {
        "stale": GaugeMetricFamily(
            "noderegistry_remote_datacenter_stale",
            "1 while a followed datacenter's list may be out of date (its registry or the link "
            "to it is down): kept as last seen, served marked stale.",
            labels=("datacenter",),
        ),
        "age": GaugeMetricFamily(
            "noderegistry_remote_datacenter_age_seconds",
            "Time since a followed datacenter's registry was last heard from.",
            labels=("datacenter",),
        ),
        "nodes": GaugeMetricFamily(
            "noderegistry_remote_datacenter_nodes",
            "Nodes of a followed datacenter, as this frontend holds them.",
            labels=("datacenter",),
        ),
        "revision": GaugeMetricFamily(
            "noderegistry_remote_datacenter_revision",
            "The followed datacenter's registry revision this frontend's list is complete up to.",
            labels=("datacenter",),
        ),
    }
    relists = CounterMetricFamily(
        "noderegistry_remote_datacenter_relists",
        "Full lists of a followed datacenter sent as one net difference (relisted): its stream "
        "could not resume after a gap.",
        labels=("datacenter",),
    )
    for name, remote in remotes.datacenters.items():
        families["stale"].add_metric((name,), int(remote.stale))
        families["age"].add_metric((name,), remote.age_seconds())
        families["nodes"].add_metric((name,), len(remote))
        families["revision"].add_metric((name,), remote.revision)
        relists.add_metric((name,), remote.relists)
    yield from families.values()
    yield relists
