"""The HTTP admin surface of a frontend (one port): metrics, health, and SOFARegistry-style admin.

    GET  /metrics            Prometheus text format
    GET  /healthz            200 while the process runs
    GET  /readyz             200 when etcd is reachable, the view synced, not stopping; else 503
    GET  /admin/nodes        the node list (JSON); ?datacenter=dc1&type=data, repeatable
    GET  /admin/subscribers  each WatchNodes subscriber: peer, scope, revision sent and acked
    GET  /admin/evictor      eviction as this frontend sees it: leader?, last sweep, evicted
    GET  /admin/push         {"enabled": true|false}
    PUT  /admin/push         {"enabled": false} holds pushes; true resumes (subscribers resync)

Writes need `Authorization: Bearer <admin_token>` when an admin token is configured.
"""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from registry_service.domain import Node, Scope

if TYPE_CHECKING:
    from registry_service.app import Frontend


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


class AdminServer:
    def __init__(self, frontend: Frontend, listen: str, token: str) -> None:
        self._frontend = frontend
        self._host, _, port = listen.rpartition(":")
        self._port = int(port)
        self._token = token
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
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
            ]
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        assert sockets
        self.port = int(sockets[0].getsockname()[1])

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
        body = generate_latest(self._frontend.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(self, request: web.Request) -> web.Response:
        ready, reason = self._frontend.readiness()
        return self._json({"ready": ready, "reason": reason}, 200 if ready else 503)

    async def nodes(self, request: web.Request) -> web.Response:
        scope = Scope(
            frozenset(request.query.getall("datacenter", [])),
            frozenset(request.query.getall("type", [])),
        )
        listing = self._frontend.hub.node_list(scope)
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
        hub = self._frontend.hub
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
        status = self._frontend.evictor.status
        return self._json(
            {
                "frontend": self._frontend.frontend_id,
                "candidate": status.candidate,
                "leader": status.leader,
                "leader_since": status.leader_since or None,
                "last_sweep": status.last_sweep or None,
                "evicted": status.evicted,
                "pending": status.pending,
            }
        )

    async def push(self, request: web.Request) -> web.Response:
        return self._json({"enabled": self._frontend.hub.push_enabled})

    async def set_push(self, request: web.Request) -> web.Response:
        if self._token:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), self._token.encode()):
                return self._json({"error": "admin writes need Authorization: Bearer <token>"}, 401)
        try:
            body = await request.json()
            enabled = body["enabled"]
            if not isinstance(enabled, bool):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return self._json({"error": 'send {"enabled": true} or {"enabled": false}'}, 400)
        self._frontend.hub.set_push(enabled)
        return self._json({"enabled": self._frontend.hub.push_enabled})
