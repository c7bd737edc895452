"""The console's routes (web/console_site.py): its own files with a policy that allows nothing
else, redirects to /ui/, and 404 for any other name (the page itself runs in Chromium in
tests/integration/test_console.py)."""

from __future__ import annotations

import re

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from registry_service.web.console_site import ConsoleRoutes


async def test_the_console_files_come_with_a_policy_that_allows_only_themselves():
    app = web.Application()
    app.add_routes(ConsoleRoutes().routes())
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        for path, kind in (("/ui/", "text/html"), ("/ui/console.js", "text/javascript")):
            response = await client.get(path)
            assert (response.status, response.content_type) == (200, kind)
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
            assert response.headers["X-Content-Type-Options"] == "nosniff"
        for path, status, target in (
            ("/", 302, "/ui/"),
            ("/ui", 302, "/ui/"),
            ("/favicon.ico", 301, "/ui/favicon.svg"),
        ):
            response = await client.get(path, allow_redirects=False)
            assert (response.status, response.headers["Location"]) == (status, target)
        assert (await client.get("/ui/secrets.txt")).status == 404


async def test_every_file_the_page_loads_is_served_under_its_policy():
    # The page's own list of scripts, stylesheet and icon: a file it names that is not served
    # leaves the console without that part (its operator panels, its list) and no error shown.
    app = web.Application()
    app.add_routes(ConsoleRoutes().routes())
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        page = await (await client.get("/ui/")).text()
        named = re.findall(r'(?:src|href)="(/ui/[^"]+)"', page)
        assert {"/ui/console.js", "/ui/nodes_view.js", "/ui/operator.js"} <= set(named)
        for path in named:
            response = await client.get(path)
            assert response.status == 200, path
            assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
            policy = response.headers["Content-Security-Policy"]
            assert "script-src 'self';" in policy and "'unsafe-inline'" not in policy
