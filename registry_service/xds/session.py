"""One ADS stream's state, for both protocols: the client, its endpoint watches, the responses
in flight and what the client acknowledged.

Each EDS resource a stream subscribes to is a WatchNodes subscription through the read use case
(`Reads.watch`: a snapshot, then deltas; the push switch holds it like any subscriber). Its pump
applies every message to the resource's nodes and hands the resource to the protocol to send.
A response is sent with a fresh nonce; the client's ACK of that nonce is its confirmation of
the revisions the response carried (`Reads.ack`, the AckWatch path), so xDS clients appear in
the convergence view; a NACK is counted and changes nothing (the client keeps its last good
version, and the next change is sent as usual).

Building a resource is shared: the same name at the same version for the same kind of client is
the same resource (ResourceCache), so a change reaching a thousand streams builds it once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from envoy.config.core.v3 import base_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from registry_service.core.reads import Reads
from registry_service.domain import Limits, WatchResume
from registry_service.errors import PermissionDeniedError, SubscriptionNotFoundError
from registry_service.hub.subscription import Subscription
from registry_service.metrics import Metrics
from registry_service.security.permissions import ANYONE, Caller
from registry_service.xds import resources
from registry_service.xds.names import Target, parse_name
from registry_service.xds.watched import NodeSet

log = logging.getLogger(__name__)

_IN_FLIGHT_KEPT = 64  # responses awaiting an ACK, per stream (older ones are forgotten)
_nonces = itertools.count(1)


@dataclass(frozen=True)
class XdsParts:
    """What the xDS service uses of the frontend."""

    reads: Reads
    limits: Limits
    datacenter: str = ""  # this frontend's (settings `datacenter`): a client's default
    metrics: Metrics | None = None


class ResourceCache:
    """Built resources by (type, name, client kind, version), packed, and the response bodies
    made of them (serialized once: each stream appends only its nonce); the last `size` kept."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._built: collections.OrderedDict[tuple[str, ...], Any] = collections.OrderedDict()

    def _get(self, key: tuple[str, ...], build: Callable[[], Any]) -> Any:
        found = self._built.get(key)
        if found is not None:
            self._built.move_to_end(key)
            return found
        made = build()
        self._built[key] = made
        if len(self._built) > self._size:
            self._built.popitem(last=False)
        return made

    def get(self, key: tuple[str, ...], build: Callable[[], Message]) -> any_pb2.Any:
        """The resource under `key`, packed; built by `build` only when not cached."""
        packed: any_pb2.Any = self._get(key, lambda: resources.pack(build()))
        return packed

    def body(self, key: tuple[str, ...], build: Callable[[], Message]) -> bytes:
        """A response without its nonce, serialized (protobuf fields concatenate: the stream
        appends its own nonce field)."""
        body: bytes = self._get(("body", *key), lambda: build().SerializeToString())
        return body


@dataclass(eq=False)
class EndpointWatch:
    """One EDS resource of a stream: its subscription, its nodes, what the client holds."""

    name: str
    target: Target
    subscription: Subscription
    nodes: NodeSet = field(default_factory=NodeSet)
    task: asyncio.Task[None] | None = None
    sent_version: str = ""
    acked_version: str = ""
    skip_version: str = ""  # a delta client said it holds this version already


@dataclass(frozen=True)
class InFlight:
    """A response sent and not yet acknowledged: its type and the revisions it carried."""

    type_url: str
    versions: tuple[tuple[EndpointWatch, int, str], ...] = ()


