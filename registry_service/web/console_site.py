"""The web console's routes on the HTTP API port (D51): its static files, read once from the
package (web/console/: one page, no build step), and the redirects to it.

    GET /, /ui         302 to /ui/
    GET /ui/, /ui/{f}  index.html, console.css, favicon.svg and the scripts (console.js: the
                       watch and the node list; nodes_view.js: filters, pages and painting;
                       operator.js: the operator's panels and actions); anything else 404
    GET /favicon.ico   301 to /ui/favicon.svg

The files are served with a Content-Security-Policy that allows the console's own files only
(nothing from outside, nothing inline). They hold no data: web/auth.py leaves them open, and the
page presents the user's token on the API's routes.
"""

from __future__ import annotations

import importlib.resources

from aiohttp import web

_FILES = {
    "index.html": "text/html",
    "console.css": "text/css",
    "console.js": "text/javascript",
    "nodes_view.js": "text/javascript",
    "operator.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class ConsoleRoutes:
    """The console's files, read when built (a missing file fails at start, not per request)."""

    def __init__(self) -> None:
        folder = importlib.resources.files("registry_service.web").joinpath("console")
        self._files = {name: folder.joinpath(name).read_bytes() for name in _FILES}

    def routes(self) -> list[web.RouteDef]:
        """The console's routes, for the HTTP API's application."""
        return [
            web.get("/", self.to_console),
            web.get("/favicon.ico", self.favicon),
            web.get("/ui", self.to_console),
            web.get("/ui/", self.console),
            web.get("/ui/{name}", self.console),
        ]

    async def to_console(self, request: web.Request) -> web.Response:
        """GET / and /ui: 302 to /ui/."""
        raise web.HTTPFound("/ui/")

    async def console(self, request: web.Request) -> web.Response:
        """GET /ui/{name}: one of the console's files; any other name is 404."""
        name = request.match_info.get("name") or "index.html"
        kind = _FILES.get(name)
        if kind is None:
            raise web.HTTPNotFound()
        return web.Response(
            body=self._files[name], content_type=kind, charset="utf-8", headers=_HEADERS
        )

    async def favicon(self, request: web.Request) -> web.Response:
        """GET /favicon.ico: 301 to the console's icon."""
        raise web.HTTPMovedPermanently("/ui/favicon.svg")
