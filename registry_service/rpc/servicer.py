"""The Registry gRPC service: proto in, domain call, proto out. One method per RPC.

Each handler checks the caller's token against the node key or the scope it names, once it
knows them (permissions.py: a token narrowed to `register:dc1/data` registers nothing else; the
interceptor has only checked that the token names the operation). Handlers raise; they never
pick a status. Every handler runs inside the error edge (rpc/edge.py), which turns what it
raises into a status once, streams included. The one exception is KeepAlive's
per-registration answers, which carry their own code (D7), from the same table (`status_of`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TypeVar

import grpc
import grpc.aio
from noderegistry.v1 import registry_pb2 as pb
from noderegistry.v1 import registry_pb2_grpc as pb_grpc

from registry_service.core.reads import Reads
from registry_service.core.registry import Registry
from registry_service.core.session_leases import session_name
from registry_service.domain import (
    ChangeStage,
    DeltaMessage,
    NodeKey,
    WatchMessage,
)
from registry_service.errors import (
    ResourceExhaustedError,
    ShuttingDownError,
    UnauthenticatedError,
)
from registry_service.failpoints import failpoint
from registry_service.metrics import Metrics
from registry_service.rpc import convert
from registry_service.rpc.access import StreamCounter, TokenBucket, peer_identity
from registry_service.rpc.admission import Admission
from registry_service.rpc.status import status_of
from registry_service.security.bearer_tokens import TokenTable
from registry_service.security.open_streams import OpenStreams
from registry_service.security.permissions import ANYONE, Caller, require_caller

_KEEPALIVE_IN_FLIGHT_PER_STREAM = 256
_STOP = object()
AnswerT = TypeVar("AnswerT", pb.KeepAliveResponse, pb.RenewalResult)


class WireCache:
    """Serializes each watch message once for every subscriber that receives the same object.

    The hub hands one DeltaMessage object to every subscriber whose scope takes all of it, so a
    change reaching W subscribers costs one protobuf build and one serialization, not W. The cache
    holds the last few messages (kept alive by the cache, so their ids stay unique).
    """

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._encoded: collections.OrderedDict[int, tuple[WatchMessage, bytes]] = (
            collections.OrderedDict()
        )

    def encode(self, message: WatchMessage) -> bytes:
        """The message serialized, from the cache when this very object was serialized before."""
        entry = self._encoded.get(id(message))
        if entry is not None and entry[0] is message:
            return entry[1]
        encoded: bytes = convert.watch_message_to_pb(message).SerializeToString()
        self._encoded[id(message)] = (message, encoded)
        if len(self._encoded) > self._size:
            self._encoded.popitem(last=False)
        return encoded


@dataclass(frozen=True, slots=True)
class ServicerConfig:
    """The gRPC service's limits per stream and per peer."""

    max_registrations_per_stream: int = 10_000
    """Distinct registrations one KeepAlive stream may renew
    (`keepalive_max_registrations_per_stream`)."""
    max_streams_per_peer: int = 1_000
    """Open KeepAlive and WatchNodes streams per peer (`max_streams_per_peer`), unless the
    servicer is handed a counter shared with another port."""
    keepalive_max_messages_per_second: float = 10_000.0
    """KeepAlive messages one stream may send per second
    (`keepalive_max_messages_per_second`)."""


class _StreamCaller:
    """A stream's caller, resolved again only when the token table was replaced since (a
    tokens file read again): a removed token stops the stream's next message, and a message
    costs no token lookup otherwise. Without a caller, the refusal's message (unknown token)."""

    def __init__(self, tokens: TokenTable, metadata: object) -> None:
        self._tokens = tokens
        self._metadata = metadata
        self._generation = -1
        self._caller: Caller | str = ANYONE

    def current(self) -> Caller | str:
        if self._generation != self._tokens.generation:
            self._generation = self._tokens.generation
            try:
                self._caller = require_caller(self._tokens, self._metadata)
            except UnauthenticatedError as err:
                self._caller = str(err)
        return self._caller


