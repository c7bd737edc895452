"""The two ADS protocols over one Session: state of the world, and incremental (delta).

State of the world (`StreamAggregatedResources`): a request names every resource of its type the
client wants. Listener and Cluster responses carry every one of them that exists (one missing is
one that does not exist, as the spec reads a full-state type); an endpoints response carries the
resource that changed. Incremental (`DeltaAggregatedResources`): the client subscribes and
unsubscribes names; a name that names nothing is answered in `removed_resources` (does not
exist); a resource the client says it holds at our version is not sent again.

In both, a request that answers a response's nonce is that response's ACK, or its NACK when it
carries `error_detail` (Session.answered). Requests are taken in order; the names a request
gives are the client's latest wish whatever nonce it carries. Listeners and clusters depend on
the name and the client alone: their version is `1`. Types other than the four of a gRPC
client's chain are ignored; routes (RDS) are inline in the listener, so every route name is one
that does not exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from envoy.service.discovery.v3 import discovery_pb2

from registry_service.security.permissions import ANYONE, Caller
from registry_service.xds import resources
from registry_service.xds.session import EndpointWatch, ResourceCache, Session, XdsParts

STATIC_VERSION = "1"
_STATIC_TYPES = (resources.LISTENER, resources.CLUSTER, resources.ROUTE)

Write = Callable[[Any], Awaitable[None]]


def _nonce_field(kind: Any, nonce: str) -> bytes:
    """The nonce field of a response of `kind`, serialized: appended to a shared body."""
    encoded: bytes = kind(nonce=nonce).SerializeToString()
    return encoded


def _error_of(request: Any) -> str:
    if not request.HasField("error_detail"):
        return ""
    return str(request.error_detail.message) or f"code {request.error_detail.code}"


class StateOfTheWorld:
    """One StreamAggregatedResources stream."""

    def __init__(
        self,
        parts: XdsParts,
        cache: ResourceCache,
        peer: str,
        write: Write,
        caller: Caller = ANYONE,
    ) -> None:
        self.session = Session(parts, cache, peer, "sotw", self._send_endpoints, caller)
        self._write = write
        self._subscribed: dict[str, tuple[str, ...]] = {}

    async def handle(self, request: discovery_pb2.DiscoveryRequest) -> None:
        session = self.session
        session.introduce(request.node)
        if request.response_nonce:
            session.answered(request.response_nonce, _error_of(request))
        type_url = request.type_url
        names = tuple(sorted(set(request.resource_names)))
        if self._subscribed.get(type_url) == names:
            return  # an ACK or NACK, or the same wish again
        self._subscribed[type_url] = names
        if type_url == resources.ENDPOINTS:
            for name in [n for n in session.watches if n not in names]:
                session.unwatch(name)
            for name in names:  # each sent by its pump once its snapshot is in
                await session.watch(name)
        elif type_url in _STATIC_TYPES:
            await self._send_static(type_url, names)

    async def _send_static(self, type_url: str, names: tuple[str, ...]) -> None:
        found = [
            resource
            for name in names
            if (resource := self.session.static_resource(type_url, name)) is not None
        ]
        nonce = self.session.next_nonce()
        response = discovery_pb2.DiscoveryResponse(
            version_info=STATIC_VERSION, resources=found, type_url=type_url, nonce=nonce
        )
        async with self.session.write_lock:
            self.session.sent(nonce, type_url)
            await self._write(response)

    async def _send_endpoints(self, watch: EndpointWatch) -> None:
        session = self.session
        version = watch.nodes.version
        body = session.endpoints_body(
            "sotw",
            watch,
            lambda assignment: discovery_pb2.DiscoveryResponse(
                version_info=version, resources=[assignment], type_url=resources.ENDPOINTS
            ),
        )
        async with session.write_lock:
            nonce = session.next_nonce()
            session.sent(nonce, resources.ENDPOINTS, (watch,))
            await self._write(body + _nonce_field(discovery_pb2.DiscoveryResponse, nonce))


class Incremental:
    """One DeltaAggregatedResources stream."""

    def __init__(
        self,
        parts: XdsParts,
        cache: ResourceCache,
        peer: str,
        write: Write,
        caller: Caller = ANYONE,
    ) -> None:
        self.session = Session(parts, cache, peer, "delta", self._send_endpoints, caller)
        self._write = write

    async def handle(self, request: discovery_pb2.DeltaDiscoveryRequest) -> None:
        session = self.session
        session.introduce(request.node)
        if request.response_nonce:
            session.answered(request.response_nonce, _error_of(request))
        type_url = request.type_url
        held = dict(request.initial_resource_versions)
        subscribe = [name for name in request.resource_names_subscribe if name != "*"]
        if type_url == resources.ENDPOINTS:
            for name in request.resource_names_unsubscribe:
                session.unwatch(name)
            unknown = []
            for name in subscribe:
                if name in session.watches:
                    continue
                if not await session.watch(name):
                    unknown.append(name)
                elif name in held:
                    session.watches[name].skip_version = held[name]
            if unknown:
                await self._send(type_url, [], unknown)
        elif type_url in _STATIC_TYPES:
            found, unknown = [], []
            for name in subscribe:
                resource = session.static_resource(type_url, name)
                if resource is None:
                    unknown.append(name)
                elif held.get(name) != STATIC_VERSION:
                    found.append(
                        discovery_pb2.Resource(name=name, version=STATIC_VERSION, resource=resource)
                    )
            if found or unknown:
                await self._send(type_url, found, unknown)

    async def _send(
        self,
        type_url: str,
        found: list[discovery_pb2.Resource],
        removed: list[str],
        watches: tuple[EndpointWatch, ...] = (),
        version: str = STATIC_VERSION,
    ) -> None:
        session = self.session
        async with session.write_lock:
            nonce = session.next_nonce()
            response = discovery_pb2.DeltaDiscoveryResponse(
                system_version_info=version,
                resources=found,
                type_url=type_url,
                removed_resources=removed,
                nonce=nonce,
            )
            session.sent(nonce, type_url, watches)
            await self._write(response)

    async def _send_endpoints(self, watch: EndpointWatch) -> None:
        session = self.session
        version = watch.nodes.version
        if watch.skip_version:
            skip, watch.skip_version = watch.skip_version, ""
            if skip == version:
                return  # the client said it holds this version already
        body = session.endpoints_body(
            "delta",
            watch,
            lambda assignment: discovery_pb2.DeltaDiscoveryResponse(
                system_version_info=version,
                resources=[
                    discovery_pb2.Resource(name=watch.name, version=version, resource=assignment)
                ],
                type_url=resources.ENDPOINTS,
            ),
        )
        async with session.write_lock:
            nonce = session.next_nonce()
            session.sent(nonce, resources.ENDPOINTS, (watch,))
            await self._write(body + _nonce_field(discovery_pb2.DeltaDiscoveryResponse, nonce))
