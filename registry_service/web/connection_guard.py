"""What one client may hold on an HTTP port, enforced where the bytes arrive (issue 22, item 3).

aiohttp bounds a header line (`max_line_size`, `max_field_size`), the number of headers
(`max_headers`, 128) and, with `keepalive_timeout`, how long a connection may wait for its next
request. It has no bound on the time a request's head may take to arrive, on the total size of
a head, nor on the connections of one peer; so 201 connections sending a byte a second were all
held, and 100 headers of 8,000 bytes were accepted (an open event stream keeps its request, and so
its headers, for as long as it runs). This module adds those bounds in aiohttp's own protocol
object, a subclass of its RequestHandler made by a subclass of its Server:

- a connection must deliver a request's line and headers within `header_timeout_seconds` of
  opening, or of the first byte of that request after the previous answer: else 408 and closed;
- an idle kept-alive connection is closed after `idle_timeout_seconds` (aiohttp's
  keepalive_timeout);
- a request's line and headers together hold at most `max_header_bytes` (one of them at most
  `max_header_line_bytes`, aiohttp's own line limits), counted as they arrive
  (so a slow head is refused before it is complete) and again on the parsed request (a head that
  came in one read): else 431 and closed;
- a peer (an IP address) holds at most `max_connections_per_peer` connections at once: one more
  is answered 429 and closed before anything is read from it. Over TLS the count starts once
  the handshake is done (asyncio bounds a handshake at 60 s).

Every refusal, aiohttp's own included (a malformed request line, a header line over the limit),
answers the JSON error body of web/edge.py and logs one WARNING line naming the peer and the
rule, never a header's value (aiohttp logged a traceback at ERROR that quoted the offending
header: a token's prefix, for Authorization).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler, _ErrInfo

from registry_service.web.shapes import error_json

log = logging.getLogger(__name__)

_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
}


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What one client may hold on an HTTP port (the `http_*` settings)."""

    header_timeout_seconds: float = 10.0
    """A request's line and headers must arrive within this (`http_header_timeout_seconds`)."""
    idle_timeout_seconds: float = 60.0
    """An idle kept-alive connection is closed after this (`http_idle_timeout_seconds`)."""
    max_connections_per_peer: int = 256
    """Connections one IP address may hold open at once (`http_max_connections_per_peer`)."""
    max_header_bytes: int = 16 * 1024
    """A request's line and headers together (`http_max_header_bytes`)."""
    max_header_line_bytes: int = 8 * 1024
    """One header, or the request line (`max_metadata_bytes`, as for gRPC metadata)."""

    def handler_options(self) -> dict[str, Any]:
        """aiohttp's own limits, from these."""
        return {
            "keepalive_timeout": self.idle_timeout_seconds,
            "max_line_size": self.max_header_line_bytes,
            "max_field_size": self.max_header_line_bytes,
        }


def refusal_bytes(status: int, code: grpc.StatusCode, message: str) -> bytes:
    """A whole HTTP/1.1 answer with the JSON error body, closing the connection: what is written
    when no request object exists (before or instead of aiohttp's parsing)."""
    body = (json.dumps(error_json(code, message), indent=2, sort_keys=True) + "\n").encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def _peer_of(transport: asyncio.BaseTransport | None) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    return str(peer[0]) if peer else "unknown"


class GuardedServer(web.Server):
    """aiohttp's Server, making GuardedRequestHandlers and counting connections per peer."""

    def __init__(
        self,
        handler: Any,
        *,
        request_factory: Any,
        handler_cancellation: bool,
        limits: HttpLimits,
        **handler_options: Any,
    ) -> None:
        """`handler_options` go to each RequestHandler (aiohttp's keyword arguments)."""
        super().__init__(
            handler,
            request_factory=request_factory,
            handler_cancellation=handler_cancellation,
            **handler_options,
        )
        self.limits = limits
        self._handler_options = handler_options
        self.peers: collections.Counter[str] = collections.Counter()

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(
            self, loop=asyncio.get_running_loop(), limits=self.limits, **self._handler_options
        )


