"""The bookkeeping of client sessions' shared leases (D73), without etcd: a session's name is
scoped by its caller, its lease is found in the store or opened once however many ask, a lease
another frontend opened first is taken, and what a frontend remembers stays bounded."""

from __future__ import annotations

import asyncio

import pytest

from registry_service.core.session_leases import (
    SESSION_ID_MAX_LENGTH,
    SessionLeases,
    session_name,
)
from registry_service.errors import InvalidArgumentError


class SessionStore:
    """The store's side of sessions: `sessions/<name>/<ttl>` keys and leases."""

    def __init__(self) -> None:
        self.sessions: dict[tuple[str, int], int] = {}
        self.granted = 0
        self.reads = 0
        self.revoked: list[int] = []
        self.opened_elsewhere = 0  # a lease another frontend opens just before ours

    async def read_session_lease(self, session: str, ttl_seconds: int) -> int:
        self.reads += 1
        await asyncio.sleep(0)
        return self.sessions.get((session, ttl_seconds), 0)

    async def grant_lease(self, ttl_seconds: int) -> int:
        self.granted += 1
        await asyncio.sleep(0)
        return 100 + self.granted

    async def open_session_lease(self, session: str, ttl_seconds: int, lease_id: int) -> int:
        if self.opened_elsewhere:
            self.sessions.setdefault((session, ttl_seconds), self.opened_elsewhere)
        return self.sessions.setdefault((session, ttl_seconds), lease_id)

    async def revoke_lease(self, lease_id: int) -> None:
        self.revoked.append(lease_id)


def test_a_session_is_named_by_its_id_and_its_callers_identity() -> None:
    alice = session_name("token:alice", "abc")
    assert alice == session_name("token:alice", "abc") and len(alice) == 32
    assert alice != session_name("token:mallory", "abc")  # the same id, another caller
    assert session_name("token:alice", "") == ""  # no session: a lease of its own
    with pytest.raises(InvalidArgumentError, match="session"):
        session_name("token:alice", "x" * (SESSION_ID_MAX_LENGTH + 1))


async def test_concurrent_callers_of_a_new_session_open_one_lease() -> None:
    store = SessionStore()
    leases = SessionLeases(store)  # type: ignore[arg-type]
    found = await asyncio.gather(*(leases.current("s", 10) for _ in range(20)))
    assert set(found) == {101} and store.granted == 1 and store.reads == 1
    assert store.sessions == {("s", 10): 101}
    assert await leases.current("s", 10) == 101 and store.reads == 1  # remembered


async def test_a_session_lease_in_the_store_is_found_not_granted() -> None:
    store = SessionStore()
    store.sessions[("s", 10)] = 55  # opened through another frontend (the client failed over)
    leases = SessionLeases(store)  # type: ignore[arg-type]
    assert await leases.current("s", 10) == 55 and store.granted == 0
    assert await leases.current("s", 30) == 101  # another TTL: another lease


async def test_a_lease_another_frontend_opened_first_is_taken_and_ours_revoked() -> None:
    store = SessionStore()
    store.opened_elsewhere = 77
    leases = SessionLeases(store)  # type: ignore[arg-type]
    assert await leases.current("s", 10) == 77
    assert store.revoked == [101]


async def test_a_lapsed_lease_is_forgotten_and_a_fresh_look_reads_the_store_again() -> None:
    store = SessionStore()
    leases = SessionLeases(store)  # type: ignore[arg-type]
    assert await leases.current("s", 10) == 101
    leases.forget("s", 10, 999)  # not the one it knows: kept
    assert leases.known("s", 10) == 101
    del store.sessions[("s", 10)]  # the lease lapsed, its key went with it
    leases.forget("s", 10, 101)
    assert leases.known("s", 10) == 0
    assert await leases.current("s", 10) == 102
    store.sessions[("s", 10)] = 88
    assert await leases.current("s", 10, fresh=True) == 88


def test_what_a_frontend_remembers_is_bounded_least_recently_used_first() -> None:
    leases = SessionLeases(SessionStore(), remembered=2)  # type: ignore[arg-type]
    leases.remember("a", 10, 1)
    leases.remember("b", 10, 2)
    assert leases.known("a", 10) == 1  # a used again: b is now the oldest
    leases.remember("c", 10, 3)
    assert (leases.known("a", 10), leases.known("b", 10), leases.known("c", 10)) == (1, 0, 3)
