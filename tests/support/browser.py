"""A real headless Chromium for the console's tests (bench/browser.py's, which the console's
figures use too). A missing Chromium fails the test, never skips it, saying what to install."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from playwright.async_api import Page

from bench import browser


def chromium_executable() -> str:
    """The system's Chromium; fails (never skips) with what to do when it is missing."""
    found = browser.find_chromium()
    if not found:
        pytest.fail(f"the console cannot be tested in a browser: {browser.MISSING}")
    return found


@asynccontextmanager
async def chromium_page() -> AsyncIterator[Page]:
    async with browser.chromium_page(chromium_executable()) as page:
        yield page
