"""The health checks' metrics (docs/design.md §13): probes by kind and result and their
latency, counted as they run; this frontend's share, its flaps, and (from the frontend that
leads eviction only, as every cluster-wide gauge: docs/decisions.md D34) every node's health and
the damped nodes per datacenter, read at scrape time."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from registry_service.domain import CheckKind, Health, Scope

if TYPE_CHECKING:
    from registry_service.core.evictor import Evictor
    from registry_service.core.health_keeper import HealthKeeper
    from registry_service.hub.watch_hub import WatchHub

# The same buckets as the RPC latencies (metrics.py).
_PROBE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ProbeMetrics:
    """`noderegistry_health_probes_total{kind,result}` and `noderegistry_health_probe_seconds`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        probes = Counter(
            "noderegistry_health_probes_total",
            "Health check probes this frontend ran (its share of the nodes with checks), by "
            "kind (grpc, http, tcp) and result (pass, fail).",
            ("kind", "result"),
            registry=registry,
        )
        seconds = Histogram(
            "noderegistry_health_probe_seconds",
            "Time a health check probe took, by kind (a timed-out probe counts its timeout).",
            ("kind",),
            buckets=_PROBE_BUCKETS,
            registry=registry,
        )
        # Bound once: probes run hundreds of times a second.
        self._probe_series = {
            (kind, passed): (
                probes.labels(kind.value.lower(), "pass" if passed else "fail"),
                seconds.labels(kind.value.lower()),
            )
            for kind in CheckKind
            for passed in (True, False)
        }

    def observe(self, kind: CheckKind, passed: bool, seconds: float) -> None:
        """One health check probe (core/health_keeper.py's hook)."""
        counter, histogram = self._probe_series[(kind, passed)]
        counter.inc()
        histogram.observe(seconds)


class HealthCollector(Collector):
    """The health checks' state, read at scrape time."""

    def __init__(self, keeper: HealthKeeper, hub: WatchHub, evictor: Evictor) -> None:
        self._keeper = keeper
        self._hub = hub
        self._evictor = evictor

    def collect(self) -> Iterator[Any]:
        """The health figures, read from the keeper and the view at scrape time."""
        keeper, hub = self._keeper, self._hub
        yield GaugeMetricFamily(
            "noderegistry_health_probed_nodes",
            "Nodes whose checks this frontend runs now (its rendezvous share), damped nodes "
            "without checks that it watches over included.",
            value=keeper.owned,
        )
        stats = keeper.stats
        flaps = CounterMetricFamily(
            "noderegistry_health_flaps",
            "Changes of a probed node's health this frontend saw, by whether flap damping held "
            "the node (damped: subscribers saw nothing of it).",
            labels=("damped",),
        )
        flaps.add_metric(("false",), stats.flaps - stats.damped_flaps)
        flaps.add_metric(("true",), stats.damped_flaps)
        yield flaps
        yield CounterMetricFamily(
            "noderegistry_health_write_failures",
            "Writes of a node's health that failed and were retried (etcd unreachable, or the "
            "node kept changing).",
            value=stats.writes_failed,
        )
        health = GaugeMetricFamily(
            "noderegistry_nodes_health",
            "Registered nodes per datacenter and health (UNCHECKED: no check; FAILING includes "
            "damped nodes); only the frontend that leads eviction reports it.",
            labels=("datacenter", "health"),
        )
        damped = GaugeMetricFamily(
            "noderegistry_nodes_damped",
            "Nodes held FAILING by flap damping, per datacenter (leading evictor only).",
            labels=("datacenter",),
        )
        counts: collections.Counter[tuple[str, Health]] = collections.Counter()
        held: collections.Counter[str] = collections.Counter()
        datacenters: set[str] = set()
        if hub.revision and self._evictor.status.leader:
            for member in hub.view.members(Scope()):
                node = member.registration.node
                datacenters.add(node.datacenter)
                counts[(node.datacenter, node.health)] += 1
                if node.damped:
                    held[node.datacenter] += 1
        for datacenter in sorted(datacenters):
            for state in Health:
                health.add_metric((datacenter, state.value), counts[(datacenter, state)])
            damped.add_metric((datacenter,), held[datacenter])
        yield health
        yield damped
