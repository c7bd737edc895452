"""The in-memory store the use cases' unit tests run on keeps the store port's contract: the
checks of tests/support/store_contract.py, which the etcd store passes on real etcd."""

from __future__ import annotations

import pytest

from registry_service.control import Announcement
from tests.support.memory_store import MemoryStore
from tests.support.store_contract import CHECKS, Check, Harness


@pytest.mark.parametrize("check", CHECKS, ids=[check.__name__ for check in CHECKS])
async def test_the_in_memory_store_keeps_the_store_contract(check: Check):
    store = MemoryStore()

    async def expire(lease_id: int) -> None:
        store.expire_lease(lease_id)

    async def compact(revision: int) -> None:
        store.compact(revision)

    await check(Harness(store, store, expire, compact))


async def test_a_lease_runs_out_on_the_clock_and_its_keys_go_in_one_revision():
    store = MemoryStore()
    lease = await store.grant_lease(10)
    other = await store.grant_lease(20)
    await store.announce(announcement("fe1"), lease)
    await store.announce(announcement("fe2"), lease)
    before = store.revision
    store.advance(9.9)
    assert store.lease_alive(lease) and store.revision == before
    store.advance(0.1)
    assert not store.lease_alive(lease) and store.lease_alive(other)
    assert store.revision == before + 1
    assert (await store.load()).frontends == {}


async def test_a_renewed_lease_runs_its_whole_ttl_again():
    store = MemoryStore()
    lease = await store.grant_lease(10)
    store.advance(8)
    assert await store.renew_lease(lease) == 10
    store.advance(8)
    assert store.lease_alive(lease)
    store.advance(2)
    assert not store.lease_alive(lease)


def announcement(frontend_id: str) -> Announcement:
    return Announcement(frontend_id, "host", 1, 0, 1, "127.0.0.1:1", "", "test", 0.0)
