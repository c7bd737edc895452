"""The admin routes that act for the whole cluster (docs/design.md §9):

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
    POST /admin/suspects/confirm       {"nodes": [{"datacenter", "type", "id"}]} or
                                       {"datacenter": dc}: remove those suspects now (EVICTED)
    POST /admin/suspects/cancel        same body: put them back UP for one more TTL

The HTTP API port mounts the same handlers under /v1/cluster/ for the web console (web/api.py),
with its own access rules: a write there always needs credentials (web/auth.py).

Every write is audited with the operator's identity (web/auth.py). The node routes take a token
narrowed to the node's datacenter and type (`admin:write:dc1/data`); the others need the plain
scope (they act on, or show, the whole cluster). Registry errors become HTTP
statuses in one place (web/edge.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import grpc
from aiohttp import web

from registry_service.control import parse_held_scope, parse_network
from registry_service.core.operations import OVERRIDES, PushChange
from registry_service.domain import NodeKey
from registry_service.errors import InvalidArgumentError, RegistryError
from registry_service.hub.operator_state import OperatorView
from registry_service.web.admin_config import AdminConfig
from registry_service.web.auth import checks_node_scope, request_caller
from registry_service.web.edge import error_response, json_response
from registry_service.web.peers import PeerAdmins
from registry_service.web.shapes import (
    convergence_json,
    frontends_json,
    node_action_json,
    push_json,
    settled_json,
    stored_node_json,
)


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
    return convergence_json(revision, frontend_id, answer, time.time())


class ControlRoutes:
    """The cluster-wide operator routes (this module's docstring lists them) on the admin port."""

    def __init__(self, config: AdminConfig) -> None:
        self._config = config
        self._watch = config.watch
        self._operator_state = config.operator_state
        self._operations = config.operations

    def routes(self) -> list[web.RouteDef]:
        """The routes, for the admin server's application."""
        return [
            web.get("/admin/frontends", self.frontends),
            web.get("/admin/push", self.push),
            web.put("/admin/push", self.set_push),
            web.get("/admin/convergence", self.convergence),
            web.get("/admin/nodes/{datacenter}/{type}/{id}", self.node),
            web.post("/admin/nodes/{datacenter}/{type}/{id}/{action}", self.act_on_node),
            web.post("/admin/suspects/confirm", self.confirm_suspects),
            web.post("/admin/suspects/cancel", self.cancel_suspects),
        ]

    async def frontends(self, request: web.Request) -> web.Response:
        """GET /admin/frontends: every frontend announced in etcd."""
        return json_response(
            frontends_json(self._config.frontend_id, self._operator_state.frontends.values())
        )

    async def push(self, request: web.Request) -> web.Response:
        """GET /admin/push: the push switch as this frontend applies it."""
        return json_response(
            {**push_json(self._operator_state.push_switch), "frontend": self._config.frontend_id}
        )

    async def set_push(self, request: web.Request) -> web.Response:
        """PUT /admin/push: stores the changed switch in etcd (audited)."""
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
        headers = self._config.auth.forwarded_headers(request)
        config = self._config
        return json_response(
            await cluster_convergence(
                self._operator_state, config.peers, config.frontend_id, revision, headers
            )
        )

    def _key(self, request: web.Request) -> NodeKey:
        info = request.match_info
        return NodeKey(info["datacenter"], info["type"], info["id"])

    @checks_node_scope
    async def node(self, request: web.Request) -> web.Response:
        """GET /admin/nodes/{dc}/{type}/{id}: the node's record as etcd has it."""
        key = self._key(request)
        request_caller(request).require("admin:read", key)
        return json_response(stored_node_json(key, await self._operations.stored_node(key)))

    @checks_node_scope
    async def act_on_node(self, request: web.Request) -> web.Response:
        """POST /admin/nodes/{dc}/{type}/{id}/{action}: an operator's action on one node."""
        key, action = self._key(request), request.match_info["action"]
        request_caller(request).require("admin:write", key)
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
        return json_response(node_action_json(key, action, done, operator))

    @checks_node_scope
    async def confirm_suspects(self, request: web.Request) -> web.Response:
        """POST /admin/suspects/confirm: removes those suspects now (reason EVICTED)."""
        return await self._settle(request, evict=True)

    @checks_node_scope
    async def cancel_suspects(self, request: web.Request) -> web.Response:
        """POST /admin/suspects/cancel: puts those suspects back UP for one more TTL."""
        return await self._settle(request, evict=False)

    async def _settle(self, request: web.Request, *, evict: bool) -> web.Response:
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
            raise InvalidArgumentError(
                'send {"nodes": [{"datacenter": ..., "type": ..., "id": ...}]} or '
                '{"datacenter": ...}'
            ) from None
        caller = request_caller(request)
        for key in keys:  # all or nothing: a key the token may not act on refuses the request
            caller.require("admin:write", key)
        outcomes: dict[str, int | str] = {}
        for key in keys:
            try:
                outcomes[key.path] = await self._operations.settle_suspect(
                    key, evict=evict, operator=self._config.auth.identify(request)
                )
            except RegistryError as err:
                outcomes[key.path] = str(err)
        return json_response(settled_json(evict, outcomes))