class Session:
    """One ADS stream's client, endpoint watches and responses in flight.

    `on_endpoints(watch)` is the protocol's: send the watch's resource (its nodes changed).
    """

    def __init__(
        self,
        parts: XdsParts,
        cache: ResourceCache,
        peer: str,
        protocol: str,
        on_endpoints: Callable[[EndpointWatch], Awaitable[None]],
        caller: Caller = ANYONE,
    ) -> None:
        """`caller`: the stream's token, checked against every resource name it asks for."""
        self.parts = parts
        self.caller = caller
        self.client = resources.Client(parts.datacenter)
        self.protocol = protocol
        self.watches: dict[str, EndpointWatch] = {}
        self.error: Exception | None = None
        self.failed = asyncio.Event()
        self._cache = cache
        self._peer = peer
        self._on_endpoints = on_endpoints
        self._node_seen = False
        self._counters: dict[tuple[str, str], Any] = {}
        self._in_flight: collections.OrderedDict[str, InFlight] = collections.OrderedDict()
        self.write_lock = asyncio.Lock()

    def introduce(self, node: base_pb2.Node) -> None:
        """The client's node, as its first request gives it (later ones may omit it)."""
        if not self._node_seen and node.ByteSize():
            self._node_seen = True
            self.client = resources.client_of(node, self.parts.datacenter)

    # -- resources ----------------------------------------------------------------------------

    def target(self, name: str) -> Target | None:
        """What the name selects; None when it names nothing. PermissionDeniedError (which ends
        the stream, naming the scope) when the stream's token may not read all of it: a
        resource cut to what the token sees would read as nodes gone."""
        target = parse_name(name, self.parts.limits)
        if target is not None:
            try:
                self.caller.require_scope("xds", target.scope)
            except PermissionDeniedError as err:
                raise PermissionDeniedError(f"xDS resource {name!r}: {err}") from None
        return target

    def regrant(self, caller: Caller) -> None:
        """The stream's token as a tokens file read again has it: PermissionDeniedError (which
        ends the stream) unless it still reads every resource watched; later names are checked
        against it."""
        if not caller.grants.has("xds"):
            raise PermissionDeniedError(f"token {caller.name!r} lacks the 'xds' scope")
        for name, watch in self.watches.items():
            try:
                caller.require_scope("xds", watch.target.scope)
            except PermissionDeniedError as err:
                raise PermissionDeniedError(f"xDS resource {name!r}: {err}") from None
        self.caller = caller

    def static_resource(self, type_url: str, name: str) -> any_pb2.Any | None:
        """A Listener or Cluster (they depend on the name and the client only); None when the
        name names nothing, or the type is one this registry does not serve (RDS: routes are
        inline)."""
        if self.target(name) is None:
            return None
        if type_url == resources.LISTENER:
            return self._cache.get((type_url, name), lambda: resources.listener(name))
        if type_url == resources.CLUSTER:
            policy = self.client.lb_policy
            return self._cache.get(
                (type_url, name, policy.value), lambda: resources.cluster(name, policy)
            )
        return None

    def endpoints(self, watch: EndpointWatch) -> any_pb2.Any:
        """The watch's ClusterLoadAssignment at its current version."""
        own, nodes = self.client.datacenter, watch.nodes
        return self._cache.get(
            (resources.ENDPOINTS, watch.name, own, nodes.version),
            lambda: resources.load_assignment(watch.name, nodes.nodes.values(), own),
        )

    def endpoints_body(
        self, protocol: str, watch: EndpointWatch, build: Callable[[any_pb2.Any], Message]
    ) -> bytes:
        """A response carrying the watch's assignment alone, serialized once for every stream
        of the protocol with the same name, client datacenter and version."""
        key = (protocol, watch.name, self.client.datacenter, watch.nodes.version)
        return self._cache.body(key, lambda: build(self.endpoints(watch)))

    # -- endpoint watches ---------------------------------------------------------------------

    async def watch(self, name: str) -> bool:
        """Starts following the EDS resource `name`; False when the name names nothing."""
        if name in self.watches:
            return True
        target = self.target(name)
        if target is None:
            return False
        subscription = await self.parts.reads.watch(
            target.scope, WatchResume(federated=True), peer=self._peer, acknowledging=True
        )
        watch = EndpointWatch(name, target, subscription)
        self.watches[name] = watch
        watch.task = asyncio.create_task(self._pump(watch), name=f"xds-eds {name}")
        return True

    def unwatch(self, name: str) -> None:
        """Stops the endpoint watch of `name` (the client dropped it)."""
        watch = self.watches.pop(name, None)
        if watch is not None:
            self._stop(watch)

    def _stop(self, watch: EndpointWatch) -> None:
        if watch.task is not None:
            watch.task.cancel()
        watch.subscription.close()

    async def _pump(self, watch: EndpointWatch) -> None:
        """Applies the subscription's messages and sends the resource after each change (the
        messages queued meanwhile are applied first: one response for all of them)."""
        subscription = watch.subscription
        try:
            async for message in subscription:
                changed = watch.nodes.apply(message)
                while subscription.backlog and not subscription.resync_pending:
                    changed = watch.nodes.apply(await anext(subscription)) or changed
                if changed and watch.nodes.loaded:
                    await self._on_endpoints(watch)
        except Exception as err:  # shutting down, or a bug: the stream ends with it
            self.fail(err)

    def fail(self, error: Exception) -> None:
        """Ends the stream with `error` (through the error edge: a RegistryError's status,
        else INTERNAL, logged)."""
        self.error = error
        self.failed.set()

    # -- responses and acknowledgements -------------------------------------------------------

    @staticmethod
    def next_nonce() -> str:
        """A nonce unique in this process, for the next response."""
        return str(next(_nonces))

    def sent(self, nonce: str, type_url: str, watches: tuple[EndpointWatch, ...] = ()) -> None:
        """A response went out: what it carried is owed an acknowledgement."""
        now = time.monotonic()
        versions = []
        for watch in watches:
            watch.sent_version = watch.nodes.version
            versions.append((watch, watch.nodes.revision, watch.sent_version))
            watch.subscription.wrote_state(watch.nodes.revision, now)
        self._in_flight[nonce] = InFlight(type_url, tuple(versions))
        if len(self._in_flight) > _IN_FLIGHT_KEPT:
            self._in_flight.popitem(last=False)
        self._count("responses", type_url)

    def answered(self, nonce: str, error_detail: str) -> InFlight | None:
        """The client's answer to the response `nonce`: an ACK (no error) confirms its
        revisions; a NACK is counted and logged, and confirms nothing."""
        in_flight = self._in_flight.pop(nonce, None)
        if in_flight is None:
            return None
        if error_detail:
            self._count("nacks", in_flight.type_url)
            log.warning(
                "xDS client %s rejected a %s response (nonce %s): %s",
                self._peer,
                resources.TYPE_NAMES.get(in_flight.type_url, in_flight.type_url),
                nonce,
                error_detail[:300],
            )
            return in_flight
        self._count("acks", in_flight.type_url)
        for watch, revision, version in in_flight.versions:
            watch.acked_version = version
            if self.watches.get(watch.name) is watch:
                with contextlib.suppress(SubscriptionNotFoundError):
                    self.parts.reads.ack(watch.subscription.id, revision)
        return in_flight

    def _count(self, what: str, type_url: str) -> None:
        counter = self._counters.get((what, type_url))
        if counter is None:
            metrics = self.parts.metrics
            if metrics is None:
                return
            kind = resources.TYPE_NAMES.get(type_url, "other")
            counter = self._counters[(what, type_url)] = metrics.xds_messages.labels(
                self.protocol, kind, what
            )
        counter.inc()

    def close(self) -> None:
        """Stops every endpoint watch of the stream."""
        for watch in self.watches.values():
            self._stop(watch)
        self.watches.clear()
