"""The web console (/ui/) in a real headless Chromium: it loads, shows the nodes with their
statuses as text, follows registrations, departures and an operator's status without a reload,
shows a node's audit trail on click, and on a secured registry sends the token in a header only,
shows the nodes with a `watch` token and the operator's panels (the self-preservation alarm,
suspects) only with `admin:read`."""

from __future__ import annotations

import pytest
from noderegistry.v1 import registry_pb2 as pb
from playwright.async_api import Request, expect

from registry_service.domain import NodeKey, NodeStatus
from tests.support.api import key_of, node, register
from tests.support.browser import chromium_page
from tests.support.http_api import ONE_EVICTION_BUDGET, api_url
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
LIVE = 15_000  # ms: a change reaches the page in well under this


def card(page, path: str):
    return page.locator(f'[data-node="{path}"]')


async def test_the_console_shows_the_nodes_and_follows_every_change_without_a_reload(
    start_frontend, connect, tmp_path
):
    frontend = await start_frontend()
    stub = connect(frontend)
    first = await register(stub, node("first", "data", "dc1"), ttl=600)
    await register(stub, node("meta-1", "meta", "dc2"), ttl=600)
    async with chromium_page() as page:
        # 1. It loads and shows what is registered: status as text, and the address.
        await page.goto(f"{api_url(frontend)}/ui/")
        await expect(page.locator("#connection")).to_have_text("live", timeout=LIVE)
        await expect(card(page, "dc1/data/first")).to_contain_text("UP", timeout=LIVE)
        await expect(card(page, "dc1/data/first")).to_contain_text("first.example:7000")
        await expect(card(page, "dc2/meta/meta-1")).to_be_visible()
        await expect(page.locator("tr[data-datacenter]")).to_have_count(2)
        await page.evaluate("window.sameDocument = true")  # gone if the page reloads

        # 2. A node registered after the page opened appears; one that leaves disappears.
        await register(stub, node("later", "data", "dc1"), ttl=600)
        await expect(card(page, "dc1/data/later")).to_contain_text("UP", timeout=LIVE)
        await stub.Deregister(pb.DeregisterRequest(key=key_of(first.node), token=first.token))
        await expect(card(page, "dc1/data/first")).to_have_count(0, timeout=LIVE)

        # 3. An operator's maintenance shows as its status text (never colour alone).
        await frontend.operations.set_override(
            NodeKey("dc2", "meta", "meta-1"), NodeStatus.OUT_OF_SERVICE, "token:ops", "disk"
        )
        meta = card(page, "dc2/meta/meta-1")
        await expect(meta).to_have_attribute("data-status", "OUT_OF_SERVICE", timeout=LIVE)
        await expect(meta.locator(".status")).to_have_text("■ OUT_OF_SERVICE")

        # 4. A click shows the node's audit trail.
        await meta.click()
        audit = page.locator("#audit")
        await expect(audit).to_contain_text("dc2/meta/meta-1", timeout=LIVE)
        await expect(audit).to_contain_text("OPERATOR_OUT_OF_SERVICE")
        await expect(audit).to_contain_text("token:ops")

        # 5. Subscribers: this page's own event stream is one of them.
        await expect(page.locator("#convergence")).to_contain_text("1 subscriber", timeout=LIVE)
        assert await page.evaluate("window.sameDocument") is True
        await page.screenshot(path=str(tmp_path / "console.png"), full_page=True)


TOKENS = "viewer watch viewer-1\nauditor watch,admin:read auditor-2\nfleet register fleet-3\n"
FLEET = (("authorization", "Bearer fleet-3"),)


async def register_as_fleet(stub, message: pb.Node, ttl: int) -> None:
    await stub.Register(pb.RegisterRequest(node=message, ttl_seconds=ttl), metadata=FLEET)


async def test_on_a_secured_registry_the_token_goes_in_a_header_and_scopes_show_the_panels(
    start_frontend, connect, tmp_path
):
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKENS)
    frontend = await start_frontend(auth_tokens_file=str(tokens), **ONE_EVICTION_BUDGET)
    stub = connect(frontend)
    await register_as_fleet(stub, node("steady", "data"), ttl=600)
    async with chromium_page() as page:
        requests: list[Request] = []
        page.on("request", lambda request: requests.append(request))
        # 1. Without a token: refused, and it says what to do.
        await page.goto(f"{api_url(frontend)}/ui/")
        await expect(page.locator("#connection")).to_contain_text(
            "enter a token with the watch scope", timeout=LIVE
        )
        # 2. A `watch` token: the nodes; the operator's panels say they need admin:read.
        await page.fill("#token", "viewer-1")
        await page.click("#token-form button[type=submit]")
        await expect(card(page, "dc1/data/steady")).to_contain_text("UP", timeout=LIVE)
        await expect(page.locator("#suspects")).to_contain_text(
            "Needs a token with the admin:read scope", timeout=LIVE
        )
        # 3. Nodes stop renewing beyond the eviction budget: with an admin:read token the
        # console raises the alarm and lists the suspects.
        for index in range(3):
            await register_as_fleet(stub, node(f"silent{index}", "data"), ttl=3)
        await eventually(
            lambda: len(frontend.operations.suspects()) == 2, timeout=20, message="2 suspects"
        )
        await page.fill("#token", "auditor-2")
        await page.click("#token-form button[type=submit]")
        alarm = page.locator("#alarm")
        await expect(alarm).to_be_visible(timeout=LIVE)
        await expect(alarm).to_contain_text("dc1 holds 2 of 3 members as SUSPECT")
        await expect(page.locator("[data-status=SUSPECT]")).to_have_count(2, timeout=LIVE)
        await expect(page.locator("[data-status=SUSPECT] .status").first).to_have_text("▲ SUSPECT")
        await expect(page.locator("#suspects")).to_contain_text("dc1/data/silent")
        # The token went in an Authorization header, never in a URL.
        assert not [r.url for r in requests if "viewer-1" in r.url or "auditor-2" in r.url]
        watches = [r for r in requests if "/v1/watch" in r.url]
        assert await watches[-1].header_value("authorization") == "Bearer auditor-2"


async def test_the_console_shows_a_followed_datacenter_live_beside_its_own(two_datacenters):
    dc1, dc2 = two_datacenters.dc1, two_datacenters.dc2
    await register(two_datacenters.stub(dc1), node("here", "data", "dc1"), ttl=600)
    async with chromium_page() as page:
        await page.goto(f"{api_url(dc1)}/ui/")
        await expect(card(page, "dc1/data/here")).to_contain_text("UP", timeout=LIVE)
        # A node registered in the other datacenter (its own registry) appears, in its row.
        await register(two_datacenters.stub(dc2), node("there", "data", "dc2"), ttl=600)
        await expect(card(page, "dc2/data/there")).to_contain_text("UP", timeout=LIVE)
        await expect(page.locator('tr[data-datacenter="dc2"] th')).to_contain_text(
            "followed from its own registry"
        )
        await expect(page.locator('tr[data-datacenter="dc1"] th')).not_to_contain_text("followed")
