"""OpenTelemetry tracing: optional (the `[tracing]` extra), off by default (setting `tracing`).

Spans: every RPC, as a server span whose parent is the caller's (W3C `traceparent` metadata,
which the SDK sends when opentelemetry is installed beside it); every etcd request made while
serving it (Register -> etcd txn); and each watch event's fan-out to the subscribers. Off, `span`
hands back one shared no-op context manager, so the fan-out path pays a function call and no
opentelemetry import happens at all.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
from collections.abc import Iterable, Mapping
from typing import Any

_NO_SPAN = contextlib.nullcontext()
_tracer: Any = None
_provider: Any = None


class TracingUnavailableError(RuntimeError):
    """`tracing` is on but the opentelemetry packages are not installed."""


def enable(exporter: Any = None) -> None:
    """Turns tracing on for this process. Spans go to `exporter` as they end (tests pass an
    in-memory one), by default in batches over OTLP/gRPC, configured by the standard
    `OTEL_EXPORTER_OTLP_*` environment variables (endpoint, headers, certificate)."""
    global _tracer, _provider
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        if exporter is None:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            processor: Any = BatchSpanProcessor(OTLPSpanExporter())
        else:
            processor = SimpleSpanProcessor(exporter)
    except ImportError as err:
        raise TracingUnavailableError(
            f"setting tracing is on, but {err.name} is not installed: "
            "pip install 'node-registry[tracing]', or set REGISTRY_TRACING=false"
        ) from None
    try:
        version = importlib.metadata.version("node-registry")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    _provider = TracerProvider(
        resource=Resource.create({"service.name": "node-registry", "service.version": version})
    )
    _provider.add_span_processor(processor)
    _tracer = _provider.get_tracer("registry_service", version)


def disable() -> None:
    """Ends tracing, sending the spans still buffered."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def enabled() -> bool:
    """Whether tracing is on in this process."""
    return _tracer is not None


def span(
    name: str,
    attributes: Mapping[str, str | int] | None = None,
    *,
    carrier: Iterable[tuple[str, Any]] | None = None,
    server: bool = False,
) -> contextlib.AbstractContextManager[Any]:
    """A span around a block, a child of the current one; with `carrier` (request metadata) its
    parent is the caller's span. A no-op while tracing is off."""
    if _tracer is None:
        return _NO_SPAN
    from opentelemetry import propagate, trace

    context = None
    if carrier is not None:
        context = propagate.extract({key: str(value) for key, value in carrier})
    return _tracer.start_as_current_span(  # type: ignore[no-any-return]
        name,
        context=context,
        kind=trace.SpanKind.SERVER if server else trace.SpanKind.INTERNAL,
        attributes=dict(attributes or {}),
    )
