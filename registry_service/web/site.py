"""Starting an aiohttp application on an address: the frontend's admin surface, the host's
(supervisor) admin port and the HTTP API port all do (apps built by web/edge.py's new_app), each
inside the per-connection bounds of web/connection_guard.py."""

from __future__ import annotations

import ssl
from typing import Any

from aiohttp import web

from registry_service.web.connection_guard import GuardedServer, HttpLimits


class _GuardedRunner(web.AppRunner):
    """aiohttp's AppRunner, serving through a GuardedServer."""

    def __init__(
        self,
        app: web.Application,
        limits: HttpLimits,
        handler_options: dict[str, Any],
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self._limits = limits
        self._handler_options = handler_options

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # the application's startup, as aiohttp runs it
        return GuardedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            limits=self._limits,
            **self._handler_options,
        )


async def start_site(
    app: web.Application,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None = None,
    *,
    reuse_port: bool = False,
    shutdown_timeout: float = 60.0,
    limits: HttpLimits | None = None,
    handler_cancellation: bool = False,
) -> tuple[web.AppRunner, int]:
    """Serves `app` on host:port (port 0 picks a free one), over TLS with a context, sharing the
    port with the other workers with `reuse_port`; returns its runner and the port. `limits`
    bound what one client may hold (web/connection_guard.py); `handler_cancellation` cancels a
    handler whose client went away."""
    limits = limits or HttpLimits()
    runner = _GuardedRunner(
        app,
        limits,
        {"access_log": None, **limits.handler_options()},
        access_log=None,
        shutdown_timeout=shutdown_timeout,
        handler_cancellation=handler_cancellation,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_port=reuse_port or None)
    await site.start()
    sockets = getattr(site._server, "sockets", None)
    assert sockets
    return runner, int(sockets[0].getsockname()[1])
