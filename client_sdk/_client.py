"""RegistryClient: the async entry point of the SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from noderegistry.v1 import registry_pb2 as pb

from client_sdk import _convert, _validation
from client_sdk._closing import AsyncClosing
from client_sdk._config import ClientConfig, WatchConfig
from client_sdk._keepalive import KeepAliveSession
from client_sdk._models import Consistency, Node, NodeKey, NodeList, Scope
from client_sdk._registration import Registration, ReregisteredCallback
from client_sdk._transport import Transport
from client_sdk._watch import NodeWatch

# Which SDK method wraps each RPC of noderegistry.v1.Registry (a test keeps this complete; a test
# aid, not public API).
RPC_COVERAGE = {
    "Register": "RegistryClient.register",
    "KeepAlive": "Registration (renews in the background)",
    "Deregister": "Registration.close, RegistryClient.deregister (a detached registration)",
    "GetNodes": "RegistryClient.get_nodes",
    "WatchNodes": "RegistryClient.watch_nodes",
    "AckWatch": "NodeWatch (confirms applied revisions; WatchConfig.ack_interval_seconds)",
}


class RegistryClient(AsyncClosing):
    """A connection to the registry, with failover across its frontends.

    Args:
        targets: one or more frontend addresses (`host:port`, comma-separated or a list), tried in
            order; or one `dns:///name:port` that resolves to all of them.
        config: timeouts, TLS, bearer token, retry pacing.

    Use it as `async with RegistryClient("10.0.0.1:50051,10.0.0.2:50051") as client:`; closing
    it deregisters its registrations and ends its watches.

    Raises:
        InvalidArgumentError: no target given, or a TLS file cannot be read.
    """

    def __init__(self, targets: str | Sequence[str], *, config: ClientConfig | None = None) -> None:
        self._transport = Transport(targets, config or ClientConfig())
        self._session = KeepAliveSession(self._transport)
        self._registrations: set[Registration] = set()
        self._watches: set[NodeWatch] = set()

    @property
    def targets(self) -> list[str]:
        return list(self._transport.targets)

    async def register(
        self,
        node: Node,
        *,
        ttl_seconds: int = 0,
        on_reregistered: ReregisteredCallback | None = None,
    ) -> Registration:
        """Registers `node` and keeps it registered until `Registration.close()`.

        Args:
            node: the node; `incarnation` and a SUSPECT status are the registry's to set.
            ttl_seconds: the lease TTL to ask for; 0 takes the registry's default.
            on_reregistered: called (sync or async) after the registration was lost and made anew.

        Raises:
            InvalidArgumentError: a field breaks the registry's rules (the message names it); a
                missing field or a TTL out of range is refused before anything is sent.
            AlreadyExistsError: the node is registered live by another owner.
            RegistryUnavailableError: no frontend could be reached.
        """
        registration = Registration(
            self._transport,
            self._session,
            node,
            ttl_seconds,
            on_reregistered,
            on_closed=self._registrations.discard,
        )
        await registration.start()
        self._registrations.add(registration)
        return registration

    async def deregister(self, key: NodeKey, token: str) -> int:
        """Deregisters a registration by its token (one `Registration.detach()` returned, maybe
        in another process); returns the etcd revision of the removal.

        Raises:
            NodeNotFoundError: no registration of `key` with this token (gone, or not yours).
        """
        _validation.check_key(key)
        _validation.check_text("token", token)
        request = pb.DeregisterRequest(key=_convert.key_to_pb(key), token=token)
        response = await self._transport.unary("Deregister", request)
        return int(response.revision)

    async def get_nodes(
        self,
        scope: Scope | None = None,
        *,
        consistency: Consistency = Consistency.LINEARIZABLE,
    ) -> NodeList:
        """The nodes of a scope (default: all), per datacenter, at an etcd revision."""
        scope = scope or Scope()
        _validation.check_scope(scope)
        _validation.check_consistency(consistency)
        request = pb.GetNodesRequest(
            scope=_convert.scope_to_pb(scope),
            consistency=_convert.consistency_to_pb(consistency),
        )
        return _convert.node_list_from_pb(await self._transport.unary("GetNodes", request))

    async def watch_nodes(
        self, scope: Scope | None = None, *, config: WatchConfig | None = None
    ) -> NodeWatch:
        """A NodeWatch of a scope (default: all), started: `current()` is valid on return."""
        scope = scope or Scope()
        _validation.check_scope(scope)
        watch = NodeWatch(
            self._transport, scope, config or WatchConfig(), on_closed=self._watches.discard
        )
        await watch.start()
        self._watches.add(watch)
        return watch

    async def close(self) -> None:
        """Deregisters every open registration, ends every watch, closes the connections."""
        await asyncio.gather(*(r.close() for r in self._registrations), return_exceptions=True)
        await asyncio.gather(*(w.close() for w in self._watches), return_exceptions=True)
        self._registrations.clear()
        self._watches.clear()
        await self._session.close()
        await self._transport.close()
