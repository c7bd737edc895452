"""Register and Deregister (core/registry.py) over the in-memory store: idempotency, ownership,
incarnations, tokens, datacenter routing and limits, without a server or etcd."""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
import pytest

from registry_service.datacenters import Datacenters
from registry_service.domain import AuditCause, Limits, NodeKey, NodeStatus, RemovalReason
from registry_service.errors import (
    InvalidArgumentError,
    NodeConflictError,
    NodeNotFoundError,
    RegistryError,
    StoreUnavailableError,
    WrongDatacenterError,
)
from registry_service.rpc.status import status_of
from tests.support.memory_store import MemoryStore
from tests.support.use_cases import Frontend, MakeFrontend, node
from tests.support.waiting import eventually

KEY = NodeKey("dc1", "data", "a")


def code_of(error: RegistryError) -> grpc.StatusCode:
    """The gRPC status code a client gets for the use case's error."""
    return status_of(error)[0]


async def test_register_writes_live_key_member_and_identity_in_one_revision(
    frontend: Frontend, store: MemoryStore
):
    before = store.revision
    result = await frontend.registry.register(node("a"), 10)
    stored = await store.read_node(KEY)
    assert result.revision == before + 1 == stored.member_mod_revision
    assert stored.live and stored.identity is not None and stored.identity.incarnation == 1
    assert stored.registration is not None
    assert stored.registration.node == result.node
    assert result.node.incarnation == 1 and result.ttl_seconds == 10 and result.token
    assert store.lease_alive(stored.registration.lease_id)
    assert [entry.cause for entry in await store.read_audit(KEY)] == [AuditCause.REGISTERED]


async def test_a_retry_with_the_same_idempotency_key_returns_the_same_registration(
    frontend: Frontend, store: MemoryStore
):
    first = await frontend.registry.register(node("a"), 10, idempotency_key="attempt-1")
    written = store.revision
    await frontend.caught_up()  # whether the view holds it or not, the answer is the same
    again = await frontend.registry.register(node("a"), 10, idempotency_key="attempt-1")
    assert again == first  # same token, incarnation, TTL and revision
    assert store.revision == written  # nothing written the second time
    await frontend.registry.keep_alive(KEY, again.token)
    # The lease granted for a registration that turned out to exist is given back.
    lease = await lease_of(store)
    await eventually(lambda: store.leases() == {lease}, message="only the node's lease left")


async def test_a_retry_whose_first_attempt_the_view_has_not_seen_still_finds_it(
    frontend: Frontend, store: MemoryStore
):
    """The answer to a Register may be lost before this frontend's watch shows it: the retry
    reads etcd, not the view, and returns the registration the first attempt made."""
    store.hold_watch()
    first = await frontend.registry.register(node("a"), 10, idempotency_key="attempt-1")
    again = await frontend.registry.register(node("a"), 10, idempotency_key="attempt-1")
    assert again == first
    store.release_watch()


async def test_a_retry_after_the_lease_lapsed_restores_the_same_registration(
    frontend: Frontend, store: MemoryStore
):
    first = await frontend.registry.register(node("a"), 10, idempotency_key="attempt-1")
    lapsed = await lease_of(store)
    store.advance(11)  # the lease runs out; no evictor removes the member
    assert not (await store.read_node(KEY)).live
    again = await frontend.registry.register(node("a"), 10, idempotency_key="attempt-1")
    assert again.token == first.token and again.node.incarnation == first.node.incarnation
    assert (await store.read_node(KEY)).live and await lease_of(store) != lapsed
    assert (await store.read_audit(KEY))[-1].cause is AuditCause.RESTORED


async def lease_of(store: MemoryStore, key: NodeKey = KEY) -> int:
    """The lease the node's member record names."""
    registration = (await store.read_node(key)).registration
    assert registration is not None
    return registration.lease_id


