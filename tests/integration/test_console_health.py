"""The web console in a real headless Chromium marks a node whose health fails, in text (never
colour alone), live, and unmarks it when it passes again (docs/design.md §13)."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from client_sdk import Health, Node, RegistryClient
from tests.support.browser import chromium_page
from tests.support.http_api import api_url
from tests.support.sdk import FAST

pytestmark = pytest.mark.integration
LIVE = 15_000  # ms: a change reaches the page in well under this


async def test_the_console_shows_a_failing_node_as_failing_and_follows_it_back(start_frontend):
    frontend = await start_frontend()
    async with RegistryClient(frontend.address, config=FAST) as client:
        registration = await client.register(Node("w1", "web", "dc1", "10.0.0.1:80"))
        async with chromium_page() as page:
            await page.goto(f"{api_url(frontend)}/ui/")
            card = page.locator('[data-node="dc1/web/w1"]')
            await expect(card).to_have_attribute("data-health", "UNCHECKED", timeout=LIVE)
            await expect(card.locator(".health")).to_have_count(0)

            # 1. Its owner reports it failing: marked, in words, still listed and still UP.
            await registration.update(health=Health.FAILING)
            await expect(card).to_have_attribute("data-health", "FAILING", timeout=LIVE)
            await expect(card.locator(".health")).to_have_text("✕ FAILING")
            await expect(card.locator(".status")).to_contain_text("UP")

            # 2. Passing again: the mark goes.
            await registration.update(health=Health.PASSING)
            await expect(card).to_have_attribute("data-health", "PASSING", timeout=LIVE)
            await expect(card.locator(".health")).to_have_count(0)
