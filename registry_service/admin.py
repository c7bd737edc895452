"""The HTTP admin surface of a frontend (one port): metrics, health, and SOFARegistry-style admin.

    GET  /metrics            Prometheus text format
    GET  /healthz            200 while the process runs
    GET  /readyz             200 when it can serve: the member list loaded and not stopping, even
                             without etcd (then `degraded`: stale lists); else 503. JSON body
    GET  /admin/nodes        the node list (JSON); ?datacenter=dc1&type=data, repeatable
    GET  /admin/subscribers  each WatchNodes subscriber: peer, scope, revision sent and acked
    GET  /admin/evictor      eviction as this frontend sees it: leader?, last sweep, evicted
    GET  /admin/push         {"enabled": true|false}
    PUT  /admin/push         {"enabled": false} holds pushes; true resumes (subscribers resync)
    GET  /admin/suspects     members held as SUSPECT by the eviction budget, with their deadline
    POST /admin/suspects/confirm  {"nodes": [{"datacenter", "type", "id"}]} or {"datacenter": dc}:
                             remove those suspects now (reason EVICTED)
    POST /admin/suspects/cancel   same body: put them back UP for one more TTL
    GET  /admin/audit        ?datacenter=&type=&id=: every recorded transition of the node and
                             its cause ("why did node X leave?")

Writes need `Authorization: Bearer <admin_token>` when an admin token is configured.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from registry_service.bearer_tokens import TokenTable
from registry_service.domain import AuditEntry, Node, NodeKey, NodeList, Registration, Scope
from registry_service.errors import InvalidArgumentError, RegistryError, StoreUnavailableError
from registry_service.evictor import EvictorStatus
from registry_service.http_site import start_site
from registry_service.logs import request_id
from registry_service.self_preservation import BudgetPolicy
from registry_service.watch_hub import Subscription


class WatchControl(Protocol):
    """What the admin surface reads and switches of the watch hub."""

    @property
    def revision(self) -> int: ...

    @property
    def push_enabled(self) -> bool: ...

    @property
    def subscriptions(self) -> list[Subscription]: ...

    def node_list(self, scope: Scope) -> NodeList: ...

    def set_push(self, enabled: bool) -> None: ...


@dataclass(frozen=True)
class Readiness:
    """What `/readyz` answers: ready means "can serve" (200), degraded means "serving stale
    lists, refusing writes" (still 200), not ready is 503 (not loaded yet, shutting down)."""

    ready: bool
    reason: str
    store_connected: bool
    """etcd reachable with a quorum (the watch up and the quorum probe answered)."""
    cache_age_seconds: float
    """Time since the etcd watch last spoke."""

    @property
    def degraded(self) -> bool:
        return self.ready and not self.store_connected

    def as_json(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "degraded": self.degraded,
            "reason": self.reason,
            "store_connected": self.store_connected,
            "cache_age_seconds": self.cache_age_seconds,
        }


class EvictionReport(Protocol):
    """What the admin surface shows of the evictor."""

    @property
    def status(self) -> EvictorStatus: ...

    @property
    def policy(self) -> BudgetPolicy: ...


class SuspectOperations(Protocol):
    """The registry's use cases an operator drives from the admin surface."""

    def suspects(self) -> list[Registration]: ...

    async def settle_suspect(self, key: NodeKey, *, evict: bool) -> int: ...

    async def audit(self, key: NodeKey) -> list[AuditEntry]: ...


@dataclass(frozen=True)
class AdminConfig:
    """Everything the admin surface uses, each part as small as it needs (Consul-style): the
    composition root hands these over and the admin never sees the frontend itself."""

    listen: str
    """`host:port` of the HTTP server; port 0 picks a free one (`AdminServer.port`)."""
    frontend_id: str
    """This frontend's name, as `/admin/evictor` reports it."""
    metrics: CollectorRegistry
    """What `/metrics` serves: the frontend's own Prometheus registry."""
    readiness: Callable[[], Readiness]
    """Whether the frontend can serve, and how well (`/readyz`)."""
    watch: WatchControl
    """Nodes, subscribers and the push switch."""
    eviction: EvictionReport
    """The evictor's state and budget policy."""
    operations: SuspectOperations
    """Suspects (list, confirm, cancel) and the audit trail."""
    admin_token: str = ""
    """A single bearer token for admin writes (setting `admin_token`), besides `tokens`."""
    tokens: TokenTable = field(default_factory=lambda: TokenTable({}))
    """Bearer tokens; one with the `admin` scope may write."""


