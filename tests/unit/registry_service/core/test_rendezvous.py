"""Rendezvous hashing of nodes over frontends (pure): every frontend computes the same owner,
shares are even, and a frontend that leaves or joins moves only its own share."""

from __future__ import annotations

import collections

from registry_service.core.rendezvous import Owners, owner
from registry_service.domain import NodeKey

KEYS = [NodeKey("dc1", "data", f"n{i}") for i in range(3000)]
FRONTENDS = ["fe-a", "fe-b", "fe-c"]


def _owners(frontends: list[str]) -> dict[NodeKey, str | None]:
    return {key: owner(key, frontends) for key in KEYS}


def test_every_frontend_computes_the_same_owner_whatever_the_order_it_lists_them_in():
    assert _owners(FRONTENDS) == _owners(list(reversed(FRONTENDS)))


def test_shares_are_about_even():
    shares = collections.Counter(_owners(FRONTENDS).values())
    assert set(shares) == set(FRONTENDS)
    assert all(abs(count - len(KEYS) / 3) < len(KEYS) * 0.05 for count in shares.values())


def test_a_frontend_that_leaves_moves_only_its_own_nodes():
    before = _owners(FRONTENDS)
    after = _owners(["fe-a", "fe-c"])
    moved = {key for key in KEYS if before[key] != after[key]}
    assert moved == {key for key in KEYS if before[key] == "fe-b"}
    assert all(after[key] in ("fe-a", "fe-c") for key in moved)


def test_a_frontend_that_joins_takes_about_its_share_and_nothing_else_moves():
    before = _owners(FRONTENDS)
    after = _owners([*FRONTENDS, "fe-d"])
    moved = [key for key in KEYS if before[key] != after[key]]
    assert all(after[key] == "fe-d" for key in moved)
    assert abs(len(moved) - len(KEYS) / 4) < len(KEYS) * 0.05


def test_no_frontend_owns_nothing_when_none_is_announced():
    assert owner(KEYS[0], []) is None


def test_owners_remembered_until_the_frontends_change():
    owners = Owners()
    assert owners.use(["fe-b", "fe-a"]) and not owners.use(["fe-a", "fe-b"])
    assert owners.frontends == ("fe-a", "fe-b")
    assert owners.of(KEYS[0]) == owner(KEYS[0], ["fe-a", "fe-b"])
    assert owners.use(["fe-a"]) and owners.of(KEYS[0]) == "fe-a"
    assert owners.use([]) and owners.of(KEYS[0]) is None
