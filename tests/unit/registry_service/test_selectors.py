"""Label selectors: Kubernetes syntax, canonical form, semantics, hostile input, the limit."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry_service.domain import Limits, Scope
from registry_service.errors import InvalidArgumentError
from registry_service.selectors import (
    CEILING_BYTES,
    EVERYTHING,
    SelectorError,
    parse_selector,
)
from registry_service.validation import selector_of, validate_scope

LABELS = {"zone": "a", "version": "2", "canary": ""}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("zone=a", True),
        ("zone==a", True),
        ("zone=b", False),
        ("zone!=a", False),
        ("zone!=b", True),
        ("missing!=x", True),  # Kubernetes: != also takes nodes without the key
        ("version in (2,3)", True),
        ("version in (3)", False),
        ("missing in (1)", False),
        ("version notin (1)", True),
        ("version notin (1,2)", False),
        ("missing notin (1)", True),
        ("canary", True),  # present, even with an empty value
        ("!canary", False),
        ("missing", False),
        ("!missing", True),
        ("canary=", True),  # the empty value
        ("zone=a,version in (2),!missing", True),
        ("zone=a,version=3", False),  # comma: AND
    ],
)
def test_selector_semantics_follow_kubernetes(text, matches):
    assert parse_selector(text).matches(LABELS) is matches


def test_whitespace_order_and_duplicates_do_not_change_a_selector():
    a = parse_selector("zone=a,version in (3,2),!canary")
    b = parse_selector("  !canary ,version in(2, 3,3), zone==a, zone=a ")
    assert a == b and hash(a) == hash(b)
    assert str(a) == "!canary,version in (2,3),zone=a"
    assert parse_selector(str(a)) == a


def test_the_empty_selector_takes_everything():
    assert parse_selector("") is EVERYTHING and parse_selector("   ") is EVERYTHING
    assert not EVERYTHING and EVERYTHING.matches({})


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("zone=a=", "expected ',' at character 7"),
        ("x in ()", "empty value set"),
        ("x in (a", "ends where ',' or ')' was expected"),
        ("x in a", "expected '(' at character 6"),
        ("x in (a b)", "expected ',' or ')'"),
        ("!", "ends where a key after '!' was expected"),
        ("=a", "is not a metadata key"),
        ("x y", "expected '=', '==', '!=', 'in', 'notin' or ','"),
        ("zone=a,", "ends where a key or '!' was expected"),
        (",", "is not a metadata key"),
        ("zone=a;b", "unexpected character ';' at character 7"),
        ("zone=\u00e9", "unexpected character"),
        ("zone=a\x00", "unexpected character '\\x00'"),
        ("a:b=1", "is not a metadata key"),
        ("k" * 129, "is not a metadata key"),
        ("((((", "is not a metadata key"),
    ],
)
def test_malformed_selectors_say_where_and_why(text, says):
    with pytest.raises(SelectorError) as raised:
        parse_selector(text)
    assert says in str(raised.value)


def test_a_selector_over_the_ceiling_is_refused_unread():
    with pytest.raises(SelectorError, match=f"the limit is {CEILING_BYTES}"):
        parse_selector("a=b," * CEILING_BYTES)


def test_client_input_is_checked_against_the_setting():
    limits = Limits(selector_max_bytes=16)
    assert selector_of("zone=a").matches({"zone": "a"})
    with pytest.raises(InvalidArgumentError, match="character"):
        selector_of("zone=(")
    # The size is checked with the scope (validate_scope), against selector_max_bytes.
    scope = Scope(selector=selector_of("version notin (1,2,3)"))
    with pytest.raises(InvalidArgumentError, match="selector_max_bytes"):
        validate_scope(scope, limits)


@given(st.text(max_size=200))
def test_any_text_parses_or_is_refused_cleanly(text):
    try:
        selector = parse_selector(text)
    except SelectorError:
        return
    assert parse_selector(str(selector)) == selector
    selector.matches(LABELS)


@given(st.text(alphabet="az=!,() in", max_size=60))
def test_near_misses_of_the_syntax_parse_or_are_refused_cleanly(text):
    with contextlib.suppress(SelectorError):
        parse_selector(text)