class RegistryServicer(pb_grpc.RegistryServicer):  # type: ignore[misc]  # grpc is untyped
    """The Registry gRPC service: protobuf in and out, the use cases do the work."""

    def __init__(
        self,
        registry: Registry,
        reads: Reads,
        config: ServicerConfig | None = None,
        *,
        metrics: Metrics | None = None,
        tokens: TokenTable | None = None,
        streams: StreamCounter | None = None,
        admission: Admission | None = None,
    ) -> None:
        """`streams`: the per-peer count of open streams, when shared with another port (the
        HTTP API's event streams count against the same limit); `admission`: what a congested
        frontend still takes (renewals first, D72; off when not given)."""
        config = config or ServicerConfig()
        self._admission = admission or Admission.off()
        self._registry = registry
        self._reads = reads
        self._metrics = metrics
        self._max_registrations_per_stream = config.max_registrations_per_stream
        self._tokens = tokens or TokenTable({})
        self._watches = OpenStreams(
            self._tokens, "WatchNodes"
        )  # a revoked token ends its WatchNodes streams
        self._streams = streams or StreamCounter(config.max_streams_per_peer)
        self._keepalive_rate = config.keepalive_max_messages_per_second
        self._keepalive_outboxes: set[asyncio.Queue[object]] = set()
        self._wire = WireCache()
        self._stopping = False

    def begin_shutdown(self) -> None:
        """Ends every KeepAlive stream with UNAVAILABLE so clients move to another frontend."""
        self._stopping = True
        for outbox in self._keepalive_outboxes:
            outbox.put_nowait(_STOP)

    def _caller(self, context: grpc.aio.ServicerContext) -> Caller:
        return require_caller(self._tokens, context.invocation_metadata())

    async def Register(
        self, request: pb.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterResponse:
        """Registers a node for its owner, once the caller's token may write its key."""
        node = convert.node_from_pb(request.node)
        self._caller(context).require("register", node.key, self._registry.limits)
        # A client's session is scoped by who the caller is: no one joins another's lease.
        session = session_name(peer_identity(context, self._tokens), request.session)
        async with self._admission.register():
            result = await self._registry.register(
                node,
                request.ttl_seconds,
                request.idempotency_key,
                request.token,
                session,
                convert.checks_from_pb(list(request.checks)),
            )
        return pb.RegisterResponse(
            node=convert.node_to_pb(result.node),
            ttl_seconds=result.ttl_seconds,
            token=result.token,
            revision=result.revision,
            session_lease=result.session_lease,
        )

    async def Deregister(
        self, request: pb.DeregisterRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeregisterResponse:
        """Removes a node for the holder of its registration token."""
        key = convert.key_from_pb(request.key)
        self._caller(context).require("register", key, self._registry.limits)
        revision = await self._registry.deregister(key, request.token)
        return pb.DeregisterResponse(revision=revision)

    async def GetNodes(
        self, request: pb.GetNodesRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetNodesResponse:
        """The scope's nodes, as consistent as the request asks."""
        scope = convert.scope_from_pb(request.scope, healthy_only=request.healthy_only)
        self._caller(context).require_scope("watch", scope, self._registry.limits)
        self._admission.read("GetNodes")
        nodes = await self._reads.get_nodes(scope, convert.consistency_from_pb(request.consistency))
        return convert.node_list_to_pb(nodes)

    async def WatchNodes(
        self, request: pb.WatchNodesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchNodesResponse | bytes]:
        """The scope's snapshot and then its changes, for as long as the client reads."""
        scope = convert.scope_from_pb(request.scope, healthy_only=request.healthy_only)
        caller = self._caller(context)
        caller.require_scope("watch", scope, self._registry.limits)
        self._admission.read("WatchNodes")
        with self._streams.hold(peer_identity(context, self._tokens)):
            subscription = await self._reads.watch(
                scope,
                convert.resume_from_pb(request),
                peer=context.peer() or "",
                acknowledging=request.acknowledge,
            )
            first = True
            # A token removed from the file (or no longer granting the scope) ends the stream
            # when the file is read again: UNAUTHENTICATED (or PERMISSION_DENIED) next.
            revoked = self._watches.following(
                caller,
                context.invocation_metadata(),
                lambda again: again.require_scope("watch", scope),
                subscription.fail,
            )
            try:
                with revoked:
                    async for message in subscription:
                        if first:  # carries this stream's subscription id: serialized alone
                            response = convert.watch_message_to_pb(message)
                            response.subscription_id, first = subscription.id, False
                            yield response
                        else:
                            yield self._wire.encode(message)
                        written_at = time.monotonic()  # written: the transport took it
                        subscription.written(message, written_at)
                        if isinstance(message, DeltaMessage) and self._metrics is not None:
                            self._metrics.events_sent.inc(len(message.events))
                            if message.queued_at:
                                self._metrics.stage[ChangeStage.QUEUED_TO_WRITTEN].observe(
                                    written_at - message.queued_at
                                )
            finally:
                subscription.close()

    async def AckWatch(
        self, request: pb.AckWatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.AckWatchResponse:
        """A subscriber confirms the revision it applied (for the stream's ack deadline)."""
        self._reads.ack(request.subscription_id, request.revision)
        return pb.AckWatchResponse()

    async def KeepAlive(
        self,
        request_iterator: AsyncIterator[pb.KeepAliveRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.KeepAliveResponse]:
        """Renews concurrently (up to a bound per stream) and answers each request once, in the
        order renewals complete. A per-registration failure, unexpected ones included, is a code
        in its response (INTERNAL naming the request id, for a bug); the stream itself ends only
        when the client closes it, the frontend shuts down, or reading the stream fails."""
        if self._stopping:
            raise ShuttingDownError("the frontend is shutting down")
        with self._streams.hold(peer_identity(context, self._tokens)):
            rate = TokenBucket(self._keepalive_rate, time.monotonic)
            # Bounds renewals in flight plus answers not yet taken by the client: a client that
            # stops reading stops being read from.
            in_flight = asyncio.Semaphore(_KEEPALIVE_IN_FLIGHT_PER_STREAM)
            outbox: asyncio.Queue[object] = asyncio.Queue()
            self._keepalive_outboxes.add(outbox)
            keys: set[NodeKey] = set()
            tasks: set[asyncio.Task[None]] = set()

            caller_of_stream = _StreamCaller(self._tokens, context.invocation_metadata())

            async def renew(request: pb.KeepAliveRequest) -> None:
                # Each message is checked anew: a token removed from the file stops renewing.
                caller = caller_of_stream.current()
                if request.renewals:
                    outbox.put_nowait(await self._keep_alive_many(request, keys, caller))
                else:
                    outbox.put_nowait(await self._keep_alive_one(request, keys, caller))

            async def read_requests() -> None:
                try:
                    await failpoint("keep_alive.read")
                    async for request in request_iterator:
                        await in_flight.acquire()
                        if not rate.take():
                            outbox.put_nowait(self._over_rate(request))
                            continue
                        task = asyncio.create_task(renew(request))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                    if tasks:
                        await asyncio.gather(*tasks)
                finally:
                    outbox.put_nowait(_STOP)

            reader = asyncio.create_task(read_requests())
            try:
                while True:
                    item = await outbox.get()
                    if item is _STOP:
                        break
                    assert isinstance(item, pb.KeepAliveResponse)
                    yield item
                    in_flight.release()
                if self._stopping:
                    raise ShuttingDownError("the frontend is shutting down")
                await reader
            finally:
                self._keepalive_outboxes.discard(outbox)
                reader.cancel()
                for task in list(tasks):
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader

    def _over_rate(self, request: pb.KeepAliveRequest) -> pb.KeepAliveResponse:
        error = ResourceExhaustedError(
            f"this stream sends more than {self._keepalive_rate:g} KeepAlive messages per second "
            "(keepalive_max_messages_per_second); renew each registration every TTL/3, all of "
            "them in one message"
        )
        if request.renewals:
            return self._answers(request, [error] * len(request.renewals))
        return self._answer(pb.KeepAliveResponse, request.key, error)

    def _admit(self, key: NodeKey, keys: set[NodeKey]) -> None:
        if key not in keys and len(keys) >= self._max_registrations_per_stream:
            raise ResourceExhaustedError(
                f"this stream already renews {len(keys)} registrations; the limit is "
                f"{self._max_registrations_per_stream} (open another stream)"
            )
        keys.add(key)

    def _permit(self, caller: Caller | str, key: NodeKey) -> None:
        """Raises unless the stream's token (as of this message) may renew the node."""
        if isinstance(caller, str):
            raise UnauthenticatedError(caller)
        caller.require("register", key, self._registry.limits)

    async def _keep_alive_one(
        self, request: pb.KeepAliveRequest, keys: set[NodeKey], caller: Caller | str
    ) -> pb.KeepAliveResponse:
        """One registration's answer: its code is its own (D7), so that one failure, even an
        unexpected one, never ends the stream the other registrations share."""
        answer: int | Exception
        try:
            key = convert.key_from_pb(request.key)
            self._permit(caller, key)
            self._admit(key, keys)
            answer = await self._registry.keep_alive(key, request.token)
        except Exception as err:
            answer = err
        return self._answer(pb.KeepAliveResponse, request.key, answer)

    async def _keep_alive_many(
        self, request: pb.KeepAliveRequest, keys: set[NodeKey], caller: Caller | str
    ) -> pb.KeepAliveResponse:
        """Several registrations in one message: one response, one result per renewal in the
        same order, each with its own code (a renewal the token may not make is refused alone:
        PERMISSION_DENIED naming the scope)."""
        answers: list[int | Exception] = [0] * len(request.renewals)
        admitted: list[tuple[NodeKey, str]] = []
        positions: list[int] = []
        for position, renewal in enumerate(request.renewals):
            try:
                key = convert.key_from_pb(renewal.key)
                self._permit(caller, key)
                self._admit(key, keys)
            except Exception as err:
                answers[position] = err
                continue
            admitted.append((key, renewal.token))
            positions.append(position)
        try:
            renewed = await self._registry.keep_alive_many(admitted)
        except Exception as err:  # a failure of the whole batch (a store outage) answers each
            renewed = [err] * len(admitted)
        for position, answer in zip(positions, renewed, strict=True):
            answers[position] = answer
        return self._answers(request, answers)

    def _answers(
        self, request: pb.KeepAliveRequest, answers: list[int | Exception]
    ) -> pb.KeepAliveResponse:
        return pb.KeepAliveResponse(
            results=[
                self._answer(pb.RenewalResult, renewal.key, answer)
                for renewal, answer in zip(request.renewals, answers, strict=True)
            ]
        )

    def _answer(self, kind: type[AnswerT], key: pb.NodeKey, answer: int | Exception) -> AnswerT:
        """One registration's answer (a response, or a result within one): the seconds it has
        left, or its error's code and message."""
        if isinstance(answer, Exception):
            code, message = status_of(answer)
            self._count_keepalive(code)
            return kind(key=key, code=code.value[0], message=message)
        self._count_keepalive(grpc.StatusCode.OK)
        return kind(key=key, code=0, ttl_seconds=answer)

    def _count_keepalive(self, code: grpc.StatusCode) -> None:
        if self._metrics is not None:
            self._metrics.keepalives.labels(code.name).inc()
