"""The web console (/ui/) in a real headless Chromium, as an operator uses it: it loads, shows the
nodes with their statuses as text and their metadata, groups them per datacenter and type, finds
them by id, type, datacenter, status and metadata, follows every change without a reload (a row
changes in place), pages a large list, shows a node's audit trail; on a secured registry it says
a token is needed, shows the nodes with a `watch` token and the operator's panels with
`admin:read`, and acts (maintenance, drain, evict with a hold, suspects, the push switch) with a
token that may, each action confirmed first and audited under the token's name."""

from __future__ import annotations

import asyncio

import pytest
from noderegistry.v1 import registry_pb2 as pb
from playwright.async_api import Page, Request, expect

from registry_service.domain import NodeKey, NodeStatus
from tests.support.api import key_of, node, register
from tests.support.browser import chromium_page
from tests.support.http_api import ONE_EVICTION_BUDGET, api_url
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
LIVE = 15_000  # ms: a change reaches the page in well under this


def row(page: Page, path: str):
    return page.locator(f'[data-node="{path}"]')


async def search(page: Page, text: str) -> None:
    await page.fill("#f-text", text)


async def test_the_console_shows_finds_and_follows_the_nodes_without_a_reload(
    start_frontend, connect, tmp_path
):
    frontend = await start_frontend()
    stub = connect(frontend)
    first = await register(stub, node("first", "data", "dc1", zone="a", shard="7"), ttl=600)
    await register(stub, node("second", "data", "dc1", zone="b"), ttl=600)
    await register(stub, node("meta-1", "meta", "dc2"), ttl=600)
    async with chromium_page() as page:
        # 1. It loads and shows what is registered: status as text, address, metadata; the
        # groups count the nodes per datacenter and type.
        await page.goto(f"{api_url(frontend)}/ui/")
        await expect(page.locator("#connection")).to_have_text("live", timeout=LIVE)
        await expect(row(page, "dc1/data/first")).to_contain_text("UP", timeout=LIVE)
        await expect(row(page, "dc1/data/first")).to_contain_text("first.example:7000")
        await expect(row(page, "dc1/data/first")).to_contain_text("shard=7, zone=a")
        await expect(page.locator("tr[data-datacenter]")).to_have_count(2)
        await expect(page.locator('[data-group="dc1/data"] .total')).to_have_text("2")
        await page.evaluate("window.sameDocument = true")  # gone if the page reloads

        # 2. Found by id, by metadata, by datacenter, type and status; a group's cell filters.
        await search(page, "seco")
        await expect(page.locator("#node-rows tr")).to_have_count(1)
        await expect(row(page, "dc1/data/second")).to_be_visible()
        await search(page, "zone=a")
        await expect(page.locator("#node-rows tr")).to_have_count(1)
        await expect(row(page, "dc1/data/first")).to_be_visible()
        await search(page, "")
        await page.select_option("#f-datacenter", "dc2")
        await expect(page.locator("#node-rows tr")).to_have_count(1)
        await page.select_option("#f-datacenter", "")
        await page.select_option("#f-status", "OUT_OF_SERVICE")
        await expect(page.locator("#nodes-empty")).to_have_text("No node matches the filter.")
        await page.click("#f-reset")
        await page.click('[data-group="dc1/data"]')
        await expect(page.locator("#node-rows tr")).to_have_count(2)
        await expect(page.locator("#f-type")).to_have_value("data")
        await page.click('[data-group="dc1/data"]')  # again: every node
        await expect(page.locator("#node-rows tr")).to_have_count(3)

        # 3. A node registered after the page opened appears; one that leaves disappears; one
        # that changes is the same row, rewritten in place.
        await page.evaluate(
            "document.querySelector('[data-node=\"dc2/meta/meta-1\"]').marked = true"
        )
        await register(stub, node("later", "data", "dc1"), ttl=600)
        await expect(row(page, "dc1/data/later")).to_contain_text("UP", timeout=LIVE)
        await stub.Deregister(pb.DeregisterRequest(key=key_of(first.node), token=first.token))
        await expect(row(page, "dc1/data/first")).to_have_count(0, timeout=LIVE)
        await frontend.operations.set_override(
            NodeKey("dc2", "meta", "meta-1"), NodeStatus.OUT_OF_SERVICE, "token:ops", "disk"
        )
        meta = row(page, "dc2/meta/meta-1")
        await expect(meta).to_have_attribute("data-status", "OUT_OF_SERVICE", timeout=LIVE)
        await expect(meta.locator(".status")).to_have_text("■ OUT_OF_SERVICE")
        assert await meta.evaluate("element => element.marked") is True

        # 4. A click shows the node's metadata and audit trail; without a token, no actions.
        await row(page, "dc1/data/second").click()
        await expect(page.locator("#node-detail")).to_contain_text("metadata zone")
        await meta.click()
        audit = page.locator("#audit")
        await expect(audit.locator("[data-audit-node]")).to_contain_text("2 recorded", timeout=LIVE)
        await expect(audit).to_contain_text("OPERATOR_OUT_OF_SERVICE", timeout=LIVE)
        await expect(audit).to_contain_text("token:ops")
        await expect(page.locator("#actions-note")).to_contain_text(
            "need a token with the admin:write"
        )
        await expect(page.locator('#actions button[data-action="evict"]')).to_be_disabled()

        # 5. Subscribers: this page's own event stream is one; the frontends panel lists this
        # frontend, answering, with its version.
        await expect(page.locator("#convergence")).to_contain_text("1 subscriber", timeout=LIVE)
        frontends = page.locator("#frontends")
        await expect(frontends).to_contain_text(f"{frontend.frontend_id} (this one)", timeout=LIVE)
        await expect(frontends).to_contain_text("answering", timeout=LIVE)
        assert await page.evaluate("window.sameDocument") is True
        await page.screenshot(path=str(tmp_path / "console.png"), full_page=True)


