"""The gRPC port's interceptors: every RPC is counted and timed (`MetricsInterceptor`), and a
Registry or xDS call without a token that names its method's operation is refused before any
request is read (`AuthInterceptor`).

The metrics themselves are defined in metrics.py; which scope each method needs is
rpc/access.py's table. Both interceptors wrap a handler in a new one of the same kind through
rpc/handler_kinds.py. Health checking and reflection never need a token (probes cannot present
one), but they are counted like every RPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc
import grpc.aio

from registry_service.metrics import Metrics
from registry_service.rpc.access import METHOD_SCOPES
from registry_service.rpc.handler_kinds import (
    Behaviour,
    HandlerKind,
    handler_of,
    kind_of,
    rewrapped,
)
from registry_service.security.bearer_tokens import (
    NO_TOKEN_MESSAGE,
    UNKNOWN_TOKEN_MESSAGE,
    Presented,
    Principal,
    TokenTable,
)
from registry_service.telemetry import tracing
from registry_service.telemetry.logs import request_id

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]]


class MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """Counts and times every RPC and its messages under go-grpc-prometheus's names, and gives each
    a request id (the client's `x-request-id` metadata, or a new one) that every log line of the
    RPC carries."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None
        _, service, method = details.method.split("/", 2)
        return rewrapped(handler, _Observed(self._metrics, service, method).wrap)


class _Observed:
    """The behaviour of one method, counted and timed (one per RPC started)."""

    def __init__(self, metrics: Metrics, service: str, method: str) -> None:
        self._metrics = metrics
        self._service = service
        self._method = method

    def wrap(self, kind: HandlerKind, inner: Behaviour) -> Behaviour:
        if not kind.response_streaming:

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                with self._observed(kind, context) as (received, sent):
                    if kind.request_streaming:
                        request = _counted(request, received)
                    else:
                        received.inc()
                    response = await inner(request, context)
                    sent.inc()
                    return response

            return unary

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> Any:
            with self._observed(kind, context) as (received, sent):
                if kind.request_streaming:
                    request = _counted(request, received)
                else:
                    received.inc()
                result = inner(request, context)
                if inspect.isasyncgen(result):
                    async for response in result:
                        sent.inc()
                        yield response
                else:  # a handler that writes with context.write() (the health service's Watch)
                    await result

        return streaming

    @contextlib.contextmanager
    def _observed(
        self, kind: HandlerKind, context: grpc.aio.ServicerContext
    ) -> Iterator[tuple[Any, Any]]:
        """Yields the (received, sent) message counters of this RPC, inside its span."""
        metrics, service, method = self._metrics, self._service, self._method
        invocation_metadata = context.invocation_metadata() or ()
        given = dict(invocation_metadata).get("x-request-id", "")
        request_id.set(str(given)[:64] or secrets.token_hex(6))
        labels = (kind.value, service, method)
        metrics.grpc_started.labels(*labels).inc()
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            with tracing.span(
                f"{service}/{method}",
                {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
                carrier=invocation_metadata,
                server=True,
            ):
                yield metrics.grpc_received.labels(*labels), metrics.grpc_sent.labels(*labels)
        except BaseException as err:
            error = err
            raise
        finally:
            metrics.grpc_handled.labels(*labels, _code_of(context, error).name).inc()
            metrics.grpc_seconds.labels(*labels).observe(time.perf_counter() - started)


async def _counted(messages: AsyncIterator[Any], counter: Any) -> AsyncIterator[Any]:
    async for message in messages:
        counter.inc()
        yield message


def _code_of(context: grpc.aio.ServicerContext, error: BaseException | None) -> grpc.StatusCode:
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    code: grpc.StatusCode | None = context.code()
    if code is not None:
        return code
    return grpc.StatusCode.UNKNOWN if error is not None else grpc.StatusCode.OK


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """Refuses calls of the Registry and xDS services without a token (UNAUTHENTICATED "no
    token"), with a token the tokens file does not hold (UNAUTHENTICATED "unknown token", which
    says nothing of the tokens it holds), or with one whose scopes never name the method's
    operation (PERMISSION_DENIED), before any request is read. A token narrowed to datacenters
    and types passes here; the handlers check it against each node key or scope
    (permissions.py), where those are known."""

    def __init__(self, tokens: TokenTable) -> None:
        self._tokens = tokens

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        scope = METHOD_SCOPES.get(details.method)
        if scope is None or handler is None or not self._tokens.enabled:
            return handler
        principal = self._tokens.authenticate(details.invocation_metadata)
        if principal is Presented.NO_TOKEN:
            return _refusal(
                grpc.StatusCode.UNAUTHENTICATED,
                f"{NO_TOKEN_MESSAGE}: send 'authorization: Bearer <token>'",
                handler,
            )
        if not isinstance(principal, Principal):
            return _refusal(grpc.StatusCode.UNAUTHENTICATED, UNKNOWN_TOKEN_MESSAGE, handler)
        if not principal.may(scope):
            return _refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                f"token {principal.name!r} lacks the {scope!r} scope this call needs",
                handler,
            )
        return handler


def _refusal(
    code: grpc.StatusCode, message: str, handler: grpc.RpcMethodHandler
) -> grpc.RpcMethodHandler:
    """A handler of the refused one's kind that aborts at once (its request never decoded)."""

    async def abort_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)

    async def abort_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)
        yield  # pragma: no cover  (makes this an async generator, as streams need)

    kind = kind_of(handler)
    return handler_of(kind, abort_stream if kind.response_streaming else abort_unary)
