"""The AggregatedDiscoveryService of a frontend: ADS streams, both protocols, on the gRPC port.

Registered beside the Registry service (rpc/server.py's `extra_services`), so an xDS stream has
the port's TLS, its bearer tokens (the `xds` scope, rpc/access.py, narrowed per resource name
by the session) and its limits: each stream
counts against `max_streams_per_peer` like a WatchNodes stream. Every handler runs inside the
error edge (rpc/edge.py). A stream writes its responses itself (`context.write`): the pump of
each endpoint watch sends as soon as its nodes change, without a hop through the handler.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
from envoy.service.discovery.v3 import ads_pb2, ads_pb2_grpc, discovery_pb2

from registry_service.errors import ShuttingDownError
from registry_service.rpc.access import StreamCounter, peer_identity
from registry_service.rpc.edge import with_error_edge
from registry_service.security.bearer_tokens import TokenTable
from registry_service.security.open_streams import OpenStreams
from registry_service.security.permissions import Caller, require_caller
from registry_service.xds.protocols import Incremental, StateOfTheWorld
from registry_service.xds.session import ResourceCache, Session, XdsParts

SERVICE_NAME = ads_pb2.DESCRIPTOR.services_by_name["AggregatedDiscoveryService"].full_name


class AggregatedDiscovery(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    """The xDS ADS service: state-of-the-world and incremental streams on the gRPC port."""

    def __init__(
        self, parts: XdsParts, *, streams: StreamCounter, tokens: TokenTable | None = None
    ) -> None:
        self._parts = parts
        self._streams = streams
        self._tokens = tokens or TokenTable({})
        self._open = OpenStreams(self._tokens, "xDS")  # a revoked token ends its streams
        self._cache = ResourceCache()
        self._sessions: set[Session] = set()
        self._stopping = False

    @property
    def stream_count(self) -> int:
        """Open ADS streams on this frontend."""
        return len(self._sessions)

    def begin_shutdown(self) -> None:
        """Ends every ADS stream with UNAVAILABLE so clients move to another frontend."""
        self._stopping = True
        for session in self._sessions:
            session.fail(ShuttingDownError("the frontend is shutting down; reconnect elsewhere"))

    def _caller(self, context: grpc.aio.ServicerContext) -> Caller:
        """The stream's token, checked against each resource name it asks for (its datacenter
        and type: `xds:dc1/data` reads `data.dc1` and nothing else)."""
        return require_caller(self._tokens, context.invocation_metadata())

    async def StreamAggregatedResources(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[None]:
        """One state-of-the-world ADS stream, until the client ends it."""
        stream = StateOfTheWorld(
            self._parts, self._cache, context.peer() or "", context.write, self._caller(context)
        )
        await self._serve(stream.session, stream.handle, request_iterator, context)
        return
        yield  # pragma: no cover  (an async generator, as the error edge expects)

    async def DeltaAggregatedResources(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[None]:
        """One incremental ADS stream, until the client ends it."""
        stream = Incremental(
            self._parts, self._cache, context.peer() or "", context.write, self._caller(context)
        )
        await self._serve(stream.session, stream.handle, request_iterator, context)
        return
        yield  # pragma: no cover

    async def _serve(
        self,
        session: Session,
        handle: Any,
        request_iterator: AsyncIterator[Any],
        context: grpc.aio.ServicerContext,
    ) -> None:
        """Reads the client's requests in order until it closes the stream or the session
        fails (the frontend is shutting down, or a tokens file read again no longer holds the
        stream's token or its grants for what the stream watches: open_streams.py)."""
        if self._stopping:
            raise ShuttingDownError("the frontend is shutting down; reconnect elsewhere")
        metrics = self._parts.metrics
        metadata = context.invocation_metadata()
        with (
            self._streams.hold(peer_identity(context, self._tokens)),
            self._open.following(session.caller, metadata, session.regrant, session.fail),
        ):

            async def read() -> None:
                async for request in request_iterator:
                    await handle(request)

            self._sessions.add(session)
            if metrics is not None:
                metrics.xds_streams.labels(session.protocol).inc()
            reader = asyncio.create_task(read())
            failed = asyncio.create_task(session.failed.wait())
            try:
                await asyncio.wait({reader, failed}, return_when=asyncio.FIRST_COMPLETED)
                if session.error is not None:
                    raise session.error
                await reader
            finally:
                for task in (reader, failed):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                session.close()
                self._sessions.discard(session)
                if metrics is not None:
                    metrics.xds_streams.labels(session.protocol).dec()


def _serialized(response: Any) -> bytes:
    """Responses are messages, or bytes already serialized (a body shared by many streams with
    each stream's nonce appended: session.ResourceCache)."""
    if isinstance(response, bytes):
        return response
    encoded: bytes = response.SerializeToString()
    return encoded


def add_xds_service(servicer: AggregatedDiscovery, server: grpc.aio.Server) -> None:
    """What the generated add_..._to_server does, with every handler inside the error edge."""
    handlers = {
        "StreamAggregatedResources": with_error_edge(
            grpc.stream_stream_rpc_method_handler(
                servicer.StreamAggregatedResources,
                request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
                response_serializer=_serialized,
            )
        ),
        "DeltaAggregatedResources": with_error_edge(
            grpc.stream_stream_rpc_method_handler(
                servicer.DeltaAggregatedResources,
                request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
                response_serializer=_serialized,
            )
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