async def test_a_selector_asks_the_registry_for_the_matching_nodes_only(start_frontend, connect):
    frontend = await start_frontend()
    stub = connect(frontend)
    await register(stub, node("a-1", zone="a"), ttl=600)
    await register(stub, node("a-canary", zone="a", canary="yes"), ttl=600)
    await register(stub, node("b-1", zone="b"), ttl=600)
    async with chromium_page() as page:
        requests: list[Request] = []
        page.on("request", lambda request: requests.append(request))
        await page.goto(f"{api_url(frontend)}/ui/")
        await expect(page.locator("#node-rows tr")).to_have_count(3, timeout=LIVE)
        # 1. The selector goes to the registry (the watch's scope), which sends what matches.
        await page.fill("#f-selector", "zone=a,!canary")
        await page.press("#f-selector", "Enter")
        await expect(page.locator("#node-rows tr")).to_have_count(1, timeout=LIVE)
        await expect(row(page, "dc1/data/a-1")).to_be_visible()
        await expect(page.locator("#node-count")).to_contain_text("selector zone=a,!canary")
        watches = [r.url for r in requests if "/v1/watch" in r.url]
        assert watches[-1].endswith("&selector=zone%3Da%2C!canary"), watches
        # 2. It follows changes within the selector: a node that matches appears, one that
        # does not never does.
        await register(stub, node("a-2", zone="a"), ttl=600)
        await register(stub, node("b-2", zone="b"), ttl=600)
        await expect(row(page, "dc1/data/a-2")).to_be_visible(timeout=LIVE)
        await expect(page.locator("#node-rows tr")).to_have_count(2)
        # 3. A selector the registry cannot parse: its reason, where the nodes would be.
        await page.fill("#f-selector", "zone in (a")
        await page.press("#f-selector", "Enter")
        notice = page.locator("#nodes-notice")
        await expect(notice).to_contain_text("The registry refused the selector", timeout=LIVE)
        await expect(notice).to_contain_text("INVALID_ARGUMENT")
        await expect(page.locator("#nodes-empty")).to_be_hidden()
        # 4. Cleared: every node again.
        await page.click("#f-reset")
        await expect(page.locator("#node-rows tr")).to_have_count(5, timeout=LIVE)
        await expect(notice).to_be_hidden()


