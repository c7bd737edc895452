"""The one restore path (D20) without etcd: a member whose lease lapsed goes back UP on a new
lease, whichever caller takes it (a renewal, its owner's Register, an operator's cancel), and a
KeepAlive reaches it without going back through the registry."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from registry_service.control import OperatorEntry
from registry_service.core.registration_tokens import hash_token
from registry_service.core.renewals import Renewals
from registry_service.core.restoration import Restoration, SpareLeases
from registry_service.core.session_leases import SessionLeases
from registry_service.core.write_gate import WriteGate
from registry_service.datacenters import Datacenters
from registry_service.domain import (
    AuditCause,
    Limits,
    Node,
    NodeKey,
    NodeStatus,
    Override,
    Registration,
)
from registry_service.errors import NodeNotFoundError, StoreUnavailableError, WrongDatacenterError
from registry_service.store.base import StoredNode
from tests.support.waiting import eventually

KEY = NodeKey("dc1", "data", "a")
TOKEN = "secret"


def lapsed(status: NodeStatus = NodeStatus.SUSPECT, override: Override | None = None) -> StoredNode:
    """A member whose live key is gone (held as SUSPECT by the budget, or not evicted yet)."""
    node = Node("a", "data", "dc1", "a:1", {}, 3, status)
    registration = Registration(
        node, 11, 9, hash_token(TOKEN), suspect_since=1000.0, override=override
    )
    return StoredNode(KEY, 50, registration, member_mod_revision=40, live=False)


class FakeStore:
    """Records the restores and lease calls the restore path makes."""

    def __init__(self, stored: StoredNode, *, races: int = 0) -> None:
        self.stored = stored
        self.races = races  # restores that find the member changed
        self.restored: list[tuple[Registration, AuditCause, OperatorEntry | None]] = []
        self.granted: list[int] = []
        self.revoked: list[int] = []
        self.renewed: list[int] = []
        self.sessions: dict[tuple[str, int], int] = {}  # (session, TTL) -> lease, as in etcd

    async def read_node(self, key: NodeKey) -> StoredNode:
        return self.stored

    async def grant_lease(self, ttl_seconds: int) -> int:
        self.granted.append(ttl_seconds)
        return 100 + len(self.granted)

    async def revoke_lease(self, lease_id: int) -> None:
        self.revoked.append(lease_id)

    async def read_session_lease(self, session: str, ttl_seconds: int) -> int:
        return self.sessions.get((session, ttl_seconds), 0)

    async def open_session_lease(self, session: str, ttl_seconds: int, lease_id: int) -> int:
        return self.sessions.setdefault((session, ttl_seconds), lease_id)

    async def renew_leases(self, lease_ids: Sequence[int]) -> list[int | None]:
        self.renewed.extend(lease_ids)
        return [0 for _ in lease_ids]  # every lease is gone

    async def restore_registration(
        self,
        registration: Registration,
        expected: StoredNode,
        cause: AuditCause,
        *,
        operator: OperatorEntry | None = None,
    ) -> int | None:
        if self.races:
            self.races -= 1
            return None
        self.restored.append((registration, cause, operator))
        return 60


def restoration(store: FakeStore) -> Restoration:
    return Restoration(store, SpareLeases(store), SessionLeases(store))  # type: ignore[arg-type]


async def test_a_renewal_of_a_lapsed_lease_restores_the_member_up_on_a_new_lease_of_its_ttl():
    store = FakeStore(lapsed())
    assert await restoration(store).renewal(KEY, TOKEN) == 9
    ((written, cause, operator),) = store.restored
    assert store.granted == [9] and written.lease_id == 101
    assert written.node.status is NodeStatus.UP and written.suspect_since == 0
    assert written.node.incarnation == 3 and written.token_hash == hash_token(TOKEN)
    assert cause is AuditCause.RESTORED and operator is None


@pytest.mark.parametrize(
    "stored",
    [
        dataclasses.replace(lapsed(), registration=None),  # the evictor removed it
        dataclasses.replace(lapsed(), live=True),  # registered again meanwhile
    ],
)
async def test_a_renewal_finds_nothing_to_restore_once_the_member_is_gone_or_live(stored):
    store = FakeStore(stored)
    with pytest.raises(NodeNotFoundError, match="register again"):
        await restoration(store).renewal(KEY, TOKEN)
    assert store.granted == [] and store.restored == []


async def test_a_renewal_with_another_token_restores_nothing():
    store = FakeStore(lapsed())
    with pytest.raises(NodeNotFoundError):
        await restoration(store).renewal(KEY, "not the owner")
    assert store.restored == []


async def test_a_lost_race_reads_again_and_the_unused_lease_is_revoked():
    store = FakeStore(lapsed(), races=1)
    assert await restoration(store).renewal(KEY, TOKEN) == 9
    assert store.granted == [9, 9] and store.restored[0][0].lease_id == 102
    await eventually(lambda: store.revoked == [101], timeout=5, message="spare lease revoked")


async def test_an_operators_override_keeps_its_status_through_a_restore():
    maintenance = Override(NodeStatus.OUT_OF_SERVICE, NodeStatus.UP, "ops", 1.0)
    store = FakeStore(lapsed(NodeStatus.OUT_OF_SERVICE, maintenance))
    entry = OperatorEntry("suspect.cancel", "ops", 2.0, "fe-1", KEY.path)
    restored = await restoration(store).on_new_lease(
        store.stored, AuditCause.OPERATOR_RESTORED, entry
    )
    assert restored is not None and restored.node.status is NodeStatus.OUT_OF_SERVICE
    ((written, cause, operator),) = store.restored
    assert written.override == maintenance and cause is AuditCause.OPERATOR_RESTORED
    assert operator == entry


async def test_an_owners_register_restores_as_it_now_asks_on_the_lease_it_brought():
    store = FakeStore(lapsed())
    asked = Node("a", "data", "dc1", "a:2", {"v": "2"}, 0, NodeStatus.DRAINING)
    restored = await restoration(store).restore(
        store.stored, 55, 30, AuditCause.RESTORED, requested=asked
    )
    assert restored is not None and (restored.ttl_seconds, restored.revision) == (30, 60)
    ((written, _, _),) = store.restored
    assert written.lease_id == 55 and written.ttl_seconds == 30 and store.granted == []
    assert written.node == dataclasses.replace(asked, incarnation=3)


def in_session(stored: StoredNode, session: str = "s1") -> StoredNode:
    assert stored.registration is not None
    return dataclasses.replace(
        stored, registration=dataclasses.replace(stored.registration, session=session)
    )


async def test_a_lapsed_session_registration_goes_back_on_its_sessions_new_lease():
    """The session's lease lapsed with all its registrations (D73): the first renewal opens a
    new one for the session, and the others go back on that one, not on leases of their own."""
    store = FakeStore(in_session(lapsed()))
    restorer = restoration(store)
    assert await restorer.renewal(KEY, TOKEN) == 9
    assert await restorer.renewal(KEY, TOKEN) == 9
    assert store.granted == [9]  # one lease for the session
    assert store.sessions == {("s1", 9): 101}
    assert [(r.lease_id, r.session) for r, _, _ in store.restored] == [(101, "s1"), (101, "s1")]


async def test_a_session_lease_another_frontend_opened_first_is_taken_and_ours_revoked():
    store = FakeStore(in_session(lapsed()))
    store.sessions[("s1", 9)] = 0  # read as none, then found opened by another frontend

    async def opened_elsewhere(session: str, ttl_seconds: int, lease_id: int) -> int:
        return 77

    store.open_session_lease = opened_elsewhere  # type: ignore[method-assign]
    assert await restoration(store).renewal(KEY, TOKEN) == 9
    assert store.restored[0][0].lease_id == 77
    assert store.revoked == [101]


async def test_an_operators_cancel_puts_a_session_registration_on_a_lease_of_its_own():
    store = FakeStore(in_session(lapsed()))
    restored = await restoration(store).on_new_lease(store.stored, AuditCause.OPERATOR_RESTORED)
    assert restored is not None and not restored.session_lease
    ((written, _, _),) = store.restored
    assert (written.lease_id, written.session) == (101, "")


class OneRegistrationHub:
    """What the renewals read of the hub: the registration in the view, and the store link."""

    def __init__(self, stored: StoredNode, *, stale: bool = False) -> None:
        self._registration = stored.registration
        self.stale = stale

    def registration(self, key: NodeKey) -> Registration | None:
        return self._registration


def renewals(store: FakeStore, hub: OneRegistrationHub, datacenters: Datacenters) -> Renewals:
    return Renewals(
        store,  # type: ignore[arg-type]
        hub,  # type: ignore[arg-type]
        Limits(),
        coalesce_seconds=0.0,
        gate=WriteGate(hub, datacenters),
        restoration=restoration(store),
    )


async def test_keep_alive_of_a_lapsed_lease_goes_from_renewals_to_the_restore_path():
    store = FakeStore(lapsed())
    renewing = renewals(store, OneRegistrationHub(store.stored), Datacenters())
    assert await renewing.keep_alive(KEY, TOKEN) == 9
    assert store.renewed == [11] and len(store.restored) == 1


async def test_keep_alive_asks_the_write_gate_before_etcd():
    store = FakeStore(lapsed())
    outage = renewals(store, OneRegistrationHub(store.stored, stale=True), Datacenters())
    with pytest.raises(StoreUnavailableError, match="cannot reach etcd"):
        await outage.keep_alive(KEY, TOKEN)
    elsewhere = renewals(store, OneRegistrationHub(store.stored), Datacenters("dc2"))
    (answer,) = await elsewhere.keep_alive_many([(KEY, TOKEN)])
    assert isinstance(answer, WrongDatacenterError)
    assert store.renewed == [] and store.restored == []
