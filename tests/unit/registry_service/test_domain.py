from __future__ import annotations

import pytest

from registry_service.domain import (
    Limits,
    Node,
    NodeKey,
    NodeStatus,
    Scope,
)
from registry_service.errors import InvalidArgumentError
from registry_service.validation import (
    canonical_address,
    validate_key,
    validate_metadata,
    validate_node,
    validate_ttl,
)

LIMITS = Limits()


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("Host.Example.COM:80", "host.example.com:80"),
        ("host.example.:80", "host.example:80"),
        ("10.0.0.1:65535", "10.0.0.1:65535"),
        ("[2001:DB8:0:0:0:0:0:1]:443", "[2001:db8::1]:443"),
        ("[::ffff:10.0.0.1]:1", "[::ffff:a00:1]:1"),
        ("a:1", "a:1"),
    ],
)
def test_addresses_are_stored_in_canonical_form(given, canonical):
    assert canonical_address(given) == canonical


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "host",
        ":80",
        "host:",
        "host:0",
        "host:65536",
        "host:-1",
        "host:8o",
        "256.0.0.1:80",
        "1.2.3:80",
        "::1:80",
        "[::1:80",
        "[zz::1]:80",
        "-host:80",
        "ho_st:80",
        "a..b:80",
        f"{'a' * 64}.com:80",
    ],
)
def test_bad_addresses_are_rejected(bad):
    with pytest.raises(InvalidArgumentError):
        canonical_address(bad)


def test_key_limits_are_settings():
    with pytest.raises(InvalidArgumentError, match="the limit is 5"):
        validate_key(NodeKey("dc", "t", "abcdef"), Limits(id_max_length=5))
    assert validate_key(NodeKey("dc", "t", "abcde"), Limits(id_max_length=5)).id == "abcde"


@pytest.mark.parametrize(
    "key",
    [NodeKey("dc", "t", "a.b_c-1"), NodeKey("0dc", "t-1", "9"), NodeKey("dc", "t", "x" * 63)],
)
def test_good_keys_pass_unchanged(key):
    assert validate_key(key, LIMITS) == key


def test_metadata_total_counts_keys_and_values_in_bytes():
    limits = Limits(metadata_max_total_bytes=10)
    assert validate_metadata({"ab": "cdefghij"}, limits) == {"ab": "cdefghij"}
    with pytest.raises(InvalidArgumentError, match="12 bytes"):
        validate_metadata({"ab": "cdefghijé"}, limits)  # 2 + 8 + 2: é is two bytes


def test_ttl_zero_is_the_default_and_bounds_are_inclusive():
    assert validate_ttl(0, LIMITS) == 10
    assert validate_ttl(3, LIMITS) == 3
    assert validate_ttl(3600, LIMITS) == 3600
    for bad in (1, 2, 3601, -5):
        with pytest.raises(InvalidArgumentError, match="out of range"):
            validate_ttl(bad, LIMITS)


def test_validate_node_drops_client_incarnation_and_refuses_suspect():
    given = Node("n", "data", "dc", "H:1", {}, incarnation=42)
    assert validate_node(given, LIMITS) == Node("n", "data", "dc", "h:1", {}, incarnation=0)
    with pytest.raises(InvalidArgumentError, match="SUSPECT"):
        validate_node(Node("n", "data", "dc", "h:1", status=NodeStatus.SUSPECT), LIMITS)


def test_empty_scope_matches_everything_and_sets_are_conjunctive():
    key = NodeKey("dc1", "data", "n")
    assert Scope().matches(key)
    assert Scope(frozenset({"dc1"}), frozenset({"data"})).matches(key)
    assert not Scope(frozenset({"dc1"}), frozenset({"session"})).matches(key)
    assert not Scope(datacenters=frozenset({"dc2"})).matches(key)
