"""The admin routes that act for the whole cluster (DESIGN.md §9):

    GET  /admin/frontends              every announced frontend (frontends/ in etcd)
    GET  /admin/push                   the push switch as this frontend applies it
    PUT  /admin/push                   {"enabled": bool, "gray": {"scopes": ["dc1/data", ...],
                                       "networks": ["10.1.0.0/16", ...]}}, each part optional:
                                       stored in etcd, followed by every frontend and worker
    GET  /admin/convergence            ?revision=R (default: this frontend's latest): every
                                       subscriber of every frontend, whether it acknowledged R
                                       and since when it owes it; frontends that did not answer
    GET  /admin/nodes/{dc}/{type}/{id} one node: its record (override, status) as etcd has it
    POST /admin/nodes/{dc}/{type}/{id}/{action}
                                       maintenance | drain | clear | evict | unhold; body
                                       {"reason": "...", "hold_seconds": N (evict)}

Every write is audited with the operator's identity (web/auth.py). Registry errors become HTTP
statuses in one place (web/edge.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import grpc
from aiohttp import web

from registry_service.control import PushSwitch, parse_held_scope, parse_network
from registry_service.core.operations import OVERRIDES, PushChange, describe_switch
from registry_service.domain import NodeKey
from registry_service.errors import InvalidArgumentError
from registry_service.hub.operator_state import OperatorView
from registry_service.web.admin_config import AdminConfig, node_json
from registry_service.web.auth import OPERATOR_HEADER
from registry_service.web.edge import error_response, json_response
from registry_service.web.peers import PeerAdmins

_FORWARDED = ("Authorization",)


def push_json(switch: PushSwitch) -> dict[str, Any]:
    return {
        "enabled": switch.enabled,
        "gray": {
            "scopes": [str(scope) for scope in switch.held_scopes],
            "networks": list(switch.held_networks),
        },
        "changed_by": switch.changed_by or None,
        "changed_at": switch.changed_at or None,
        "summary": describe_switch(switch),
    }


def push_change(body: Any) -> PushChange:
    """A PUT /admin/push body as a change (InvalidArgumentError: what is wrong with it)."""
    if not isinstance(body, dict) or not body or set(body) - {"enabled", "gray"}:
        raise InvalidArgumentError(
            'send {"enabled": true|false} and/or {"gray": {"scopes": ["dc1/data"], '
            '"networks": ["10.1.0.0/16"]}}'
        )
    enabled = body.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise InvalidArgumentError('"enabled" must be true or false')
    gray = body.get("gray")
    if gray is None:
        return PushChange(enabled=enabled)
    if not isinstance(gray, dict) or set(gray) - {"scopes", "networks"}:
        raise InvalidArgumentError('"gray" takes "scopes" and "networks" (lists)')
    scopes = tuple(
        parse_held_scope(s if isinstance(s, str) else f"{s['datacenter']}/{s['type']}")
        for s in gray.get("scopes") or []
    )
    networks = tuple(parse_network(str(n)) for n in gray.get("networks") or [])
    return PushChange(enabled=enabled, held_scopes=scopes, held_networks=networks)


def forwarded_headers(request: web.Request, operator: str) -> dict[str, str]:
    """What another frontend's admin port gets of a caller: its token and its identity."""
    headers = {h: request.headers[h] for h in _FORWARDED if h in request.headers}
    headers[OPERATOR_HEADER] = operator
    return headers


async def cluster_convergence(
    operator_state: OperatorView,
    peers: PeerAdmins,
    frontend_id: str,
    revision: int,
    headers: Mapping[str, str],
) -> dict[str, Any]:
    """Every announced frontend's subscribers against `revision`, merged (`headers` carry the
    caller's token and identity to the other frontends' admin ports)."""
    answer = await peers.subscribers(
        operator_state.frontends.values(), f"revision={revision}", headers
    )
    now = time.time()
    pending = [s for s in answer.subscribers if not s.get("converged")]
    return {
        "revision": revision,
        "asked_by": frontend_id,
        "frontends": sorted(answer.answered),
        "unreachable": answer.unreachable,
        "subscribers": answer.subscribers,
        "not_converged": len(pending),
        "oldest_pending_seconds": round(
            max(
                (now - s["pending_since"] for s in pending if s.get("pending_since")),
                default=0.0,
            ),
            3,
        ),
    }


