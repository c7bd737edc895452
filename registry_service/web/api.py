"""The HTTP API and the web console, on a port of their own (`http_listen`; docs/design.md §11):

    GET /v1/nodes?datacenter=&type=&consistency=linearizable|cached
                                   GetNodes as JSON; `index` (the revision of the scope's last
                                   change) in the body and in X-Registry-Index, the list's revision
                                   in X-Registry-Revision. With `&index=R&wait=30s` a blocking read:
                                   it answers once the scope changed after R, or when the wait
                                   (at most `http_max_wait_seconds`) ends, unchanged, with index R
    GET /v1/nodes/{dc}/{type}/{id}  one member (404 when it is none)
    GET /v1/watch?datacenter=&type=  WatchNodes as Server-Sent Events (web/sse.py)
    GET /v1/audit/{dc}/{type}/{id}  the node's recorded transitions       (scope admin:read)
    GET /v1/cluster/suspects        self-preservation: suspects, and per datacenter whether the
                                   eviction budget holds members back      (scope admin:read)
    GET /v1/cluster/convergence     every frontend's subscribers against ?revision=R
                                                                           (scope admin:read)
    GET /v1/cluster/frontends, GET|PUT /v1/cluster/push, GET /v1/cluster/nodes/{dc}/{type}/{id},
    POST /v1/cluster/nodes/{dc}/{type}/{id}/{action}, POST /v1/cluster/suspects/confirm|cancel
                                   the admin port's operator routes (web/admin_control.py), for
                                   the console (reads admin:read; writes admin:write, always)
    GET /v1/openapi.json            the OpenAPI 3 document of all this
    GET /ui/                        the console (web/console_site.py: one page, no build step)
    GET /healthz, /readyz           as on the admin port

While the frontend's event loop lags, node reads and new event streams are refused as GetNodes
and WatchNodes are on the gRPC port (renewals first, D72): 429 `RESOURCE_EXHAUSTED` with
`Retry-After`.

Node reads need the `watch` scope (GetNodes and WatchNodes need it on the gRPC port), on every
datacenter and type they ask for (a narrowed token is refused a wider read, never cut); the rest
is web/auth.py's rules, the same middleware as the admin port's. This module parses and renders;
the blocking read's wait is the read use case's (core/reads.py). Blocking reads follow Consul's:
the index is the revision of the scope's last change, so a client loops `index = answer.index`
and wakes only for its own scope; an index above the scope's (another cluster's, or a typo)
waits out the wait and answers the real one: a client resets when the index goes backwards.
With followed datacenters (federation) in the scope, the index is a vector, `812,dc2=455`: each
followed datacenter's part in its own registry's revisions; the read wakes when any part moves.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from registry_service.core.reads import ScopeIndex
from registry_service.domain import NodeKey, NodeList, Scope
from registry_service.errors import NodeNotFoundError
from registry_service.validation import validate_key
from registry_service.web.api_config import ApiConfig
from registry_service.web.auth import checks_node_scope, request_caller
from registry_service.web.console_site import ConsoleRoutes
from registry_service.web.edge import json_response, new_app
from registry_service.web.openapi import openapi_document
from registry_service.web.query import (
    accept_only,
    node_query,
    nodes_query,
    revision_of,
)
from registry_service.web.shapes import (
    audit_json,
    member_json,
    node_list_json,
    readiness_json,
    self_preservation_json,
)
from registry_service.web.site import start_site
from registry_service.web.sse import WatchStreams


class ApiServer:
    """The HTTP API port of one frontend (or one worker: the workers share the port)."""

    def __init__(self, config: ApiConfig) -> None:
        self._config = config
        self._feed = config.feed
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._console = ConsoleRoutes()
        self._openapi = openapi_document()
        self._watch_streams = WatchStreams(
            config.reads, config.auth, config.streams, config.admission
        )
        self.port = 0

    @property
    def event_streams(self) -> int:
        """Open /v1/watch streams now."""
        return self._watch_streams.open

    @property
    def waiting(self) -> int:
        """Blocking reads waiting for a change now (counted where they wait, core/reads.py)."""
        return self._config.reads.waiting

    def routes(self) -> list[web.RouteDef]:
        """Every route of the port: the API, the event streams, the operator's routes, the probes
        and the console."""
        streams = self._watch_streams
        return [
            web.get("/v1/nodes", self.nodes),
            web.get("/v1/nodes/{datacenter}/{type}/{id}", self.node),
            web.get("/v1/watch", streams.watch),
            web.get("/v1/audit/{datacenter}/{type}/{id}", self.audit),
            web.get("/v1/cluster/suspects", self.suspects),
            web.get("/v1/cluster/convergence", self.convergence),
            *self._operator_routes(),
            web.get("/v1/openapi.json", self.openapi),
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            *self._console.routes(),
        ]

    def _operator_routes(self) -> list[web.RouteDef]:
        """The admin port's own handlers, under /v1/cluster/: the console acts through the
        same code, and audits the same way, as `noderegistry admin` (writes: admin:write)."""
        control = self._config.control
        if control is None:
            return []
        node = "/v1/cluster/nodes/{datacenter}/{type}/{id}"
        return [
            web.get("/v1/cluster/frontends", control.frontends),
            web.get("/v1/cluster/push", control.push),
            web.put("/v1/cluster/push", control.set_push),
            web.get(node, control.node),
            web.post(node + "/{action}", control.act_on_node),
            web.post("/v1/cluster/suspects/confirm", control.confirm_suspects),
            web.post("/v1/cluster/suspects/cancel", control.cancel_suspects),
        ]

    async def start(self, *, reuse_port: bool = False) -> None:
        """Binds the port (shared by the workers with `reuse_port`) and serves the routes."""
        config = self._config
        app = new_app(
            self.routes(),
            config.auth.middleware(),
            client_max_size=config.max_request_bytes,
            observe=config.observe,
        )
        self._runner, self.port = await start_site(
            app,
            config.listener.host,
            config.listener.port,
            config.ssl_context,
            reuse_port=reuse_port,
            shutdown_timeout=config.shutdown_grace_seconds,
            limits=config.http_limits,
            # Every route only reads: a client that goes away ends its handler (and its wait).
            handler_cancellation=True,
        )

    async def stop(self) -> None:
        """Blocking reads answer at once (the client asks another frontend next), then the
        port closes within the shutdown grace. Event streams were ended by the hub."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- nodes --------------------------------------------------------------------------------

    def _admit(self) -> None:
        if self._config.admission is not None:
            self._config.admission.read("GetNodes")

    @checks_node_scope
    async def nodes(self, request: web.Request) -> web.Response:
        """GET /v1/nodes: GetNodes as JSON, or a blocking read when an index is given."""
        query = nodes_query(request.query, self._config.max_wait_seconds)
        request_caller(request).require_scope("watch", query.scope, self._config.limits)
        self._admit()
        reads = self._config.reads
        if query.index or query.remote_index:  # a blocking read: the wait is core/reads.py's
            listing = await reads.get_nodes_blocking(
                query.scope,
                query.consistency,
                ScopeIndex(query.index, query.remote_index),
                query.wait_seconds,
                interrupt=self._closing,
            )
        else:
            listing = await reads.get_nodes(query.scope, query.consistency)
        return self._list_response(query.scope, listing)

    def _list_response(self, scope: Scope, listing: NodeList) -> web.Response:
        index = _index_json(self._config.reads.scope_index(scope))
        return json_response(
            {"index": index, **node_list_json(listing)},
            headers={
                "X-Registry-Index": str(index),
                "X-Registry-Revision": str(listing.revision),
            },
        )

    @checks_node_scope
    async def node(self, request: web.Request) -> web.Response:
        """GET /v1/nodes/{dc}/{type}/{id}: one member; 404 naming where to ask why it left."""
        consistency = node_query(request.query)
        key = validate_key(_key(request), self._config.limits)
        request_caller(request).require("watch", key)
        self._admit()
        listing = await self._config.reads.get_nodes(
            Scope(frozenset({key.datacenter}), frozenset({key.type})), consistency
        )
        for datacenter in listing.datacenters:
            for node in datacenter.nodes:
                if node.id == key.id:
                    return json_response(
                        member_json(listing, node),
                        headers={"X-Registry-Revision": str(listing.revision)},
                    )
        raise NodeNotFoundError(
            f"node {key} is not a member (never registered, deregistered or removed); why it "
            f"left: /v1/audit/{key.path}"
        )

    # -- operator reads -----------------------------------------------------------------------

    @checks_node_scope
    async def audit(self, request: web.Request) -> web.Response:
        """GET /v1/audit/{dc}/{type}/{id}: the node's recorded transitions."""
        accept_only(request.query, ())
        key = _key(request)
        request_caller(request).require("admin:read", key, self._config.limits)
        return json_response(audit_json(key, await self._config.operator.audit(key)))

    async def suspects(self, request: web.Request) -> web.Response:
        """Self-preservation as every frontend sees it: a datacenter whose eviction budget holds
        silent members back (as SUSPECT) is in self-preservation (the alarm)."""
        accept_only(request.query, ())
        return json_response(
            self_preservation_json(
                self._config.operator.suspects(),
                self._feed.view.datacenter_sizes(),
                self._config.suspect_ceiling_seconds,
            )
        )

    async def convergence(self, request: web.Request) -> web.Response:
        """GET /v1/cluster/convergence: every frontend's subscribers against ?revision=R."""
        accept_only(request.query, ("revision",))
        revision = revision_of(request.query.get("revision"), "revision")
        revision = revision or self._feed.view.revision
        headers = self._config.auth.forwarded_headers(request)
        return json_response(await self._config.convergence(revision, headers))

    # -- documents, probes --------------------------------------------------------------------

    async def openapi(self, request: web.Request) -> web.Response:
        """GET /v1/openapi.json: the OpenAPI document, built once."""
        return json_response(self._openapi)

    async def healthz(self, request: web.Request) -> web.Response:
        """GET /healthz: 200 for as long as the process answers at all."""
        return web.Response(text="ok\n")

    async def readyz(self, request: web.Request) -> web.Response:
        """GET /readyz: as on the admin port, for a load balancer in front of this one."""
        readiness = self._config.readiness()
        return json_response(readiness_json(readiness), 200 if readiness.ready else 503)


def _index_json(index: ScopeIndex) -> int | str:
    """The index as the API writes it: the local revision, and with followed datacenters in the
    scope each one's beside it in its registry's revisions (`812,dc2=455`)."""
    if not index.remotes:
        return index.revision
    return f"{index.revision}" + "".join(f",{name}={rev}" for name, rev in index.remotes.items())


def _key(request: web.Request) -> NodeKey:
    info = request.match_info
    return NodeKey(info["datacenter"], info["type"], info["id"])