def node_json(node: Node) -> dict[str, Any]:
    return {
        "datacenter": node.datacenter,
        "type": node.type,
        "id": node.id,
        "address": node.address,
        "status": node.status.value,
        "incarnation": node.incarnation,
        "metadata": dict(node.metadata),
    }


@web.middleware
async def _with_request_id(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every log line of an admin request carries its id (X-Request-Id, or a new one)."""
    request_id.set(request.headers.get("X-Request-Id", "")[:64] or secrets.token_hex(6))
    return await handler(request)


class AdminServer:
    """The admin HTTP server on the event loop of the frontend it reports on."""

    def __init__(self, config: AdminConfig) -> None:
        self._config = config
        self._watch = config.watch
        self._eviction = config.eviction
        self._operations = config.operations
        self._host, _, port = config.listen.rpartition(":")
        self._port = int(port)
        self._token = config.admin_token
        self._tokens = config.tokens
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application(middlewares=[_with_request_id])
        app.add_routes(
            [
                web.get("/metrics", self.metrics),
                web.get("/healthz", self.healthz),
                web.get("/readyz", self.readyz),
                web.get("/admin/nodes", self.nodes),
                web.get("/admin/subscribers", self.subscribers),
                web.get("/admin/evictor", self.evictor),
                web.get("/admin/push", self.push),
                web.put("/admin/push", self.set_push),
                web.get("/admin/suspects", self.suspects),
                web.post("/admin/suspects/confirm", self.confirm_suspects),
                web.post("/admin/suspects/cancel", self.cancel_suspects),
                web.get("/admin/audit", self.audit),
            ]
        )
        self._runner, self.port = await start_site(app, self._host, self._port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    def _json(data: Any, status: int = 200) -> web.Response:
        return web.Response(
            text=json.dumps(data, indent=2, sort_keys=True) + "\n",
            status=status,
            content_type="application/json",
        )

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self._config.metrics)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(self, request: web.Request) -> web.Response:
        readiness = self._config.readiness()
        return self._json(readiness.as_json(), 200 if readiness.ready else 503)

    async def nodes(self, request: web.Request) -> web.Response:
        scope = Scope(
            frozenset(request.query.getall("datacenter", [])),
            frozenset(request.query.getall("type", [])),
        )
        listing = self._watch.node_list(scope)
        return self._json(
            {
                "revision": listing.revision,
                "cache_age_seconds": round(listing.age_seconds, 3),
                "datacenters": {
                    dc.datacenter: [node_json(node) for node in dc.nodes]
                    for dc in listing.datacenters
                },
            }
        )

    async def subscribers(self, request: web.Request) -> web.Response:
        hub = self._watch
        return self._json(
            {
                "revision": hub.revision,
                "push_enabled": hub.push_enabled,
                "subscribers": [
                    {
                        "id": s.id,
                        "peer": s.peer,
                        "scope": {
                            "datacenters": sorted(s.scope.datacenters),
                            "types": sorted(s.scope.types),
                        },
                        "sent_revision": s.sent_revision,
                        "acked_revision": s.acked_revision,
                        "converged": s.acked_revision >= hub.revision,
                        "backlog": s.backlog,
                        "resyncs": s.resyncs,
                    }
                    for s in sorted(hub.subscriptions, key=lambda s: s.id)
                ],
            }
        )

    async def evictor(self, request: web.Request) -> web.Response:
        evictor = self._eviction
        status, policy = evictor.status, evictor.policy
        return self._json(
            {
                "frontend": self._config.frontend_id,
                "candidate": status.candidate,
                "leader": status.leader,
                "leader_since": status.leader_since or None,
                "last_sweep": status.last_sweep or None,
                "dry_run": status.dry_run,
                "held_by_outage": status.held_by_outage,
                "removed": dict(status.removed),
                "suspected": status.suspected,
                "policy": {
                    "ratio": policy.ratio,
                    "minimum": policy.minimum,
                    "window_seconds": policy.window_seconds,
                    "ceiling_seconds": policy.ceiling_seconds,
                },
                "datacenters": {
                    dc: {
                        "members": budget.members,
                        "budget": budget.budget,
                        "spent": budget.spent,
                        "silent": budget.silent,
                        "suspects": budget.suspects,
                        "self_preservation": budget.preserving,
                    }
                    for dc, budget in sorted(status.plan.datacenters.items())
                },
                # What the last sweep decided (in dry-run mode: what it would have done).
                "last_plan": [
                    {"node": decision.key.path, "action": decision.action.value}
                    for decision in status.plan.decisions[:1000]
                ],
            }
        )

    async def suspects(self, request: web.Request) -> web.Response:
        ceiling = self._eviction.policy.ceiling_seconds
        return self._json(
            {
                "suspects": [
                    {
                        **node_json(registration.node),
                        "suspect_since": registration.suspect_since,
                        "removed_at_the_latest": registration.suspect_since + ceiling,
                    }
                    for registration in self._operations.suspects()
                ]
            }
        )

    async def confirm_suspects(self, request: web.Request) -> web.Response:
        return await self._settle(request, evict=True)

    async def cancel_suspects(self, request: web.Request) -> web.Response:
        return await self._settle(request, evict=False)

    async def _settle(self, request: web.Request, *, evict: bool) -> web.Response:
        refused = self._refuse_unauthorized(request)
        if refused is not None:
            return refused
        try:
            body = await request.json()
            if "datacenter" in body:
                keys = [
                    registration.node.key
                    for registration in self._operations.suspects()
                    if registration.node.datacenter == body["datacenter"]
                ]
            else:
                keys = [NodeKey(n["datacenter"], n["type"], n["id"]) for n in body["nodes"]]
        except (ValueError, KeyError, TypeError):
            return self._json(
                {
                    "error": 'send {"nodes": [{"datacenter": ..., "type": ..., "id": ...}]} or '
                    '{"datacenter": ...}'
                },
                400,
            )
        results: dict[str, dict[str, Any]] = {}
        for key in keys:
            try:
                results[key.path] = {
                    "revision": await self._operations.settle_suspect(key, evict=evict)
                }
            except RegistryError as err:
                results[key.path] = {"error": str(err)}
        return self._json({"action": "confirm" if evict else "cancel", "nodes": results})

    async def audit(self, request: web.Request) -> web.Response:
        try:
            key = NodeKey(request.query["datacenter"], request.query["type"], request.query["id"])
            entries = await self._operations.audit(key)
        except KeyError:
            return self._json({"error": "give ?datacenter=...&type=...&id=..."}, 400)
        except InvalidArgumentError as err:
            return self._json({"error": str(err)}, 400)
        except StoreUnavailableError as err:
            return self._json({"error": str(err)}, 503)
        return self._json(
            {
                "node": key.path,
                "entries": [
                    {
                        "revision": entry.revision,
                        "time": entry.time,
                        "cause": entry.cause.value,
                        "incarnation": entry.incarnation,
                        "frontend": entry.frontend,
                        "detail": entry.detail,
                    }
                    for entry in entries
                ],
            }
        )

    async def push(self, request: web.Request) -> web.Response:
        return self._json({"enabled": self._watch.push_enabled})

    def _refuse_unauthorized(self, request: web.Request) -> web.Response | None:
        """Admin writes need the admin token or a token with the admin scope, if either is set."""
        if not self._token and not self._tokens.enabled:
            return None
        header = request.headers.get("Authorization", "")
        given = header.removeprefix("Bearer ").strip()
        if self._token and hmac.compare_digest(given.encode(), self._token.encode()):
            return None
        if self._tokens.allows([("authorization", header)], "admin"):
            return None
        return self._json(
            {"error": "admin writes need Authorization: Bearer <token> (admin scope)"}, 401
        )

    async def set_push(self, request: web.Request) -> web.Response:
        refused = self._refuse_unauthorized(request)
        if refused is not None:
            return refused
        try:
            body = await request.json()
            enabled = body["enabled"]
            if not isinstance(enabled, bool):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return self._json({"error": 'send {"enabled": true} or {"enabled": false}'}, 400)
        self._watch.set_push(enabled)
        return self._json({"enabled": self._watch.push_enabled})
