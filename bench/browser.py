"""A real headless Chromium for the console's figures (and the console's tests, which fail
where this finds none): Debian's `chromium` package, driven by Playwright for Python through the
driver its pip package carries. Playwright never downloads a browser here (no `playwright
install`): it is given the system's executable."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

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
MISSING = (
    "Chromium is not installed: install Debian's package (as root: apt-get install chromium; "
    "`make test` does it as root through `make system-chromium`)"
)


def find_chromium() -> str:
    """The system's Chromium, or "" when there is none."""
    return shutil.which("chromium") or (SYSTEM_CHROMIUM if Path(SYSTEM_CHROMIUM).exists() else "")


@asynccontextmanager
async def chromium_page(executable: str) -> AsyncIterator[Any]:
    """A Playwright page in a headless Chromium at a laptop's size, closed on the way out."""
    from playwright.async_api import async_playwright  # a dev tool: imported when used

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_FLAGS, headless=True
        )
        try:
            yield await browser.new_page(viewport=LAPTOP)
        finally:
            await browser.close()
