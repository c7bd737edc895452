"""The HTTP admin surface of a frontend (one port): metrics, health, and the operator's admin.

    GET  /metrics            Prometheus text format
    GET  /healthz            200 while the process runs
    GET  /readyz             200 when it can serve: the member list loaded and not stopping, even
                             without etcd (then `degraded`: stale lists); else 503. JSON body
    GET  /admin/nodes        the node list (JSON); ?datacenter=dc1&type=data, repeatable
    GET  /admin/subscribers  this frontend's WatchNodes subscribers: peer, scope, revision sent
                             and acknowledged, converged (to ?revision=R, default the latest)
    GET  /admin/evictor      eviction as this frontend sees it: leader?, last sweep, budgets
    GET  /admin/suspects     members held as SUSPECT by the eviction budget, with their deadline
    GET  /admin/audit        ?datacenter=&type=&id=: every recorded transition of the node and
                             its cause ("why did node X leave?"); without a node: every operator
                             action and who did it
    and the cluster-wide operator routes of web/admin_control.py (frontends, the push switch,
    convergence, actions on live nodes and on suspects).

Access (TLS, mTLS, bearer tokens with admin scopes) is web/auth.py's middleware. A scope narrowed
to datacenters and types (`admin:read:dc2`, `admin:write:dc1/data`) serves the routes about
nodes (the node list of its scope, a node's audit, settling its suspects, and the node routes
of web/admin_control.py), checked against each node; the views of the whole cluster need the
plain scope.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from registry_service.domain import NodeKey, Scope
from registry_service.errors import InvalidArgumentError
from registry_service.web.admin_config import AdminConfig
from registry_service.web.admin_control import ControlRoutes
from registry_service.web.auth import checks_node_scope, request_caller
from registry_service.web.edge import json_response, new_app
from registry_service.web.shapes import (
    admin_nodes_json,
    audit_json,
    evictor_json,
    operator_audit_json,
    readiness_json,
    subscribers_json,
    suspects_json,
)
from registry_service.web.site import start_site


class AdminServer:
    """The admin HTTP server on the event loop of the frontend it reports on."""

    def __init__(self, config: AdminConfig) -> None:
        self._config = config
        self._watch = config.watch
        self._eviction = config.eviction
        self._operations = config.operations
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        """Binds the admin port and serves its routes behind the access middleware."""
        app = new_app(
            [
                web.get("/metrics", self.metrics),
                web.get("/healthz", self.healthz),
                web.get("/readyz", self.readyz),
                web.get("/admin/nodes", self.nodes),
                web.get("/admin/subscribers", self.subscribers),
                web.get("/admin/evictor", self.evictor),
                web.get("/admin/suspects", self.suspects),
                web.get("/admin/audit", self.audit),
                *ControlRoutes(self._config).routes(),
            ],
            self._config.auth.middleware(),
        )
        listener = self._config.listener
        self._runner, self.port = await start_site(
            app,
            listener.host,
            listener.port,
            self._config.ssl_context,
            limits=self._config.http_limits,
        )

    async def stop(self) -> None:
        """Closes the port and its open connections."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def metrics(self, request: web.Request) -> web.Response:
        """GET /metrics: the frontend's registry in Prometheus' text format."""
        body = generate_latest(self._config.metrics)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: web.Request) -> web.Response:
        """GET /healthz: 200 for as long as the process answers at all."""
        return web.Response(text="ok\n")

    async def readyz(self, request: web.Request) -> web.Response:
        """GET /readyz: 200 while the frontend can serve (maybe degraded), else 503."""
        readiness = self._config.readiness()
        return json_response(readiness_json(readiness), 200 if readiness.ready else 503)

    @checks_node_scope
    async def nodes(self, request: web.Request) -> web.Response:
        """GET /admin/nodes: the node list of the caller's scope, as this frontend holds it."""
        scope = Scope(
            frozenset(request.query.getall("datacenter", [])),
            frozenset(request.query.getall("type", [])),
        )
        request_caller(request).require_scope("admin:read", scope)
        return json_response(admin_nodes_json(self._watch.node_list(scope)))

    async def subscribers(self, request: web.Request) -> web.Response:
        """This frontend's subscribers, `converged` to ?revision=R (default: its latest)."""
        hub = self._watch
        try:
            revision = int(request.query.get("revision") or hub.revision)
        except ValueError:
            raise InvalidArgumentError("revision must be a whole number") from None
        return json_response(
            subscribers_json(
                self._config.frontend_id,
                revision,
                self._config.operator_state.push_enabled,
                hub.subscriptions,
            )
        )

    async def evictor(self, request: web.Request) -> web.Response:
        """GET /admin/evictor: leadership, last sweep and budgets as this frontend sees them."""
        evictor = self._eviction
        return json_response(evictor_json(self._config.frontend_id, evictor.status, evictor.policy))

    async def suspects(self, request: web.Request) -> web.Response:
        """GET /admin/suspects: the members held as SUSPECT, with their deadlines."""
        ceiling = self._eviction.policy.ceiling_seconds
        return json_response(suspects_json(self._operations.suspects(), ceiling))

    @checks_node_scope
    async def audit(self, request: web.Request) -> web.Response:
        """A node's transitions (?datacenter=&type=&id=), or without a node every operator
        action (a view of the whole cluster: admin:read on every datacenter and type)."""
        query = request.query
        caller = request_caller(request)
        if not any(name in query for name in ("datacenter", "type", "id")):
            caller.require_everywhere("admin:read")
            return json_response(operator_audit_json(await self._operations.operator_audit()))
        try:
            key = NodeKey(query["datacenter"], query["type"], query["id"])
        except KeyError:
            raise InvalidArgumentError("give ?datacenter=...&type=...&id=... (all three)") from None
        caller.require("admin:read", key)
        return json_response(audit_json(key, await self._operations.audit(key)))
