"""Who may use the HTTP ports, and who they are (docs/design.md §9, §11): one middleware for the
frontend's admin surface, the supervisor's, and the HTTP API port (/v1/, /ui/).

- The admin port has the gRPC port's TLS, and its mTLS: with a client CA, a request must present
  a certificate that CA signed (verified by the TLS layer; requested, not required, so that the
  kubelet's probes still reach /healthz and /readyz).
- With bearer tokens configured (`auth_tokens_file`, or the single `admin_token`), every request
  needs one with the path's scope: /metrics `metrics` (or `admin:read`), other admin reads
  `admin:read`, writes `admin:write` (`admin`, and the single admin token, mean both); the HTTP
  API's node lists and watch `watch` (as GetNodes and WatchNodes), its audit trail and cluster
  views (/v1/audit/, /v1/cluster/) `admin:read`. No token is 401 "no token", a token the file
  does not hold 401 "unknown token" (both with a WWW-Authenticate header, RFC 6750), a token
  without the scope 403.
- A scope narrowed to datacenters and types (`admin:write:dc1`, token_scopes.py) reaches only
  the handlers marked `@checks_node_scope`, which check it against the node key or the scope
  they serve (`request_caller(request).require(...)`, permissions.py); every other path (a view
  of the whole cluster: subscribers, convergence, the push switch, the operator audit) needs the
  scope on every datacenter and type. A handler that forgets to check is thus refused to narrowed
  tokens, never opened to them.
- With any of these configured, only /healthz and /readyz answer without credentials (probes
  cannot present either), and the console's static files and the API's OpenAPI document, which
  hold no data: a browser loads the console, then the console presents the token.
- The HTTP API port, open to every client, takes the console's operator actions (writes under
  /v1/cluster/) only with credentials, even on a registry that has none configured: a token
  with `admin:write` (so REGISTRY_ADMIN_TOKEN or a tokens file must exist), or mTLS.

The operator's identity (recorded in the audit) is the token's name, else the client
certificate's common name (or its first subject alternative name), else the peer's IP address.
Behind the supervisor (workers), the supervisor checks the caller and forwards its identity in
`X-Noderegistry-Operator`, which a worker trusts on its private loopback port only.
"""

from __future__ import annotations

import hmac
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from aiohttp import web

from registry_service.errors import PermissionDeniedError
from registry_service.security.bearer_tokens import (
    UNKNOWN_TOKEN_MESSAGE,
    Presented,
    TokenTable,
)
from registry_service.security.permissions import ANYONE, Caller
from registry_service.web.edge import BEARER_CHALLENGE, error_response

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/v1/openapi.json", "/", "/ui", "/favicon.ico"})
OPEN_PREFIXES = ("/ui/",)
ADMIN_READ_PREFIXES = ("/v1/audit/", "/v1/cluster/")
OPERATOR_HEADER = "X-Noderegistry-Operator"
_READS = frozenset({"GET", "HEAD"})
_CALLER = web.RequestKey("caller", Caller)
_CHECKS_NODE_SCOPE = "_checks_node_scope"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HandlerT = TypeVar("HandlerT", bound=Callable[..., Any])


def checks_node_scope(handler: HandlerT) -> HandlerT:
    """Marks a handler that checks the caller's scope against the nodes it serves
    (`request_caller(request).require...`): only such handlers take narrowed scopes."""
    setattr(handler, _CHECKS_NODE_SCOPE, True)
    return handler


def request_caller(request: web.Request) -> Caller:
    """Who sent the request, as far as scopes go (set by HttpAuth's middleware; anyone where
    no token is needed)."""
    caller: Caller = request.get(_CALLER, ANYONE)
    return caller


def _checks_node_scope(request: web.Request) -> bool:
    match = request.match_info
    return match.http_exception is not None or bool(
        getattr(match.handler, _CHECKS_NODE_SCOPE, False)
    )


def required_scope(method: str, path: str) -> str | None:
    """The scope a request needs; None for the probes' paths and the static ones."""
    if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
        return None
    if path == "/metrics":
        return "metrics"
    if path.startswith("/v1/") and not path.startswith(ADMIN_READ_PREFIXES):
        return "watch"
    return "admin:read" if method in _READS else "admin:write"


