"""The one edge of the HTTP surfaces (the admin port and the HTTP API port) and the factory that
builds both applications, so that every route of either runs inside the same middlewares:

- request ids: every log line of a request carries one (its X-Request-Id, or a new one);
- errors: whatever a handler raises becomes an answer once, here. A RegistryError gets the gRPC
  code a gRPC caller would get and that code's HTTP status (rpc/status.py: one table, not a second
  copy), with the error's own message; anything else is logged with its traceback under the
  request id and answered 500 INTERNAL naming only that id; aiohttp's own refusals (no such path,
  a method the path does not answer, a body too large) get the same JSON body:
  `{"error": {"code": "NOT_FOUND", "message": "..."}}`. An error that says when to retry (an
  overloaded frontend, an operator's hold) carries it as `Retry-After` (whole seconds, rounded
  up), as gRPC's `grpc-retry-pushback-ms`;
- access: the HttpAuth middleware (TLS client certificates, bearer tokens and their scopes).
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc
from aiohttp import web

from registry_service.rpc.status import (
    code_of_http_status,
    http_status,
    retry_after_of,
    status_of,
)
from registry_service.telemetry.logs import request_id
from registry_service.web.shapes import error_json

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """Indented, keys sorted: what curl prints is readable as it comes."""
    return web.Response(
        text=json.dumps(data, indent=2, sort_keys=True) + "\n",
        status=status,
        content_type="application/json",
        headers=headers,
    )


BEARER_CHALLENGE = 'Bearer realm="node-registry"'


def error_response(
    code: grpc.StatusCode, message: str, *, challenge: str = BEARER_CHALLENGE
) -> web.Response:
    """The answer for a gRPC code: its HTTP status and the JSON error body. A 401 carries the
    `WWW-Authenticate` challenge RFC 7235 requires (`challenge`: how to authenticate)."""
    headers = {"WWW-Authenticate": challenge} if code is grpc.StatusCode.UNAUTHENTICATED else None
    return json_response(error_json(code, message), http_status(code), headers)


@web.middleware
async def _request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id.set(request.headers.get("X-Request-Id", "")[:64] or secrets.token_hex(6))
    return await handler(request)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        code = code_of_http_status(err.status)
        message = f"{err.reason}: {request.method} {request.path}"
        if err.status == 404:
            message = f"no such path {request.path}"
        return error_response(code, message)
    except Exception as err:  # one edge: RegistryError by the table, anything else INTERNAL
        response = error_response(*status_of(err))
        retry_after = retry_after_of(err)
        if retry_after:
            response.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        return response


HttpObserver = Callable[[str, str, int, float], None]
"""Told of every answered request: (route pattern, method, status, seconds)."""


def _observed(observe: HttpObserver) -> Any:
    """Times every request and counts it by route pattern (never the raw path: one series per
    route, not per node), method and the status it was answered with, refusals included."""

    @web.middleware
    async def observed(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 499  # the client went away before an answer (nginx's convention)
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as err:  # a redirect passes the error edge as it is
            status = err.status
            raise
        finally:
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            observe(route, request.method, status, time.perf_counter() - started)

    return observed


def new_app(
    routes: Iterable[web.AbstractRouteDef],
    access: Any,
    *,
    client_max_size: int = 1024 * 1024,
    observe: HttpObserver | None = None,
) -> web.Application:
    """An application of `routes` inside the edge; `access` is the HttpAuth middleware,
    `observe` (the HTTP API's request metrics) sees every request and its final status."""
    middlewares = [_request_ids, _errors, access]
    if observe is not None:
        middlewares.insert(0, _observed(observe))
    app = web.Application(middlewares=middlewares, client_max_size=client_max_size)
    app.add_routes(routes)
    return app