async def test_a_large_list_is_paged_and_a_change_repaints_only_its_row(start_frontend, connect):
    frontend = await start_frontend()
    stub = connect(frontend)
    semaphore = asyncio.Semaphore(64)

    async def one(index: int) -> pb.RegisterResponse:
        async with semaphore:
            return await register(stub, node(f"n{index:05d}", shard=str(index % 7)), ttl=600)

    registered = await asyncio.gather(*(one(index) for index in range(2000)))
    async with chromium_page() as page:
        await page.goto(f"{api_url(frontend)}/ui/")
        await expect(page.locator("#page-info")).to_have_text(
            "1\N{EN DASH}100 of 2,000 · page 1 of 20", timeout=LIVE
        )
        await expect(page.locator("#node-rows tr")).to_have_count(100)  # one page, not 2,000
        await page.click("#page-next")
        await expect(page.locator("#node-rows tr").first).to_have_attribute(
            "data-node", "dc1/data/n00100"
        )
        await page.click("#page-previous")
        await expect(page.locator("#node-rows tr").first).to_have_attribute(
            "data-node", "dc1/data/n00000"
        )
        # Every other row stays the element it was while one node changes.
        await page.evaluate("document.querySelectorAll('#node-rows tr').forEach(r => r.kept = 1)")
        await frontend.operations.set_override(
            NodeKey("dc1", "data", "n00003"), NodeStatus.DRAINING, "token:ops"
        )
        changed = row(page, "dc1/data/n00003")
        await expect(changed).to_have_attribute("data-status", "DRAINING", timeout=LIVE)
        kept = await page.evaluate(
            "[...document.querySelectorAll('#node-rows tr')].filter(r => r.kept).length"
        )
        assert kept == 100
        # 100 removals at once are one repaint: the list and the counts follow.
        for answer in registered[:100]:
            await stub.Deregister(pb.DeregisterRequest(key=key_of(answer.node), token=answer.token))
        await expect(page.locator("#page-info")).to_have_text(
            "1\N{EN DASH}100 of 1,900 · page 1 of 19", timeout=LIVE
        )
        await expect(page.locator('[data-group="dc1/data"] .total')).to_have_text("1900")
        await search(page, "shard=3")
        left = sum(1 for index in range(100, 2000) if index % 7 == 3)
        await expect(page.locator("#page-info")).to_contain_text(f"of {left} matching")


TOKENS = (
    "viewer watch viewer-1\n"
    "auditor watch,admin:read auditor-2\n"
    "ops watch,admin ops-3\n"
    "fleet register fleet-4\n"
)
FLEET = (("authorization", "Bearer fleet-4"),)


async def register_as_fleet(stub, message: pb.Node, ttl: int) -> None:
    await stub.Register(pb.RegisterRequest(node=message, ttl_seconds=ttl), metadata=FLEET)


async def use_token(page: Page, token: str) -> None:
    await page.fill("#token", token)
    await page.click("#token-form button[type=submit]")


async def confirm(page: Page, expected: str) -> None:
    dialog = page.locator("#confirm")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text(expected)
    await page.click("#confirm-ok")


