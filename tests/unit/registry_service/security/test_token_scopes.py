"""The scope grammar of the tokens file (token_scopes.py): what each scope grants, how patterns
match names, what a narrowed token may read, and what is refused when the file is read."""

from __future__ import annotations

import pytest

from registry_service.domain import Limits, NodeKey, Scope
from registry_service.errors import InvalidArgumentError, PermissionDeniedError
from registry_service.security.bearer_tokens import Presented, TokenFileError, TokenTable
from registry_service.security.permissions import ANYONE, Caller, caller_of
from registry_service.security.token_scopes import (
    Grant,
    ScopeError,
    glob_match,
    parse_scope,
    parse_scopes,
)


def scopes_of(text: str) -> set[str]:
    return set(parse_scopes(text).scopes())


@pytest.mark.parametrize(
    ("text", "grants"),
    [
        ("register", {"register"}),
        ("register:*", {"register"}),
        ("register:*/*", {"register"}),
        ("register:dc1", {"register:dc1"}),
        ("register:dc1/*", {"register:dc1"}),
        ("register:dc1/data", {"register:dc1/data"}),
        ("register:*/data", {"register:*/data"}),
        ("register:dc-**/da*a", {"register:dc-*/da*a"}),
        ("watch", {"watch", "xds"}),
        ("watch:*/session", {"watch:*/session", "xds:*/session"}),
        ("xds:dc1", {"xds:dc1"}),
        ("metrics", {"metrics"}),
        ("admin:read", {"admin:read", "metrics"}),
        ("admin:read:dc2", {"admin:read:dc2"}),
        ("admin:write:dc1/data", {"admin:write:dc1/data"}),
        ("admin", {"admin:read", "admin:write", "metrics"}),
        ("admin:dc1", {"admin:read:dc1", "admin:write:dc1"}),
        # `admin:read` is the operation; a datacenter named `read` is `admin:read/*`.
        ("admin:read/*", {"admin:read:read", "admin:write:read"}),
        ("admin:reader", {"admin:read:reader", "admin:write:reader"}),
    ],
)
def test_each_scope_grants_its_operation_at_its_place_and_what_it_implies(text, grants):
    assert scopes_of(text) == grants


def test_a_list_of_scopes_grants_each_once():
    grants = parse_scopes("register:dc1/data,register:dc1/data,watch,xds")
    assert grants.scopes() == ["register:dc1/data", "watch", "xds"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "unknown scope ''"),
        ("regster", "unknown scope 'regster'"),
        ("Register", "unknown scope 'Register'"),
        ("registered", "unknown scope 'registered'"),
        ("register:", "names no datacenter"),
        ("admin:read:", "names no datacenter"),
        ("register:/data", "names no datacenter"),
        ("register:dc1/", "names no type"),
        ("register:DC1", "lower-case letters"),
        ("register:dc1/data/x", "lower-case letters"),
        ("register:dc1:data", "lower-case letters"),
        ("register:dc_1", "lower-case letters"),
        ("register:dc1/dätä", "lower-case letters"),
        ("register:dc1\x00", "lower-case letters"),
        ("register:?", "lower-case letters"),
        ("register:[a-z]", "lower-case letters"),
        ("register:" + "a" * 65, "at most 64 characters"),
        ("metrics:dc1", "metrics takes no datacenter or type"),
        ("admin:read:dc1/data/more", "lower-case letters"),
    ],
)
def test_a_malformed_scope_is_refused_saying_what_is_wrong(text, reason):
    with pytest.raises(ScopeError, match=None) as caught:
        parse_scope(text)
    message = str(caught.value)
    assert reason in message
    assert "\n" not in message and len(message) < 300


def test_a_huge_scope_is_refused_with_a_short_message():
    with pytest.raises(ScopeError) as caught:
        parse_scope("register:" + "*" * 100_000)
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("dc1", "dc1", True),
        ("dc1", "dc10", False),
        ("dc*", "dc", True),
        ("dc*", "dc10", True),
        ("*-eu", "dc-eu", True),
        ("*-eu", "dc-us", False),
        ("d*c*1", "dxxcyy1", True),
        ("d*c*1", "dxxcyy2", False),
        ("*a*a*a*a*b", "a" * 60, False),
        ("*", "", True),
        ("a", "", False),
    ],
)
def test_a_pattern_matches_names_where_star_is_any_run(pattern, name, matches):
    assert glob_match(pattern, name) is matches


@pytest.mark.timeout(10)
def test_the_worst_pattern_against_the_longest_name_ends():
    # A backtracking regular expression (fnmatch of old) takes exponential time here; the
    # matcher takes at most len(pattern) x len(name) steps, and no name is longer than 64.
    assert not glob_match("*a" * 32, "a" * 63 + "b")
    assert glob_match("*a" * 32, "a" * 64)
    assert not glob_match("*", "a" * 100_000)


def test_a_narrowed_grant_allows_only_its_datacenters_and_types():
    grants = parse_scopes("register:dc1/data,register:dc-*/session")
    assert grants.allows("register", "dc1", "data")
    assert not grants.allows("register", "dc2", "data")
    assert not grants.allows("register", "dc1", "session")
    assert grants.allows("register", "dc-eu", "session")
    assert not grants.allows("watch", "dc1", "data")
    assert grants.has("register") and not grants.has("watch")
    assert not grants.everywhere("register")


