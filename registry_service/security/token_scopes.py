"""What a bearer token's scopes grant: operations, each narrowed to datacenters and node types.

    scope      = operation [ ":" place ]
    operation  = register | watch | xds | metrics | admin:read | admin:write | admin
    place      = datacenter [ "/" type ]       no type: every type
    datacenter = pattern      type = pattern
    pattern    = "*", or a name in which "*" stands for any run of characters ("dc-*")

    register:dc1/data     Register, KeepAlive and Deregister of data nodes of dc1, nothing else
    watch:*/session       reads (GetNodes, WatchNodes, xDS, the HTTP API) of session nodes
    admin:read:dc2        the admin reads about dc2's nodes (audit, one node, the node list)
    admin:write:dc1/data  the operator's actions on dc1's data nodes (maintenance, evict, ...)

A plain scope (`register`, `watch`, ...) is the same as `<operation>:*/*`: everything, as
before scopes had places. `metrics` takes no place: a frontend's metrics cover every datacenter
and type. What a scope grants besides itself: `admin` is `admin:read` and `admin:write` at its
place; `watch` grants `xds` at its place (both read the same lists); only the plain `admin:read`
(or `admin`) grants `metrics`, since the metrics name every datacenter and type.

A read of a whole scope (a list, a watch) is allowed only when the grants cover every
(datacenter, type) it asks for; an empty set of datacenters or types asks for all of them, which
only a `*` place covers (`dc-*` names some datacenters, not every one). Patterns are lower-case
letters, digits, `-` and `*`, at most 64 characters, so a pattern costs at most 64 x 64 steps to
match against a name of at most 64 (a longer name matches nothing: no valid name is that long).
Nothing here knows a transport or the service's types: names in, yes or no (or the missing
scope) out.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

OPERATIONS = ("register", "watch", "xds", "metrics", "admin:read", "admin:write")
"""The operations a grant names (`admin` in a tokens file is read and write)."""
EVERY = "*"
_PATTERN = re.compile(r"[a-z0-9*-]{1,64}")
_MAX_NAME_LENGTH = 64
_TWO_PART = ("admin:read", "admin:write")
_ANSWERS_KEPT = 512


class ScopeError(ValueError):
    """A scope that cannot be read; the message says what is wrong with it, on one line."""


@dataclass(frozen=True, slots=True)
class Grant:
    """One operation, allowed on the nodes whose datacenter and type match its patterns."""

    operation: str
    datacenter: str = EVERY
    node_type: str = EVERY

    def __str__(self) -> str:
        if self.node_type != EVERY:
            return f"{self.operation}:{self.datacenter}/{self.node_type}"
        if self.datacenter != EVERY:
            return f"{self.operation}:{self.datacenter}"
        return self.operation

    def allows(self, datacenter: str | None, node_type: str | None) -> bool:
        """Whether this grant takes the datacenter and the type; None stands for every one of
        them, which only `*` takes."""
        return _takes(self.datacenter, datacenter) and _takes(self.node_type, node_type)


def _takes(pattern: str, name: str | None) -> bool:
    if pattern == EVERY:
        return True
    if name is None:
        return False
    return glob_match(pattern, name) if EVERY in pattern else pattern == name


def glob_match(pattern: str, name: str) -> bool:
    """Whether `name` matches `pattern`, where `*` is any run of characters (none included).
    Greedy with one backtrack point (the last star): O(len(pattern) x len(name)) at worst."""
    if len(name) > _MAX_NAME_LENGTH:
        return False
    p = n = 0
    star = -1
    resume = 0
    while n < len(name):
        if p < len(pattern) and pattern[p] == "*":
            star, resume = p, n
            p += 1
        elif p < len(pattern) and pattern[p] == name[n]:
            p += 1
            n += 1
        elif star >= 0:
            resume += 1
            p, n = star + 1, resume
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def _pattern(text: str, what: str, scope: str) -> str:
    if not text:
        raise ScopeError(f"scope {scope!r} names no {what}")
    if not _PATTERN.fullmatch(text):
        raise ScopeError(
            f"scope {scope!r}: a {what} is lower-case letters, digits, '-' and '*' (any run), "
            "at most 64 characters"
        )
    return re.sub(r"\*+", "*", text)


def parse_scope(text: str) -> tuple[Grant, ...]:
    """The grants of one scope of a tokens file, implied ones included (see the module
    docstring).

    Raises:
        ScopeError: an unknown operation, a malformed place, or a place on `metrics`.
    """
    shown = text if len(text) <= 80 else f"{text[:80]}..."
    operation, place = text, ""
    for candidate in (*_TWO_PART, *OPERATIONS, "admin"):
        if text == candidate or text.startswith(f"{candidate}:"):
            operation, place = candidate, text[len(candidate) + 1 :]
            break
    else:
        known = ", ".join((*OPERATIONS, "admin"))
        raise ScopeError(f"unknown scope {shown!r} (scopes: {known}; each may take :dc/type)")
    if text.endswith(":"):
        raise ScopeError(f"scope {shown!r} names no datacenter after ':'")
    datacenter = node_type = EVERY
    if place:
        if operation == "metrics":
            raise ScopeError(
                f"scope {shown!r}: metrics takes no datacenter or type (a frontend's metrics "
                "cover all of them)"
            )
        head, slash, tail = place.partition("/")
        datacenter = _pattern(head, "datacenter", shown)
        if slash:
            node_type = _pattern(tail, "type", shown)
    return _with_implied(operation, datacenter, node_type)


def _with_implied(operation: str, datacenter: str, node_type: str) -> tuple[Grant, ...]:
    operations = {
        "admin": ("admin:read", "admin:write"),
        "watch": ("watch", "xds"),
    }.get(operation, (operation,))
    grants = [Grant(name, datacenter, node_type) for name in operations]
    if "admin:read" in operations and datacenter == node_type == EVERY:
        grants.append(Grant("metrics"))
    return tuple(grants)


def parse_scopes(text: str) -> Grants:
    """The grants of a tokens file's comma-separated scopes (`register:dc1/data,watch`)."""
    return Grants(grant for scope in text.split(",") for grant in parse_scope(scope))