async def test_another_owner_cannot_take_a_live_node_already_exists(frontend: Frontend):
    owner = await frontend.registry.register(node("a"), 10)
    with pytest.raises(NodeConflictError, match="registered by another owner") as refused:
        await frontend.registry.register(node("a"), 10, idempotency_key="someone-else")
    assert code_of(refused.value) is grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(NodeConflictError):
        await frontend.registry.register(node("a"), 10, token="a-guessed-token")
    await frontend.registry.keep_alive(KEY, owner.token)  # the owner still holds it


async def test_the_owner_updates_its_live_registration_with_its_token(
    frontend: Frontend, store: MemoryStore
):
    owner = await frontend.registry.register(node("a"), 10)
    moved = dataclasses.replace(node("a", zone="b"), address="10.0.0.8:7000")
    updated = await frontend.registry.register(moved, 10, token=owner.token)
    assert updated.node.incarnation == 1 and updated.token == owner.token
    stored = await store.read_node(KEY)
    assert stored.registration is not None and stored.registration.node == updated.node
    assert stored.registration.node.address == "10.0.0.8:7000"
    assert dict(stored.registration.node.metadata) == {"zone": "b"}
    assert (await store.read_audit(KEY))[-1].cause is AuditCause.UPDATED


async def test_an_update_to_another_ttl_moves_the_node_to_a_new_lease(
    frontend: Frontend, store: MemoryStore
):
    owner = await frontend.registry.register(node("a"), 10)
    old_lease = await lease_of(store)
    updated = await frontend.registry.register(node("a"), 30, token=owner.token)
    stored = await store.read_node(KEY)
    assert updated.ttl_seconds == 30 and stored.registration is not None
    assert stored.registration.lease_id != old_lease and stored.live
    assert not store.lease_alive(old_lease)  # revoked once the node moved off it
    store.advance(20)  # past the old TTL, within the new one
    assert (await store.read_node(KEY)).live


async def test_a_node_registered_again_after_its_registration_expired_gets_the_next_incarnation(
    frontend: Frontend, store: MemoryStore
):
    first = await frontend.registry.register(node("a"), 10)
    store.advance(11)  # expired; the member record is still there (no evictor here)
    second = await frontend.registry.register(node("a"), 10)
    assert second.node.incarnation == first.node.incarnation + 1
    assert second.token != first.token
    causes = [entry.cause for entry in await store.read_audit(KEY)]
    assert causes == [AuditCause.REGISTERED, AuditCause.REPLACED, AuditCause.REGISTERED]
    with pytest.raises(NodeNotFoundError):
        await frontend.registry.keep_alive(KEY, first.token)


async def test_a_node_registered_again_after_deregistering_gets_the_next_incarnation(
    frontend: Frontend,
):
    first = await frontend.registry.register(node("a"), 10)
    await frontend.registry.deregister(KEY, first.token)
    second = await frontend.registry.register(node("a"), 10)
    assert second.node.incarnation == 2


async def test_the_owner_registering_again_after_its_lease_lapsed_keeps_its_incarnation(
    frontend: Frontend, store: MemoryStore
):
    first = await frontend.registry.register(node("a"), 10)
    store.advance(11)
    again = await frontend.registry.register(node("a"), 10, token=first.token)
    assert again.node.incarnation == first.node.incarnation and again.token == first.token
    assert (await store.read_node(KEY)).live


async def test_deregister_removes_the_node_at_once_and_revokes_its_lease(
    frontend: Frontend, store: MemoryStore
):
    owner = await frontend.registry.register(node("a"), 10)
    lease = await lease_of(store)
    revision = await frontend.registry.deregister(KEY, owner.token)
    stored = await store.read_node(KEY)
    assert stored.registration is None and not stored.live
    assert stored.identity is not None
    assert stored.identity.removal_reason is RemovalReason.DEREGISTERED
    assert revision == stored.identity_mod_revision
    assert not store.lease_alive(lease)
    with pytest.raises(NodeNotFoundError):
        await frontend.registry.keep_alive(KEY, owner.token)


