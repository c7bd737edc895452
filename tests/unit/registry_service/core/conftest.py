"""Fixtures of the use cases' unit tests: frontends over an in-memory store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.memory_store import MemoryStore
from tests.support.use_cases import Frontend, MakeFrontend, start_frontend


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
async def frontend_over(store: MemoryStore) -> AsyncIterator[MakeFrontend]:
    """Starts frontends over the test's store (or the one given as `over`), closed after the
    test; options as tests.support.use_cases.start_frontend."""
    started: list[Frontend] = []

    async def make(over: MemoryStore | None = None, **options: Any) -> Frontend:
        started.append(await start_frontend(over or store, **options))
        return started[-1]

    yield make
    for frontend in started:
        await frontend.close()


@pytest.fixture
async def frontend(frontend_over: MakeFrontend) -> Frontend:
    """One frontend over the test's store, with the default settings."""
    return await frontend_over()
