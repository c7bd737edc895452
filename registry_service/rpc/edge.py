"""The service's one error edge: every Registry handler, unary or streaming, runs inside it.

`with_error_edge` wraps a method handler where the service is registered (rpc/server.py), so no
RPC can be added without it (a new handler of the same kind: rpc/handler_kinds.py). An exception
leaving a handler becomes a status once, here:

- a RegistryError: the code from the table in rpc/status.py, with its own message;
- anything else: logged with its traceback under the call's request id, and answered INTERNAL
  with a message that names only that id (rpc/status.status_of);
- grpc's own signals pass through to grpc, which knows them: an abort already sent, a write to a
  client that has gone (ExecuteBatchError), a server that is stopping (all `grpc.aio.BaseError`);
- a client that cancels is not a failure: its handler sees CancelledError or GeneratorExit,
  which are not Exceptions and are never caught here; grpc logs them at DEBUG.

Every call gets a request id at its start (if no interceptor gave it one), so that every log
line of the call carries it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

from registry_service.rpc.handler_kinds import rewrapped
from registry_service.rpc.status import pushback_of, status_of
from registry_service.telemetry.logs import ensure_request_id

Unary = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
Streaming = Callable[[Any, grpc.aio.ServicerContext], AsyncGenerator[Any, None]]


def with_error_edge(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """The same handler (kind, serializers), its behaviour inside the error edge."""
    return rewrapped(
        handler,
        lambda kind, behaviour: (
            _streaming(behaviour) if kind.response_streaming else _unary(behaviour)
        ),
    )


def _unary(behaviour: Unary) -> Unary:
    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        ensure_request_id()
        try:
            return await behaviour(request, context)
        except grpc.aio.BaseError:
            raise
        except Exception as err:
            await context.abort(*status_of(err), trailing_metadata=pushback_of(err))

    return unary


def _streaming(behaviour: Streaming) -> Streaming:
    async def streaming(
        request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncGenerator[Any, None]:
        ensure_request_id()
        try:
            # aclosing: when the client goes away, the handler's `finally` runs at once, not
            # whenever the abandoned generator is collected.
            async with contextlib.aclosing(behaviour(request, context)) as responses:
                async for response in responses:
                    yield response
        except grpc.aio.BaseError:
            raise
        except Exception as err:
            await context.abort(*status_of(err), trailing_metadata=pushback_of(err))

    return streaming
