"""Starting an aiohttp application on an address: the frontend's admin surface, the host's
(supervisor) admin port and the HTTP API port all do (apps built by web/edge.py's new_app)."""

from __future__ import annotations

import ssl
from typing import Any

from aiohttp import web


async def start_site(
    app: web.Application,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None = None,
    *,
    reuse_port: bool = False,
    shutdown_timeout: float = 60.0,
    **server_options: Any,
) -> tuple[web.AppRunner, int]:
    """Serves `app` on host:port (port 0 picks a free one), over TLS with a context, sharing the
    port with the other workers with `reuse_port`; returns its runner and the port.
    `server_options` go to aiohttp's request handler (header size limits, cancelling a handler
    whose client went away)."""
    runner = web.AppRunner(
        app, access_log=None, shutdown_timeout=shutdown_timeout, **server_options
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_port=reuse_port or None)
    await site.start()
    sockets = getattr(site._server, "sockets", None)
    assert sockets
    return runner, int(sockets[0].getsockname()[1])