def test_a_read_of_a_scope_needs_every_datacenter_and_type_it_asks_for():
    grants = parse_scopes("watch:*/session,watch:dc1")
    assert grants.missing("watch", (), ("session",)) is None
    assert grants.missing("watch", ("dc1",), ()) is None
    assert grants.missing("watch", ("dc1", "dc2"), ("session",)) is None
    # every type of dc2: only session is granted there
    assert grants.missing("watch", ("dc2",), ()) == "watch:dc2"
    # every datacenter and type
    assert grants.missing("watch", (), ()) == "watch"
    # data nodes of every datacenter: only dc1's
    assert grants.missing("watch", (), ("data",)) == "watch:*/data"
    # a pattern names some datacenters, never "every one"
    assert parse_scopes("watch:dc-*").missing("watch", (), ()) == "watch"


def test_plain_scopes_grant_everything_as_before():
    grants = parse_scopes("register,watch,admin")
    for operation in ("register", "watch", "xds", "admin:read", "admin:write", "metrics"):
        assert grants.everywhere(operation)
    assert Grant("register") == Grant("register", "*", "*")


def test_the_tokens_file_reads_narrowed_scopes_and_names_the_line_of_a_bad_one(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("# name scopes token\nfleet register:dc1/data,watch:dc1 t1\n")
    table = TokenTable.load(str(path))
    principal = table.identify([("authorization", "Bearer t1")])
    assert principal is not None and principal.name == "fleet"
    assert principal.grants.scopes() == ["register:dc1/data", "watch:dc1", "xds:dc1"]
    path.write_text("fleet register:dc1/data t1\nother register:DC2 t2\n")
    with pytest.raises(TokenFileError, match=r"tokens:2: scope 'register:DC2': a datacenter"):
        TokenTable.load(str(path))


def test_a_missing_token_and_an_unknown_one_are_told_apart_without_naming_any_token():
    table = TokenTable.parse("fleet register t1\n", "tokens")
    assert table.authenticate([]) is Presented.NO_TOKEN
    assert table.authenticate([("authorization", "Basic dTpw")]) is Presented.NO_TOKEN
    assert table.authenticate([("authorization", "Bearer ")]) is Presented.NO_TOKEN
    assert table.authenticate([("authorization", "Bearer t2")]) is Presented.UNKNOWN_TOKEN
    assert table.authenticate([("authorization", "bearer t1")]).name == "fleet"  # type: ignore[union-attr]


def test_a_replaced_table_answers_with_the_new_tokens_at_once():
    table = TokenTable.parse("fleet register t1\n", "tokens")
    table.replace(TokenTable.parse("other watch t2\n", "tokens"))
    assert table.authenticate([("authorization", "Bearer t1")]) is Presented.UNKNOWN_TOKEN
    assert table.identify([("authorization", "Bearer t2")]).name == "other"  # type: ignore[union-attr]


def test_a_refusal_names_the_scope_needed_and_only_the_callers_own_scopes():
    caller = Caller("fleet-dc1", parse_scopes("register:dc1/data,watch"))
    caller.require("register", NodeKey("dc1", "data", "n1"))
    with pytest.raises(PermissionDeniedError) as caught:
        caller.require("register", NodeKey("dc2", "data", "n1"))
    assert str(caught.value) == (
        "token 'fleet-dc1' lacks register:dc2/data (its register scopes: register:dc1/data)"
    )
    with pytest.raises(PermissionDeniedError, match=r"lacks admin:read \(every datacenter"):
        Caller("auditor", parse_scopes("admin:read:dc2")).require_everywhere("admin:read")
    with pytest.raises(PermissionDeniedError, match=r"lacks watch:\*/data .*ask only for"):
        Caller("t", parse_scopes("watch:dc1")).require_scope(
            "watch", Scope(frozenset(), frozenset({"data"}))
        )


def test_a_malformed_key_is_invalid_before_it_is_refused():
    caller = Caller("fleet", parse_scopes("register:dc1/data"))
    with pytest.raises(InvalidArgumentError):
        caller.require("register", NodeKey("DC2", "data", "n1"), Limits())
    with pytest.raises(InvalidArgumentError):
        caller.require_scope("watch", Scope(frozenset({"Bad DC"})), Limits())


def test_without_tokens_every_caller_may_do_everything():
    assert caller_of(TokenTable({}), []) is ANYONE
    ANYONE.require("register", NodeKey("any", "type", "id"))
    ANYONE.require_everywhere("admin:write")


def test_answers_kept_for_narrowed_grants_stay_few_and_right_whatever_names_are_sent():
    grants = parse_scopes("register:dc-*/data")
    for index in range(5_000):  # names a hostile client makes up
        assert grants.allows("register", f"dc-{index}", "data")
        assert not grants.allows("register", f"x{index}", "data")
    assert len(grants._answers) <= 512
    assert grants.allows("register", "dc-eu", "data") and not grants.allows(
        "register", "eu", "data"
    )
