"""RegistryClient: the async entry point of the SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from noderegistry.v1 import registry_pb2 as pb

from client_sdk import _convert, _validation
from client_sdk._checks import Check
from client_sdk._closing import AsyncClosing
from client_sdk._config import ClientConfig, WatchConfig
from client_sdk._keepalive import KeepAliveSession
from client_sdk._models import Consistency, Node, NodeKey, NodeList, Scope
from client_sdk._registration import Registration, ReregisteredCallback
from client_sdk._transport import Targets, Transport, Transports
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
            order; or one `dns:///name:port` that resolves to all of them. With a registry per
            datacenter (federation), a mapping of datacenter -> its frontends: a registration
            goes to its node's datacenter's registry, everything else to the home datacenter's.
        config: timeouts, TLS, bearer token, retry pacing (the same toward every datacenter).
        home_datacenter: with a mapping, whose frontends serve `get_nodes`, `watch_nodes` and
            registrations of datacenters not in the mapping (default: the mapping's first).

    Use it as `async with RegistryClient("10.0.0.1:50051,10.0.0.2:50051") as client:`; closing
    it deregisters its registrations and ends its watches. Calls fail over to the next target
    when one is unavailable.

    Raises:
        InvalidArgumentError: no target given (for a datacenter), a home datacenter not in the
            mapping, or a TLS file cannot be read.
    """

    def __init__(
        self,
        targets: Targets,
        *,
        config: ClientConfig | None = None,
        home_datacenter: str = "",
    ) -> None:
        self._transports = Transports(targets, config or ClientConfig(), home_datacenter)
        self._transport = self._transports.home
        self._sessions: dict[str, KeepAliveSession] = {}
        self._registrations: set[Registration] = set()
        self._watches: set[NodeWatch] = set()

    @property
    def targets(self) -> list[str]:
        """The home datacenter's frontends (all of them, without a mapping)."""
        return list(self._transport.targets)

    def _session(self, transport: Transport) -> KeepAliveSession:
        """One KeepAlive stream per registry (D12): its datacenter's frontends."""
        session = self._sessions.get(transport.name)
        if session is None:
            session = self._sessions[transport.name] = KeepAliveSession(transport)
        return session

    async def register(
        self,
        node: Node,
        *,
        ttl_seconds: int = 0,
        on_reregistered: ReregisteredCallback | None = None,
        checks: Sequence[Check] = (),
    ) -> Registration:
        """Registers `node` and keeps it registered until `Registration.close()`.

        Args:
            node: the node; `incarnation` and a SUSPECT status are the registry's to set.
            ttl_seconds: the lease TTL to ask for; 0 takes the registry's default.
            on_reregistered: called (sync or async) after the registration was lost and made anew.
            checks: health checks the registry runs against the node (`Check.grpc`,
                `Check.http`, `Check.tcp`); a failing node stays registered but is not
                offered for new work.

        Returns:
            The registration, ACTIVE, renewing in the background until it is closed.

        Raises:
            InvalidArgumentError: a field breaks the registry's rules (the message names it); a
                missing field or a TTL out of range is refused before anything is sent.
            AlreadyExistsError: the node is registered live by another owner.
            ResourceExhaustedError: the frontend refused it as overloaded for longer than
                `ClientConfig.register_overload_wait_seconds` (each refusal is waited out for as
                long as its retry pushback says; `retry_after_seconds` has the last one), or a
                limit of the frontend without a pushback.
            RegistryUnavailableError: no frontend could be reached.
        """
        transport = self._transports.for_datacenter(getattr(node, "datacenter", ""))
        registration = Registration(
            transport,
            self._session(transport),
            node,
            ttl_seconds,
            on_reregistered,
            on_closed=self._registrations.discard,
            checks=checks,
        )
        await registration.start()
        self._registrations.add(registration)
        return registration

    async def deregister(self, key: NodeKey, token: str) -> int:
        """Deregisters a registration by its token, with its datacenter's registry.

        For a registration that `Registration.detach()` left behind, perhaps in another process.

        Args:
            key: the node's key.
            token: the registration token `Registration.detach()` returned.

        Returns:
            The etcd revision of the removal.

        Raises:
            InvalidArgumentError: a key or token that is empty or malformed.
            NodeNotFoundError: no registration of `key` with this token (gone, or not yours).
            RegistryUnavailableError: no frontend could be reached.
        """
        _validation.check_key(key)
        _validation.check_text("token", token)
        request = pb.DeregisterRequest(key=_convert.key_to_pb(key), token=token)
        transport = self._transports.for_datacenter(key.datacenter)
        response = await transport.unary("Deregister", request)
        return int(response.revision)

    async def get_nodes(
        self,
        scope: Scope | None = None,
        *,
        consistency: Consistency = Consistency.LINEARIZABLE,
    ) -> NodeList:
        """Reads the nodes of a scope once, per datacenter, at an etcd revision.

        Args:
            scope: which nodes; default: all (`Scope.healthy_only`: the available ones only).
            consistency: LINEARIZABLE (default) reflects every write completed before the call;
                CACHED answers at once from the frontend's view and says how old it is
                (`NodeList.cache_age_seconds`).

        Returns:
            The list; with followed datacenters (federation), each with its own revision and
            staleness in `NodeList.datacenter_states`.

        Raises:
            InvalidArgumentError: a malformed scope.
            RegistryUnavailableError: no frontend could be reached, or (LINEARIZABLE) the
                frontend cannot reach etcd: read CACHED to get its last known list.
        """
        scope = scope or Scope()
        _validation.check_scope(scope)
        _validation.check_consistency(consistency)
        request = pb.GetNodesRequest(
            scope=_convert.scope_to_pb(scope),
            consistency=_convert.consistency_to_pb(consistency),
            healthy_only=scope.healthy_only,
        )
        return _convert.node_list_from_pb(await self._transport.unary("GetNodes", request))

    async def watch_nodes(
        self, scope: Scope | None = None, *, config: WatchConfig | None = None
    ) -> NodeWatch:
        """Starts a watch of a scope's nodes that keeps a local view current.

        Args:
            scope: which nodes; default: all.
            config: the shrink guard, acknowledgements and silence timeout of the watch.

        Returns:
            The watch, started: its first list has arrived, so `current()` is valid at once.

        Raises:
            InvalidArgumentError: a malformed scope.
            RegistryRPCError: the frontends refused the watch, or none could be reached
                (RegistryUnavailableError).
        """
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
        await asyncio.gather(*(session.close() for session in self._sessions.values()))
        await self._transports.close()
