"""Every Prometheus metric of a frontend, defined once.

Each Frontend has its own CollectorRegistry (several frontends may share a process in tests).
RPC metrics use go-grpc-prometheus's names and labels, so standard gRPC dashboards work. Gauges that
describe state (nodes, subscribers, leadership, lag) are read from the running parts at scrape time,
so they are never stale; the core keeps plain counters and knows nothing of Prometheus.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from registry_service.domain import Scope
from registry_service.logs import request_id

if TYPE_CHECKING:
    from registry_service.evictor import Evictor
    from registry_service.watch_hub import WatchHub

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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
        self.fanout_seconds = Histogram(
            "noderegistry_watch_fanout_seconds",
            "From the frontend receiving a change from etcd to the change written to a subscriber.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.etcd_seconds = Histogram(
            "noderegistry_etcd_request_seconds",
            "etcd request latency, by operation.",
            ("operation",),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe_etcd(self, operation: str, seconds: float) -> None:
        self.etcd_seconds.labels(operation).observe(seconds)

    def attach(self, hub: WatchHub, evictor: Evictor) -> None:
        """Registers the collector that reads the frontend's state at scrape time."""
        self.registry.register(_StateCollector(hub, evictor))


class _StateCollector(Collector):
    def __init__(self, hub: WatchHub, evictor: Evictor) -> None:
        self._hub = hub
        self._evictor = evictor

    def collect(self) -> Iterator[Any]:
        hub, evictor = self._hub, self._evictor
        nodes = GaugeMetricFamily(
            "noderegistry_nodes",
            "Registered nodes in this frontend's view.",
            labels=("datacenter", "type", "status"),
        )
        counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
        if hub.revision:
            for member in hub.view.members(Scope()):
                node = member.registration.node
                counts[(node.datacenter, node.type, node.status.value)] += 1
        for labels, count in sorted(counts.items()):
            nodes.add_metric(labels, count)
        yield nodes

        subscriptions = hub.subscriptions
        yield GaugeMetricFamily(
            "noderegistry_watch_subscribers", "Open WatchNodes streams.", value=len(subscriptions)
        )
        acking = [s for s in subscriptions if s.acked_revision]
        yield GaugeMetricFamily(
            "noderegistry_watch_subscribers_converged",
            "Subscribers that acknowledged the frontend's latest revision.",
            value=sum(1 for s in acking if s.acked_revision >= hub.revision),
        )
        yield GaugeMetricFamily(
            "noderegistry_watch_slowest_ack_lag_revisions",
            "How far the slowest acknowledging subscriber is behind the frontend's revision.",
            value=max((hub.revision - s.acked_revision for s in acking), default=0),
        )
        resyncs = CounterMetricFamily(
            "noderegistry_watch_resyncs", "Resync snapshots sent, by reason.", labels=("reason",)
        )
        for reason, count in sorted(hub.resyncs.items(), key=lambda item: item[0].value):
            resyncs.add_metric((reason.value,), count)
        yield resyncs
        yield CounterMetricFamily(
            "noderegistry_watch_relists",
            "Full re-reads of etcd after a compacted watch.",
            value=hub.relists,
        )
        yield GaugeMetricFamily(
            "noderegistry_push_enabled",
            "1 while WatchNodes pushes are on (the push switch).",
            value=int(hub.push_enabled),
        )
        yield GaugeMetricFamily(
            "noderegistry_watch_lag_revisions",
            "etcd's latest revision seen by the watch minus the revision applied.",
            value=max(0, hub.etcd_revision - hub.revision),
        )
        yield GaugeMetricFamily(
            "noderegistry_cache_age_seconds",
            "Time since the frontend's etcd watch last spoke.",
            value=hub.age_seconds,
        )
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
        if status.leader:
            for datacenter, budget in sorted(status.plan.datacenters.items()):
                preserving.add_metric((datacenter,), int(budget.preserving))
                remaining.add_metric((datacenter,), max(0, budget.budget - budget.spent))
        yield preserving
        yield remaining
        yield GaugeMetricFamily(
            "noderegistry_evictor_leader",
            "1 while this frontend leads eviction.",
            value=int(evictor.status.leader),
        )


def _split(method: str) -> tuple[str, str]:
    _, service, name = method.split("/", 2)
    return service, name


class MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """Counts and times every RPC under go-grpc-prometheus's names, and gives each a request id
    (the client's `x-request-id` metadata, or a new one) that every log line of the RPC carries."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None
        service, method = _split(details.method)
        metrics = self._metrics

        @contextlib.contextmanager
        def observed(kind: str, context: grpc.aio.ServicerContext) -> Iterator[None]:
            given = dict(context.invocation_metadata() or ()).get("x-request-id", "")
            request_id.set(str(given)[:64] or secrets.token_hex(6))
            labels = (kind, service, method)
            metrics.grpc_started.labels(*labels).inc()
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                yield
            except BaseException as err:
                error = err
                raise
            finally:
                metrics.grpc_handled.labels(*labels, _code_of(context, error).name).inc()
                metrics.grpc_seconds.labels(*labels).observe(time.perf_counter() - started)

        if handler.unary_unary or handler.stream_unary:
            kind = "unary" if handler.unary_unary else "client_stream"
            inner = handler.unary_unary or handler.stream_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                with observed(kind, context):
                    return await inner(request, context)

            factory = (
                grpc.unary_unary_rpc_method_handler
                if handler.unary_unary
                else grpc.stream_unary_rpc_method_handler
            )
            return factory(
                unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        kind = "server_stream" if handler.unary_stream else "bidi_stream"
        inner_stream = handler.unary_stream or handler.stream_stream

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> Any:
            with observed(kind, context):
                result = inner_stream(request, context)
                if inspect.isasyncgen(result):
                    async for response in result:
                        yield response
                else:  # a handler that writes with context.write() (the health service's Watch)
                    await result

        factory = (
            grpc.unary_stream_rpc_method_handler
            if handler.unary_stream
            else grpc.stream_stream_rpc_method_handler
        )
        return factory(
            streaming,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _code_of(context: grpc.aio.ServicerContext, error: BaseException | None) -> grpc.StatusCode:
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    code: grpc.StatusCode | None = context.code()
    if code is not None:
        return code
    return grpc.StatusCode.UNKNOWN if error is not None else grpc.StatusCode.OK