@dataclass(frozen=True)
class HttpAuth:
    """The access rules of an HTTP port: the admin port's, the host's, the HTTP API's (see the
    module docstring)."""

    tokens: TokenTable
    admin_token: str = ""
    client_certificates: bool = False
    """mTLS: requests (but the probes') must present a verified client certificate."""
    trust_forwarded: bool = False
    """A worker behind its supervisor: take the operator's identity from OPERATOR_HEADER."""
    anonymous_writes: bool = True
    """Whether a write may come without credentials when none are configured (the admin port,
    as before). The HTTP API port, open to every client, says False: the console's operator
    actions there always need a token with admin:write, or a client certificate (mTLS)."""

    @property
    def tokens_required(self) -> bool:
        """Whether a request must present a token (a tokens file or `admin_token` is set)."""
        return self.tokens.enabled or bool(self.admin_token)

    def identify(self, request: web.Request) -> str:
        """The operator's identity: the token's name, the certificate's, or the address."""
        if self.trust_forwarded and request.headers.get(OPERATOR_HEADER):
            return request.headers[OPERATOR_HEADER][:200]
        header = request.headers.get("Authorization", "")
        principal = self.tokens.identify([("authorization", header)])
        if principal is not None:
            return f"token:{principal.name}"
        if self.admin_token and self._is_admin_token(header):
            return "token:admin_token"
        common_name = _certificate_name(request)
        if common_name:
            return f"cert:{common_name}"
        return f"ip:{request.remote or 'unknown'}"

    def forwarded_headers(
        self, request: web.Request, names: Iterable[str] = ("Authorization",)
    ) -> dict[str, str]:
        """What another admin port gets of a caller checked here (a peer frontend's, for the
        cluster-wide views; a worker's, behind its supervisor): its token, the other headers
        `names` lists, as they came, and its identity (OPERATOR_HEADER, which only a worker
        trusts, from its supervisor)."""
        headers = {name: request.headers[name] for name in names if name in request.headers}
        headers[OPERATOR_HEADER] = self.identify(request)
        return headers

    def _is_admin_token(self, header: str) -> bool:
        given = header.removeprefix("Bearer ").strip()
        return bool(given) and hmac.compare_digest(given.encode(), self.admin_token.encode())

    def refusal(self, request: web.Request) -> web.Response | None:
        """None when the request may go on; else the answer (401 or 403, JSON, one line)."""
        scope = required_scope(request.method, request.path)
        if scope is None:
            return None
        if self.client_certificates and not self.trust_forwarded and not _certificate(request):
            return error_response(
                grpc.StatusCode.UNAUTHENTICATED,
                "this port requires a client certificate (mTLS) beyond /healthz and /readyz",
            )
        if not self.tokens_required:
            if scope == "admin:write" and not (self.anonymous_writes or self.client_certificates):
                return error_response(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{request.method} {request.path} is an operator's action: on this port it "
                    "needs a token with the 'admin:write' scope, and this registry has none: set "
                    "REGISTRY_ADMIN_TOKEN (or REGISTRY_AUTH_TOKENS_FILE), or act on the admin port",
                )
            return None
        header = request.headers.get("Authorization", "")
        if self.admin_token and self._is_admin_token(header):
            return None
        principal = self.tokens.authenticate([("authorization", header)])
        if principal is Presented.NO_TOKEN:
            return error_response(
                grpc.StatusCode.UNAUTHENTICATED,
                f"no token: {request.path} needs Authorization: Bearer <token> (a token with "
                f"the {scope!r} scope, or the admin token)",
            )
        if isinstance(principal, Presented):
            return error_response(
                grpc.StatusCode.UNAUTHENTICATED,
                UNKNOWN_TOKEN_MESSAGE,
                challenge=(
                    f'{BEARER_CHALLENGE}, error="invalid_token", error_description="unknown token"'
                ),
            )
        if not principal.may(scope):
            return error_response(
                grpc.StatusCode.PERMISSION_DENIED,
                f"token {principal.name!r} lacks the {scope!r} scope this needs",
            )
        caller = Caller(principal.name, principal.grants)
        if not _checks_node_scope(request):
            try:
                caller.require_everywhere(scope)
            except PermissionDeniedError as err:
                return error_response(grpc.StatusCode.PERMISSION_DENIED, str(err))
        request[_CALLER] = caller
        return None

    def middleware(self) -> Any:
        """An aiohttp middleware that refuses what `refusal` refuses (handlers that record who
        acted call `identify`)."""

        @web.middleware
        async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
            refused = self.refusal(request)
            if refused is not None:
                return refused
            return await handler(request)

        return check


def _certificate(request: web.Request) -> Mapping[str, Any] | None:
    transport = request.transport
    if transport is None:
        return None
    peer: Mapping[str, Any] | None = transport.get_extra_info("peercert")
    return peer or None


def _certificate_name(request: web.Request) -> str:
    """The client certificate's common name, else its first subject alternative name."""
    certificate = _certificate(request)
    if not certificate:
        return ""
    for attributes in certificate.get("subject", ()):
        for name, value in attributes:
            if name == "commonName":
                return str(value)
    for _, value in certificate.get("subjectAltName", ()):
        return str(value)
    return ""


def server_context(cert_file: str, key_file: str, client_ca_file: str) -> ssl.SSLContext | None:
    """TLS for the admin port, from the gRPC port's files; None without a certificate. With a
    client CA, client certificates are verified when presented (the middleware requires one
    beyond the probes' paths)."""
    if not cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    if client_ca_file:
        context.load_verify_locations(client_ca_file)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


class ServerTls:
    """The TLS of the HTTP ports (admin, host admin, HTTP API), replaceable while they serve: the
    servers are built with `context`, whose server-name callback (which OpenSSL calls at every
    handshake, with or without SNI) hands the handshake the current context, so the next client
    gets a replaced certificate, key or client CA; connections already open keep theirs."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self._current = context
        context.sni_callback = self._pick

    def _pick(self, connection: Any, server_name: str | None, context: ssl.SSLContext) -> None:
        if self._current is not context:
            connection.context = self._current

    def replace(self, context: ssl.SSLContext) -> None:
        """The next handshake uses `context` (built by server_context from the new files)."""
        self._current = context

    @classmethod
    def of(cls, cert_file: str, key_file: str, client_ca_file: str) -> ServerTls | None:
        """The replaceable TLS of the given files; None when no certificate is configured
        (plaintext)."""
        context = server_context(cert_file, key_file, client_ca_file)
        return cls(context) if context is not None else None


def client_context(ca_file: str, cert_file: str, key_file: str) -> ssl.SSLContext:
    """TLS towards other frontends' admin ports: their certificates checked against `ca_file`
    (the system's CAs when empty), this frontend's own certificate presented (their mTLS)."""
    context = ssl.create_default_context(cafile=ca_file or None)
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context