class Grants:
    """Everything one token may do: a set of grants."""

    __slots__ = ("_answers", "_by_operation", "_everywhere")

    def __init__(self, grants: Iterable[Grant]) -> None:
        by_operation: dict[str, list[Grant]] = {}
        for grant in grants:
            if grant not in by_operation.setdefault(grant.operation, []):
                by_operation[grant.operation].append(grant)
        self._by_operation = {op: tuple(found) for op, found in by_operation.items()}
        # Plain scopes, answered without matching: the common case, and KeepAlive's hot path.
        self._everywhere = frozenset(
            op
            for op, found in by_operation.items()
            if any(g.datacenter == g.node_type == EVERY for g in found)
        )
        # Narrowed grants: answers by (operation, datacenter, type), a few hundred at most (the
        # pairs a fleet renews repeat; names sent to miss the cache only refill it).
        self._answers: dict[tuple[str, str, str], bool] = {}

    def __repr__(self) -> str:
        return f"Grants({', '.join(self.scopes())})"

    def scopes(self, operation: str | None = None) -> list[str]:
        """The grants as scopes (of one operation, or all), for messages."""
        return [
            str(grant)
            for op, grants in self._by_operation.items()
            if operation is None or op == operation
            for grant in grants
        ]

    def has(self, operation: str) -> bool:
        """Whether any grant names the operation, wherever it is narrowed to."""
        return operation in self._by_operation

    def everywhere(self, operation: str) -> bool:
        """Whether the operation is granted on every datacenter and type (a plain scope)."""
        return operation in self._everywhere

    def allows(self, operation: str, datacenter: str, node_type: str) -> bool:
        """Whether the operation is granted on the nodes of this datacenter and type."""
        if operation in self._everywhere:
            return True
        question = (operation, datacenter, node_type)
        answer = self._answers.get(question)
        if answer is None:
            grants = self._by_operation.get(operation, ())
            answer = any(g.allows(datacenter, node_type) for g in grants)
            if len(self._answers) >= _ANSWERS_KEPT:
                self._answers.clear()
            self._answers[question] = answer
        return answer

    def missing(
        self, operation: str, datacenters: Collection[str], types: Collection[str]
    ) -> str | None:
        """The first scope the grants lack to cover every (datacenter, type) pair asked for (an
        empty collection asks for every one), or None when they cover them all."""
        if operation in self._everywhere:
            return None
        grants = self._by_operation.get(operation, ())
        wanted_datacenters: Collection[str | None] = sorted(datacenters) or (None,)
        wanted_types: Collection[str | None] = sorted(types) or (None,)
        for datacenter in wanted_datacenters:
            for node_type in wanted_types:
                if not any(grant.allows(datacenter, node_type) for grant in grants):
                    return str(Grant(operation, datacenter or EVERY, node_type or EVERY))
        return None


EVERYTHING = Grants(Grant(operation) for operation in OPERATIONS)
"""What a caller may do when the frontend has no tokens (or its single admin token)."""