class ControlRoutes:
    def __init__(self, config: AdminConfig) -> None:
        self._config = config
        self._watch = config.watch
        self._operator_state = config.operator_state
        self._operations = config.operations

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/admin/frontends", self.frontends),
            web.get("/admin/push", self.push),
            web.put("/admin/push", self.set_push),
            web.get("/admin/convergence", self.convergence),
            web.get("/admin/nodes/{datacenter}/{type}/{id}", self.node),
            web.post("/admin/nodes/{datacenter}/{type}/{id}/{action}", self.act_on_node),
        ]

    async def frontends(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "frontend": self._config.frontend_id,
                "frontends": [
                    {
                        "id": a.id,
                        "self": a.id == self._config.frontend_id,
                        "host": a.host,
                        "pid": a.pid,
                        "worker": f"{a.worker_index}/{a.worker_count}",
                        "grpc_address": a.grpc_address,
                        "admin_url": a.admin_url,
                        "version": a.version,
                        "started_at": a.started_at,
                        "subscribers": a.subscribers,
                    }
                    for a in sorted(self._operator_state.frontends.values(), key=lambda a: a.id)
                ],
            }
        )

    async def push(self, request: web.Request) -> web.Response:
        return json_response(
            {**push_json(self._operator_state.push_switch), "frontend": self._config.frontend_id}
        )

    async def set_push(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        switch, revision = await self._operations.set_push_switch(
            push_change(body), self._config.auth.identify(request)
        )
        return json_response({**push_json(switch), "revision": revision})

    async def convergence(self, request: web.Request) -> web.Response:
        """Every announced frontend's subscribers against revision R, merged."""
        try:
            revision = int(request.query.get("revision") or self._watch.revision)
        except ValueError:
            raise InvalidArgumentError("revision must be a whole number") from None
        headers = forwarded_headers(request, self._config.auth.identify(request))
        config = self._config
        return json_response(
            await cluster_convergence(
                self._operator_state, config.peers, config.frontend_id, revision, headers
            )
        )

    def _key(self, request: web.Request) -> NodeKey:
        info = request.match_info
        return NodeKey(info["datacenter"], info["type"], info["id"])

    async def node(self, request: web.Request) -> web.Response:
        key = self._key(request)
        stored = await self._operations.stored_node(key)
        registration = stored.registration
        identity = stored.identity
        override = registration.override if registration else None
        return json_response(
            {
                "node": key.path,
                "member": node_json(registration.node) if registration else None,
                "live": stored.live,
                "override": {
                    "status": override.status.value,
                    "owner_status": override.owner_status.value,
                    "by": override.by,
                    "at": override.at,
                }
                if override
                else None,
                "held_until": identity.hold_until if identity and identity.hold_until else None,
                "held_by": identity.held_by if identity and identity.hold_until else None,
                "revision": stored.revision,
            }
        )

    async def act_on_node(self, request: web.Request) -> web.Response:
        key, action = self._key(request), request.match_info["action"]
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise InvalidArgumentError('send a JSON object: {"reason": "...", "hold_seconds": N}')
        reason = str(body.get("reason", ""))[:500]
        operator = self._config.auth.identify(request)
        if action in OVERRIDES:
            done = await self._operations.set_override(key, OVERRIDES[action], operator, reason)
        elif action == "evict":
            hold = body.get("hold_seconds", 0)
            if isinstance(hold, bool) or not isinstance(hold, int | float):
                raise InvalidArgumentError('"hold_seconds" must be a number of seconds')
            done = await self._operations.evict(key, operator, hold_seconds=hold, reason=reason)
        elif action == "unhold":
            done = await self._operations.lift_hold(key, operator)
        else:
            return error_response(
                grpc.StatusCode.NOT_FOUND,
                f"no action {action!r}: maintenance, drain, clear, evict or unhold",
            )
        return json_response(
            {
                "node": key.path,
                "action": action,
                "revision": done.revision,
                "status": done.status.value if done.status else None,
                "operator": operator,
            }
        )