async def test_a_foreign_or_wrong_token_is_not_found_for_deregister_and_keepalive(
    frontend: Frontend,
):
    """Lease ids are sequential and prove nothing; the token does. Another node's token, a
    guessed one or none gets NOT_FOUND, as if the registration did not exist."""
    await frontend.registry.register(node("a"), 10)
    other = await frontend.registry.register(node("b"), 10)
    for token in (other.token, "guessed", ""):
        with pytest.raises(NodeNotFoundError) as refused:
            await frontend.registry.deregister(KEY, token)
        assert code_of(refused.value) is grpc.StatusCode.NOT_FOUND
        with pytest.raises(NodeNotFoundError):
            await frontend.registry.keep_alive(KEY, token)
    assert frontend.store.value(frontend.store.keys.member(KEY)) is not None


async def test_a_node_of_another_datacenter_is_refused_naming_its_registry(
    frontend_over: MakeFrontend, store: MemoryStore
):
    dc1 = await frontend_over(datacenters=Datacenters("dc1", {"dc2": ("dc2.example:50051",)}))
    before = store.revision
    with pytest.raises(WrongDatacenterError, match=r"dc2\.example:50051") as refused:
        await dc1.registry.register(node("a", datacenter="dc2"), 10)
    assert code_of(refused.value) is grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(WrongDatacenterError):
        await dc1.registry.deregister(NodeKey("dc2", "data", "a"), "token")
    (renewal,) = await dc1.registry.keep_alive_many([(NodeKey("dc2", "data", "a"), "token")])
    assert isinstance(renewal, WrongDatacenterError)
    assert store.revision == before and store.calls["grant_lease"] == 0
    await dc1.registry.register(node("a"), 10)  # its own datacenter's nodes it writes


@pytest.mark.parametrize(
    ("ttl_seconds", "message"), [(2, "ttl_seconds 2"), (61, "ttl_seconds 61"), (-1, "ttl")]
)
async def test_a_ttl_outside_the_configured_range_is_invalid_and_writes_nothing(
    frontend_over: MakeFrontend, store: MemoryStore, ttl_seconds: int, message: str
):
    registry = (await frontend_over(limits=Limits(ttl_min_seconds=3, ttl_max_seconds=60))).registry
    with pytest.raises(InvalidArgumentError, match=message) as refused:
        await registry.register(node("a"), ttl_seconds)
    assert code_of(refused.value) is grpc.StatusCode.INVALID_ARGUMENT
    assert store.calls["grant_lease"] == 0
    assert (await registry.register(node("a"), 60)).ttl_seconds == 60  # the bound is allowed


async def test_no_ttl_gets_the_configured_default(frontend_over: MakeFrontend):
    registry = (await frontend_over(limits=Limits(ttl_default_seconds=17))).registry
    assert (await registry.register(node("a"), 0)).ttl_seconds == 17


@pytest.mark.parametrize(
    ("candidate", "message"),
    [
        (node("x" * 64), "the limit is 63"),
        (node("Upper"), "id 'Upper' must match"),
        (dataclasses.replace(node("a"), address="no-port"), "address"),
        (node("a", **{f"k{i}": "v" for i in range(65)}), "64"),
        (node("a", **{"registry.owner": "me"}), "registry."),
        (dataclasses.replace(node("a"), status=NodeStatus.SUSPECT), "status"),
    ],
    ids=["long-id", "bad-id", "address", "metadata-entries", "reserved-key", "suspect-status"],
)
async def test_a_node_outside_the_limits_is_invalid_and_writes_nothing(
    frontend: Frontend, store: MemoryStore, candidate, message: str
):
    with pytest.raises(InvalidArgumentError, match=message):
        await frontend.registry.register(candidate, 10)
    assert store.calls["grant_lease"] == 0 and store.revision == 1


async def test_an_overlong_idempotency_key_is_invalid(frontend: Frontend):
    with pytest.raises(InvalidArgumentError, match="idempotency_key is 129 characters"):
        await frontend.registry.register(node("a"), 10, idempotency_key="k" * 129)


