"""Label selectors on node metadata, in Kubernetes' syntax: a pure parser and matcher.

    zone=a              the key is present with this value (`==` is the same)
    zone!=a             the key is absent, or has another value
    version in (2,3)    the key is present with one of these values
    version notin (1)   the key is absent, or has none of these values
    canary              the key is present
    !canary             the key is absent
    zone=a,!canary      a comma means AND

Keys are metadata keys (`[a-zA-Z0-9._/-]`); values are `[a-zA-Z0-9._/:@+~-]*` (empty allowed
after `=`, `==` and `!=`, as Kubernetes allows). Whitespace around tokens is ignored. A selector
is parsed once where it enters (a scope of GetNodes, WatchNodes, the HTTP API, an xDS resource
name) and compared, hashed and printed in a canonical form: its requirements sorted, duplicates
dropped. Nothing here knows the registry: it raises `SelectorError`, which the caller maps.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

# A selector longer than this is refused before it is read: the ceiling of any transport's
# parse. The setting `selector_max_bytes` (at most this) is checked against `size_bytes` by the
# caller's validation, with a message naming the setting.
CEILING_BYTES = 64 * 1024

_KEY = re.compile(r"[a-zA-Z0-9._/-]+")
_VALUE = re.compile(r"[a-zA-Z0-9._/:@+~-]*")
_TOKEN = re.compile(r"(!=|==|=|!|\(|\)|,|[a-zA-Z0-9._/:@+~-]+)")


class SelectorError(ValueError):
    """The text is not a selector; the message says where and why."""


class Operator(enum.Enum):
    EQUALS = "="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = ""
    NOT_EXISTS = "!"


@dataclass(frozen=True, slots=True)
class Requirement:
    """One condition on one metadata key."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def __lt__(self, other: Requirement) -> bool:  # enums have no order: compare their values
        return (self.key, self.operator.value, self.values) < (
            other.key,
            other.operator.value,
            other.values,
        )

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        operator = self.operator
        if operator is Operator.EQUALS:
            return value == self.values[0]
        if operator is Operator.NOT_EQUALS:
            return value != self.values[0]
        if operator is Operator.IN:
            return value is not None and value in self.values
        if operator is Operator.NOT_IN:
            return value is None or value not in self.values
        if operator is Operator.EXISTS:
            return value is not None
        return value is None

    def __str__(self) -> str:
        operator = self.operator
        if operator is Operator.EXISTS:
            return self.key
        if operator is Operator.NOT_EXISTS:
            return f"!{self.key}"
        if operator in (Operator.IN, Operator.NOT_IN):
            return f"{self.key} {operator.value} ({','.join(self.values)})"
        return f"{self.key}{operator.value}{self.values[0]}"


@dataclass(frozen=True, slots=True)
class Selector:
    """Requirements that must all hold (AND); the empty selector takes everything."""

    requirements: tuple[Requirement, ...] = ()
    size_bytes: int = field(default=0, compare=False)  # of the text it was parsed from

    def __bool__(self) -> bool:
        return bool(self.requirements)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(requirement.matches(labels) for requirement in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(requirement) for requirement in self.requirements)


EVERYTHING = Selector()


def parse_selector(text: str, max_bytes: int = CEILING_BYTES) -> Selector:
    """The selector `text` says, in canonical form ("" and whitespace: `EVERYTHING`).

    Raises:
        SelectorError: longer than `max_bytes` (UTF-8), or not in the syntax above; the
            message names the position and what was expected there.
    """
    size = len(text.encode("utf-8", errors="replace"))
    if size > max_bytes:
        raise SelectorError(f"selector is {size} bytes; the limit is {max_bytes}")
    if not text.strip():
        return EVERYTHING
    tokens = _tokens(text)
    requirements: set[Requirement] = set()
    position = 0
    while True:
        requirement, position = _requirement(tokens, position)
        requirements.add(requirement)
        if position == len(tokens):
            break
        token, at = tokens[position]
        if token != ",":
            raise SelectorError(f"selector: expected ',' at character {at}, found {token!r}")
        position += 1
    return Selector(tuple(sorted(requirements)), size)


def _tokens(text: str) -> list[tuple[str, int]]:
    """The tokens of `text`, each with its position (1-based, for messages)."""
    tokens: list[tuple[str, int]] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return tokens
        match = _TOKEN.match(text, position)
        if match is None:
            raise SelectorError(
                f"selector: unexpected character {text[position]!r} at character "
                f"{position + 1}; keys are [a-zA-Z0-9._/-], values [a-zA-Z0-9._/:@+~-]"
            )
        tokens.append((match.group(1), position + 1))
        position = match.end()


def _requirement(tokens: list[tuple[str, int]], position: int) -> tuple[Requirement, int]:
    token, at = _at(tokens, position, "a key or '!'")
    if token == "!":
        key, at = _at(tokens, position + 1, "a key after '!'")
        return Requirement(_key(key, at), Operator.NOT_EXISTS), position + 2
    key = _key(token, at)
    position += 1
    if position == len(tokens) or tokens[position][0] == ",":
        return Requirement(key, Operator.EXISTS), position
    operator, at = tokens[position]
    if operator in ("=", "==", "!="):
        # An empty value is allowed (`zone=`): it is the end, or the next ','.
        if position + 1 == len(tokens) or tokens[position + 1][0] == ",":
            value = ""
            position += 1
        else:
            raw, value_at = tokens[position + 1]
            value = _value(raw, value_at)
            position += 2
        kind = Operator.NOT_EQUALS if operator == "!=" else Operator.EQUALS
        return Requirement(key, kind, (value,)), position
    if operator in ("in", "notin"):
        values, position = _value_set(tokens, position + 1)
        kind = Operator.IN if operator == "in" else Operator.NOT_IN
        return Requirement(key, kind, values), position
    raise SelectorError(
        f"selector: expected '=', '==', '!=', 'in', 'notin' or ',' after {key!r} at character "
        f"{at}, found {operator!r}"
    )


def _value_set(tokens: list[tuple[str, int]], position: int) -> tuple[tuple[str, ...], int]:
    token, at = _at(tokens, position, "'('")
    if token != "(":
        raise SelectorError(f"selector: expected '(' at character {at}, found {token!r}")
    values: set[str] = set()
    position += 1
    while True:
        token, at = _at(tokens, position, "a value or ')'")
        if token == ")" and not values:
            raise SelectorError(f"selector: empty value set at character {at}")
        values.add(_value(token, at))
        token, at = _at(tokens, position + 1, "',' or ')'")
        position += 2
        if token == ")":
            return tuple(sorted(values)), position
        if token != ",":
            raise SelectorError(f"selector: expected ',' or ')' at character {at}, found {token!r}")


def _at(tokens: list[tuple[str, int]], position: int, expected: str) -> tuple[str, int]:
    if position >= len(tokens):
        raise SelectorError(f"selector: ends where {expected} was expected")
    return tokens[position]


def _key(token: str, at: int) -> str:
    if not _KEY.fullmatch(token) or len(token) > 128:
        raise SelectorError(
            f"selector: {token[:40]!r} at character {at} is not a metadata key (1-128 "
            "characters of [a-zA-Z0-9._/-])"
        )
    return token


def _value(token: str, at: int) -> str:
    if not _VALUE.fullmatch(token):
        raise SelectorError(
            f"selector: {token[:40]!r} at character {at} is not a value ([a-zA-Z0-9._/:@+~-]*)"
        )
    return token