class GuardedRequestHandler(RequestHandler):
    """aiohttp's protocol object with the bounds of the module docstring."""

    def __init__(self, manager: GuardedServer, *, limits: HttpLimits, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._limits = limits
        self._server = manager
        self._peer = ""
        self._counted = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._peer = _peer_of(transport)
        peers = self._server.peers
        if peers[self._peer] >= self._limits.max_connections_per_peer:
            self._refuse_raw(
                transport,
                429,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{peers[self._peer]} connections from {self._peer} are open, the limit "
                f"(http_max_connections_per_peer); close one or reuse it",
                "too many connections from the peer",
            )
            return
        peers[self._peer] += 1
        self._counted = True
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_head_timer()
        if not self._counted:
            return  # refused in connection_made: aiohttp never saw it
        self._counted = False
        peers = self._server.peers
        peers[self._peer] -= 1
        if peers[self._peer] <= 0:
            del peers[self._peer]
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        reading_head = self._current_request is None and not self._messages
        if reading_head and self._head_timer is None:
            self._start_head_timer()  # the first byte of a request after an answer
        before = self._request_count
        if reading_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._request_count > before:  # a head is complete
            self._stop_head_timer()
            self._head_bytes = 0
            self._check_parsed_heads()
        elif reading_head and self._head_bytes > self._limits.max_header_bytes:
            self._refuse_head_too_large()

    # -- the head's time and size -------------------------------------------------------------

    def _start_head_timer(self) -> None:
        self._head_bytes = 0
        self._head_timer = asyncio.get_running_loop().call_later(
            self._limits.header_timeout_seconds, self._head_timed_out
        )

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._current_request is not None or self._messages or self.transport is None:
            return
        self._refuse_raw(
            self.transport,
            408,
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"the request's line and headers did not arrive within "
            f"{self._limits.header_timeout_seconds:g}s (http_header_timeout_seconds)",
            "request headers too slow",
        )
        self.force_close()

    def _refuse_head_too_large(self) -> None:
        if self.transport is None:
            return
        self._refuse_raw(
            self.transport,
            431,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            self._too_large_message(),
            "request headers too large",
        )
        self.force_close()

    def _too_large_message(self) -> str:
        return (
            f"the request's line and headers exceed {self._limits.max_header_bytes} bytes "
            f"(http_max_header_bytes)"
        )

    def _check_parsed_heads(self) -> None:
        """A head that arrived in one read is measured once parsed; one over the limit becomes
        aiohttp's own error entry, answered by handle_error below."""
        for index, (message, payload) in enumerate(self._messages):
            if isinstance(message, _ErrInfo):
                continue
            size = len(message.method) + len(message.path) + 12
            size += sum(len(name) + len(value) + 4 for name, value in message.raw_headers)
            if size > self._limits.max_header_bytes:
                too_large = _HeadersTooLarge(message=self._too_large_message())
                self._messages[index] = (_ErrInfo(431, too_large, too_large.message), payload)

    # -- refusals -----------------------------------------------------------------------------

    def _refuse_raw(
        self,
        transport: asyncio.BaseTransport,
        status: int,
        code: grpc.StatusCode,
        message: str,
        rule: str,
    ) -> None:
        log.warning(
            "http: refused a connection from %s: %s (%d)", _peer_of(transport), rule, status
        )
        if isinstance(transport, asyncio.WriteTransport):
            transport.write(refusal_bytes(status, code, message))
        transport.close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's refusal of a request it could not parse, as the JSON error and one log
        line without the request's contents (anything else: aiohttp's own handling)."""
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        if isinstance(exc, LineTooLong | _HeadersTooLarge):
            status, code = 431, grpc.StatusCode.RESOURCE_EXHAUSTED
            text = (
                exc.message
                if isinstance(exc, _HeadersTooLarge)
                else f"a header (or the request line) exceeds "
                f"{self._limits.max_header_line_bytes} bytes (max_metadata_bytes)"
            )
        else:
            status, code = 400, grpc.StatusCode.INVALID_ARGUMENT
            text = f"malformed HTTP request ({type(exc).__name__})"
        log.warning("http: refused a request from %s: %s (%d)", self._peer, text, status)
        body = json.dumps(error_json(code, text), indent=2, sort_keys=True) + "\n"
        response = web.Response(status=status, text=body, content_type="application/json")
        response.force_close()
        return response


class _HeadersTooLarge(HttpProcessingError):
    code = 431