async def test_on_a_secured_registry_a_token_is_needed_and_scopes_show_what_they_may(
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
        # 1. Without a token: "a token is needed", where the nodes would be; not "No nodes".
        await page.goto(f"{api_url(frontend)}/ui/")
        await expect(page.locator("#connection")).to_contain_text("a token is needed", timeout=LIVE)
        await expect(page.locator("#nodes-notice")).to_contain_text("A token is needed")
        await expect(page.locator("#nodes-empty")).to_be_hidden()
        # 2. A `watch` token: the nodes; the operator's panels say they need admin:read.
        await use_token(page, "viewer-1")
        await expect(row(page, "dc1/data/steady")).to_contain_text("UP", timeout=LIVE)
        await expect(page.locator("#nodes-notice")).to_be_hidden()
        await expect(page.locator("#suspects")).to_contain_text(
            "Needs a token with the admin:read scope", timeout=LIVE
        )
        await expect(page.locator("#push")).to_contain_text("Needs a token with the admin:read")
        # 3. Nodes stop renewing beyond the eviction budget: with an admin:read token the
        # console raises the alarm and lists the suspects.
        for index in range(3):
            await register_as_fleet(stub, node(f"silent{index}", "data"), ttl=3)
        await eventually(
            lambda: len(frontend.operations.suspects()) == 2, timeout=20, message="2 suspects"
        )
        await use_token(page, "auditor-2")
        alarm = page.locator("#alarm")
        await expect(alarm).to_be_visible(timeout=LIVE)
        await expect(alarm).to_contain_text("dc1 holds 2 of 3 members as SUSPECT")
        await expect(page.locator("[data-status=SUSPECT]")).to_have_count(2, timeout=LIVE)
        await expect(page.locator("[data-status=SUSPECT] .status").first).to_have_text("▲ SUSPECT")
        await expect(page.locator("#suspects")).to_contain_text("dc1/data/silent")
        # 4. admin:read may look, not act: the registry refuses and the console says why.
        await row(page, "dc1/data/steady").click()
        await page.click('#actions button[data-action="maintenance"]')
        await confirm(page, "Put dc1/data/steady in maintenance (OUT_OF_SERVICE)?")
        await expect(page.locator("#action-result")).to_contain_text(
            "Refused: a token with the admin:write scope is needed", timeout=LIVE
        )
        # The token went in an Authorization header, never in a URL.
        assert not [r.url for r in requests if "-1" in r.url or "-2" in r.url or "-3" in r.url]
        watches = [r for r in requests if "/v1/watch" in r.url]
        assert await watches[-1].header_value("authorization") == "Bearer auditor-2"


async def test_an_operator_acts_from_the_console_each_action_confirmed_and_audited(
    start_frontend, connect, tmp_path
):
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKENS)
    frontend = await start_frontend(auth_tokens_file=str(tokens), **ONE_EVICTION_BUDGET)
    stub = connect(frontend)
    for name in ("steady", "other"):
        await register_as_fleet(stub, node(name, "data"), ttl=600)
    async with chromium_page() as page:
        await page.goto(f"{api_url(frontend)}/ui/")
        await use_token(page, "ops-3")
        steady = row(page, "dc1/data/steady")
        await steady.click()
        # 1. Cancelled in the dialog: nothing is sent.
        await page.fill("#action-reason", "disk swap")
        await page.click('#actions button[data-action="maintenance"]')
        await expect(page.locator("#confirm")).to_be_visible()
        await page.click("#confirm-cancel")
        await expect(page.locator("#action-result")).to_have_text("Cancelled: nothing was sent.")
        await expect(steady).to_have_attribute("data-status", "UP")
        # 2. Maintenance, confirmed: the row follows, the audit trail names the operator.
        await page.click('#actions button[data-action="maintenance"]')
        await confirm(page, "Put dc1/data/steady in maintenance (OUT_OF_SERVICE)?")
        await expect(page.locator("#action-result")).to_contain_text(
            "dc1/data/steady: maintenance done, now OUT_OF_SERVICE at revision", timeout=LIVE
        )
        await expect(page.locator("#action-result")).to_contain_text("by token:ops")
        await expect(steady).to_have_attribute("data-status", "OUT_OF_SERVICE", timeout=LIVE)
        await expect(page.locator("#audit")).to_contain_text("OPERATOR_OUT_OF_SERVICE")
        await expect(page.locator("#audit")).to_contain_text("disk swap")
        # 3. Drain, then clear.
        for action, status in (("drain", "DRAINING"), ("clear", "UP")):
            await page.click(f'#actions button[data-action="{action}"]')
            await confirm(page, "dc1/data/steady")
            await expect(steady).to_have_attribute("data-status", status, timeout=LIVE)
        # 4. Evict with a hold: the node goes; its id is refused until the hold ends.
        await row(page, "dc1/data/other").click()
        await page.fill("#action-hold", "300")
        await page.click('#actions button[data-action="evict"]')
        await confirm(
            page, "Evict dc1/data/other now (REMOVED, reason EVICTED)? Its id is refused for 300s."
        )
        await expect(row(page, "dc1/data/other")).to_have_count(0, timeout=LIVE)
        await expect(page.locator("#node-detail")).to_contain_text("is not a member (any more)")
        await expect(page.locator("#audit")).to_contain_text("OPERATOR_EVICTED", timeout=LIVE)
        stored = await frontend.operations.stored_node(NodeKey("dc1", "data", "other"))
        assert stored.identity is not None and stored.identity.held_by == "token:ops"
        # 5. The push switch, off and on again, for every frontend.
        await page.click("#push-toggle")
        await confirm(page, "Switch pushes off for every frontend?")
        await expect(page.locator("#push-result")).to_contain_text("Pushes OFF, by token:ops")
        await eventually(
            lambda: not frontend.operator_state.push_switch.enabled, message="pushes held"
        )
        await expect(page.locator("[data-push=off]")).to_be_visible(timeout=LIVE)
        await page.click("#push-toggle")
        await confirm(page, "Switch pushes on for every frontend?")
        await eventually(lambda: frontend.operator_state.push_switch.enabled, message="pushes on")
        # 6. Suspects: one removed now, one kept (UP for one more TTL).
        for index in range(3):
            await register_as_fleet(stub, node(f"silent{index}", "data"), ttl=3)
        await eventually(
            lambda: len(frontend.operations.suspects()) == 2, timeout=20, message="2 suspects"
        )
        gone, kept = sorted(r.node.id for r in frontend.operations.suspects())
        await page.click(f'[data-confirm="dc1/data/{gone}"]', timeout=LIVE)
        await confirm(page, f"Remove the suspect dc1/data/{gone} now (EVICTED)?")
        await expect(page.locator("#suspects-result")).to_contain_text("Removed: 1 node(s).")
        await expect(row(page, f"dc1/data/{gone}")).to_have_count(0, timeout=LIVE)
        await page.click(f'[data-cancel="dc1/data/{kept}"]', timeout=LIVE)
        await confirm(page, f"Put dc1/data/{kept} back UP for one more TTL?")
        await expect(row(page, f"dc1/data/{kept}")).to_have_attribute(
            "data-status", "UP", timeout=LIVE
        )
        actions = [entry.action for entry in await frontend.operations.operator_audit()]
        assert {"node.out_of_service", "node.draining", "node.clear", "node.evict"} <= set(actions)
        assert {"push.off", "push.on"} <= set(actions)


async def test_the_console_shows_a_followed_datacenter_live_beside_its_own(two_datacenters):
    dc1, dc2 = two_datacenters.dc1, two_datacenters.dc2
    await register(two_datacenters.stub(dc1), node("here", "data", "dc1"), ttl=600)
    async with chromium_page() as page:
        await page.goto(f"{api_url(dc1)}/ui/")
        await expect(row(page, "dc1/data/here")).to_contain_text("UP", timeout=LIVE)
        # A node registered in the other datacenter (its own registry) appears, in its row.
        await register(two_datacenters.stub(dc2), node("there", "data", "dc2"), ttl=600)
        await expect(row(page, "dc2/data/there")).to_contain_text("UP", timeout=LIVE)
        await expect(page.locator('tr[data-datacenter="dc2"] th')).to_contain_text(
            "followed from its own registry"
        )
        await expect(page.locator('tr[data-datacenter="dc1"] th')).not_to_contain_text("followed")
