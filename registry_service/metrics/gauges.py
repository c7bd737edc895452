"""The gauges a frontend's metrics read from its running parts at scrape time, so that they are
never stale (metrics/__init__.py registers them): admission control, the certificates' expiry,
the HTTP API's open streams and waiting reads, and the frontend's state (nodes, subscribers,
eviction, the operator state, the followed datacenters).

Cluster-wide gauges (nodes per datacenter/type/status, the self-preservation alarm, the budget)
come only from the frontend that leads eviction: every frontend holds the whole cluster's view,
and a sum over pods must count each node once (docs/decisions.md D34).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from registry_service.domain import NodeStatus, Scope

if TYPE_CHECKING:
    from registry_service.core.concurrency_limit import AdaptiveLimit
    from registry_service.core.evictor import Evictor
    from registry_service.hub.operator_state import OperatorView
    from registry_service.hub.remote_view import RemoteReads
    from registry_service.hub.watch_hub import WatchHub


class AdmissionState(Protocol):
    """What the metrics read of admission control (rpc/admission.Admission)."""

    registers: AdaptiveLimit
    loop_lag_seconds: float
    registers_refused: int
    reads_refused: int

    @property
    def waiting(self) -> int:
        """Registers waiting for admission now."""


class AdmissionCollector(Collector):
    """Admission control's limit, waiting and refused calls (D72)."""

    def __init__(self, admission: AdmissionState) -> None:
        self._admission = admission

    def collect(self) -> Iterator[Any]:
        """The metric families, read now (Prometheus scrapes)."""
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


class CertificateCollector(Collector):
    """The time each certificate or CA file in use has left (D116)."""

    def __init__(self, seconds_left: Callable[[], Mapping[str, float]]) -> None:
        self._seconds_left = seconds_left

    def collect(self) -> Iterator[Any]:
        """The metric families, read now (Prometheus scrapes)."""
        expiry = GaugeMetricFamily(
            "noderegistry_certificate_expiry_seconds",
            "Seconds until the first certificate of each certificate or CA file in use expires, "
            "by the setting naming the file (negative: expired).",
            labels=("setting",),
        )
        for setting, seconds in sorted(self._seconds_left().items()):
            expiry.add_metric((setting,), round(seconds, 3))
        yield expiry


class HttpCollector(Collector):
    """The HTTP API's open event streams and waiting blocking reads."""

    def __init__(self, event_streams: Callable[[], int], waiting: Callable[[], int]) -> None:
        self._event_streams, self._waiting = event_streams, waiting

    def collect(self) -> Iterator[Any]:
        """The metric families, read now (Prometheus scrapes)."""
        yield GaugeMetricFamily(
            "noderegistry_http_event_streams",
            "Open /v1/watch event streams (Server-Sent Events).",
            value=self._event_streams(),
        )
        yield GaugeMetricFamily(
            "noderegistry_http_blocking_reads",
            "Blocking reads (/v1/nodes?index=...) waiting for a change now.",
            value=self._waiting(),
        )


class StateCollector(Collector):
    """The frontend's state: nodes, subscribers, eviction, the operator state, the followed
    datacenters."""

    def __init__(
        self, hub: WatchHub, evictor: Evictor, operator: OperatorView, remotes: RemoteReads
    ) -> None:
        self._hub = hub
        self._evictor = evictor
        self._operator = operator
        self._remotes = remotes

    def collect(self) -> Iterator[Any]:
        """The metric families, read now (Prometheus scrapes)."""
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
