"""Starting an aiohttp application on an address: the frontend's admin surface and the host's
(supervisor) admin port both do."""

from __future__ import annotations

import ssl

from aiohttp import web


async def start_site(
    app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, int]:
    """Serves `app` on host:port (port 0 picks a free one), over TLS with a context; returns
    its runner and the port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    sockets = getattr(site._server, "sockets", None)
    assert sockets
    return runner, int(sockets[0].getsockname()[1])
