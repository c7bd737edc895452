"""A real headless Chromium for the console's tests: Debian's `chromium` package (which `make
test` installs as root, as it installs etcd-server), driven by Playwright for Python through the
driver its pip package carries. Playwright never downloads a browser here (no `playwright
install`): it is given the system's executable."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright

SYSTEM_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# A laptop's screen: the console must be readable at this size.
LAPTOP = {"width": 1440, "height": 900}


def chromium_executable() -> str:
    """The system's Chromium; fails (never skips) with what to do when it is missing."""
    found = shutil.which("chromium") or (SYSTEM_CHROMIUM if Path(SYSTEM_CHROMIUM).exists() else "")
    if not found:
        pytest.fail(
            "Chromium is not installed, so the console cannot be tested in a browser: install "
            "Debian's package (as root: apt-get install chromium; `make test` does it as root "
            "through `make system-chromium`)"
        )
    return found


@asynccontextmanager
async def chromium_page() -> AsyncIterator[Page]:
    executable = chromium_executable()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_FLAGS, headless=True
        )
        try:
            page = await browser.new_page(viewport=LAPTOP)
            yield page
        finally:
            await browser.close()