async def test_register_in_a_store_outage_fails_at_once_as_unavailable(
    frontend: Frontend, store: MemoryStore
):
    store.available = False
    with pytest.raises(StoreUnavailableError, match="another frontend") as refused:
        await frontend.registry.register(node("a"), 10)
    assert code_of(refused.value) is grpc.StatusCode.UNAVAILABLE
    assert store.calls["grant_lease"] == 0  # refused before asking etcd


async def test_of_two_frontends_registering_one_id_at_once_one_wins_and_the_other_conflicts(
    frontend_over: MakeFrontend, store: MemoryStore
):
    first, second = await frontend_over(), await frontend_over()
    answers = await asyncio.gather(
        first.registry.register(node("a"), 10),
        second.registry.register(node("a"), 10),
        return_exceptions=True,
    )
    assert sorted(type(answer).__name__ for answer in answers) == [
        "NodeConflictError",
        "RegisterResult",
    ]
    causes = [entry.cause for entry in await store.read_audit(KEY)]
    assert causes == [AuditCause.REGISTERED]


async def test_a_register_that_loses_a_race_reads_again_and_decides_on_what_it_finds(
    frontend_over: MakeFrontend, store: MemoryStore
):
    """Another frontend creates the node between this Register's read and its guarded write:
    the write changes nothing, and the Register, reading again, finds a live node of another
    owner."""
    mine, theirs = await frontend_over(), await frontend_over()
    won: list[str] = []

    async def another_frontend_registers() -> None:
        won.append((await theirs.registry.register(node("a"), 10)).token)

    store.before_next_write(another_frontend_registers)
    with pytest.raises(NodeConflictError):
        await mine.registry.register(node("a"), 10)
    assert won and [entry.cause for entry in await store.read_audit(KEY)] == [AuditCause.REGISTERED]


async def member_leases(store: MemoryStore, node_ids: list[str]) -> set[int]:
    leases = set()
    for node_id in node_ids:
        registration = (await store.read_node(NodeKey("dc1", "data", node_id))).registration
        assert registration is not None
        leases.add(registration.lease_id)
    return leases


async def test_concurrent_first_registers_of_a_session_open_its_lease_once(
    frontend: Frontend, store: MemoryStore
):
    """A client that starts registers its nodes all at once (D73): the first grants the
    session's lease and opens it in its transaction, the others wait for it and write on it.
    Before, each granted a lease of its own, all but one lost the race for the session's key and
    went round again (a read, a lookup and another transaction each)."""
    ids = [f"n{i}" for i in range(16)]
    results = await asyncio.gather(
        *(frontend.registry.register(node(i), 10, session="s1") for i in ids)
    )
    assert all(result.session_lease for result in results)
    assert store.calls["grant_lease"] == 1
    assert store.calls["create_registration"] == len(ids)  # one transaction each, none lost
    assert store.calls["read_node"] == 0
    assert len(await member_leases(store, ids)) == 1


async def test_a_sessions_first_registers_on_a_second_frontend_find_the_lease_once(
    frontend_over: MakeFrontend, store: MemoryStore
):
    """The session was opened through another frontend: this one's first Register finds the key
    there (its own lease unused) and hands the session's lease to the Registers waiting."""
    first, second = await frontend_over(), await frontend_over()
    await first.registry.register(node("on-first"), 10, session="s1")
    grants, creates = store.calls["grant_lease"], store.calls["create_registration"]
    ids = [f"n{i}" for i in range(8)]
    await asyncio.gather(*(second.registry.register(node(i), 10, session="s1") for i in ids))
    assert store.calls["grant_lease"] - grants == 1  # the opener's, given back
    assert store.calls["read_session_lease"] <= 2  # the opener's lookup, and its own retry's
    # The opener: its create, lost, and one again; the others one each.
    assert store.calls["create_registration"] - creates == len(ids) + 1
    assert len(await member_leases(store, ["on-first", *ids])) == 1
