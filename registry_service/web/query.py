"""The HTTP API's query parameters, read strictly: an unknown parameter or a malformed value is
an InvalidArgumentError naming it (400), never silently ignored (a misspelt `?datacentre=dc1`
would otherwise answer every datacenter). Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from multidict import MultiMapping

from registry_service.domain import Consistency, Scope, WatchResume
from registry_service.errors import InvalidArgumentError
from registry_service.validation import selector_of

# ASCII digits only: str.isdigit() and re's \d also take "²" or "①", which int() refuses.
_DURATION = re.compile(r"([0-9]{1,12}(?:\.[0-9]{1,9})?)(ms|s|m)?")
_REVISION = re.compile(r"[0-9]{1,19}")
_MAX_REVISION = 2**63 - 1  # etcd's revisions are int64
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}
_SCOPE_PARAMETERS = ("datacenter", "type", "selector", "healthy")


@dataclass(frozen=True)
class NodesQuery:
    """GET /v1/nodes: the scope, the consistency, and for a blocking read the index and wait."""

    scope: Scope
    consistency: Consistency
    index: int = 0
    """Block until the scope changes after this revision (0: answer at once)."""
    wait_seconds: float = 0.0
    remote_index: Mapping[str, int] = field(default_factory=dict)
    """Per followed datacenter in the scope, its part of the index (its registry's revision)."""


def accept_only(query: MultiMapping[str], known: tuple[str, ...]) -> None:
    """Refuses a parameter outside `known`, naming the ones the path takes."""
    unknown = sorted(set(query) - set(known))
    if unknown:
        takes = ", ".join(known) or "no parameter"
        raise InvalidArgumentError(
            f"unknown query parameter {', '.join(unknown)}: this path takes {takes}"
        )


def _names(query: MultiMapping[str], name: str) -> frozenset[str]:
    """A repeatable parameter, each value also a comma-separated list."""
    parts = (part.strip() for value in query.getall(name, []) for part in value.split(","))
    return frozenset(part for part in parts if part)


def scope_of(query: MultiMapping[str]) -> Scope:
    """`?datacenter=dc1&type=data,meta` (repeatable; none: every one), `&selector=zone=a` (a
    label selector on metadata, given once) and `&healthy=true` (only healthy nodes: UP, no
    failing check). The names are validated where GetNodes validates them (the registry), with
    the same messages."""
    selector = selector_of(_single(query, "selector") or "")
    return Scope(
        _names(query, "datacenter"),
        _names(query, "type"),
        selector,
        flag_of(_single(query, "healthy"), "healthy"),
    )


def _single(query: MultiMapping[str], name: str) -> str | None:
    values = query.getall(name, [])
    if len(values) > 1:
        raise InvalidArgumentError(f"give {name} once, not {len(values)} times")
    return values[0] if values else None


def revision_of(value: str | None, name: str) -> int:
    """A revision given by a client: a whole number >= 0 in ASCII digits, at most etcd's
    largest (absent: 0)."""
    if value is None or value == "":
        return 0
    if not _REVISION.fullmatch(value) or int(value) > _MAX_REVISION:
        shown = value if len(value) <= 40 else f"{value[:40]}... ({len(value)} characters)"
        raise InvalidArgumentError(f"{name} must be a revision, a whole number >= 0; got {shown!r}")
    return int(value)


def duration_of(value: str, name: str) -> float:
    """`30s`, `1.5s`, `500ms`, `2m`, or a number of seconds."""
    match = _DURATION.fullmatch(value.strip())
    if not match:
        shown = value if len(value) <= 40 else f"{value[:40]}... ({len(value)} characters)"
        raise InvalidArgumentError(
            f"{name} must be a duration such as 30s, 500ms or 2m (or seconds); got {shown!r}"
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def consistency_of(value: str | None) -> Consistency:
    """The `consistency` parameter (linearizable when absent); anything else is a 400."""
    if value is None or value == "":
        return Consistency.LINEARIZABLE
    try:
        return Consistency[value.upper()]
    except KeyError:
        raise InvalidArgumentError(
            f"consistency must be linearizable (the default: every write completed before the "
            f"call is in the answer) or cached (this frontend's view at once); got {value!r}"
        ) from None


def nodes_query(query: MultiMapping[str], max_wait_seconds: float) -> NodesQuery:
    """GET /v1/nodes?datacenter=&type=&consistency=&index=&wait=. A wait beyond the maximum is
    cut to it (Consul's rule); an index without a wait, or with `wait=0`, waits the maximum
    (Consul takes a zero wait as its default wait too: a Consul-style loop that sends one
    must block, not poll as fast as it can)."""
    accept_only(query, (*_SCOPE_PARAMETERS, "consistency", "index", "wait"))
    index, remote_index = vector_of(_single(query, "index") or "", "index")
    wait = _single(query, "wait")
    if wait is not None and not index and not remote_index:
        raise InvalidArgumentError("wait needs an index: ?index=R&wait=30s blocks until a change")
    wait_seconds = max_wait_seconds if wait is None else duration_of(wait, "wait")
    if wait_seconds <= 0:
        wait_seconds = max_wait_seconds
    return NodesQuery(
        scope=scope_of(query),
        consistency=consistency_of(_single(query, "consistency")),
        index=index,
        wait_seconds=min(wait_seconds, max_wait_seconds),
        remote_index=remote_index,
    )


def node_query(query: MultiMapping[str]) -> Consistency:
    """GET /v1/nodes/{dc}/{type}/{id}?consistency=."""
    accept_only(query, ("consistency",))
    return consistency_of(_single(query, "consistency"))


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def flag_of(value: str | None, name: str) -> bool:
    """A true/false query parameter (false when absent); anything else is a 400 naming it."""
    if value is None:
        return False
    flag = _BOOLEANS.get(value.strip().lower())
    if flag is None:
        raise InvalidArgumentError(f"{name} must be true or false; got {value!r}")
    return flag


def vector_of(text: str, name: str) -> tuple[int, dict[str, int]]:
    """`R` (this frontend's etcd's revision), or `R,dc2=455,dc3=17`: with each followed
    datacenter's revision in its own registry's revisions (federation). Event ids and blocking
    reads' indexes have this form."""
    local, *remotes = text.strip().split(",")
    revisions: dict[str, int] = {}
    for part in remotes:
        datacenter, equals, revision = part.partition("=")
        if not equals:
            raise InvalidArgumentError(
                f"{name} must be a revision, or R,dc=R,... with datacenter revisions; got {text!r}"
            )
        revisions[datacenter.strip()] = revision_of(revision.strip(), f"{name} {datacenter}")
    return revision_of(local, name), revisions


def resume_of(text: str, name: str, federated: bool) -> WatchResume:
    """An event id as a client sends it back (vector_of); one naming datacenters resumes only a
    stream with datacenter revisions."""
    revision, revisions = vector_of(text, name)
    if revisions and not federated:
        raise InvalidArgumentError(
            f"{name} {text!r} names datacenters: it resumes a stream of ?datacenter_revisions=true"
        )
    return WatchResume(revision, revisions, federated)


def watch_query(query: MultiMapping[str], headers: Mapping[str, str]) -> tuple[Scope, WatchResume]:
    """GET /v1/watch?datacenter=&type=&datacenter_revisions=&last_event_id=: the scope and where
    to resume. The `Last-Event-ID` header wins over the parameter: it is what a reconnecting
    EventSource sends, with the URL (and its parameter) of its first connection."""
    accept_only(query, (*_SCOPE_PARAMETERS, "datacenter_revisions", "last_event_id"))
    federated = flag_of(_single(query, "datacenter_revisions"), "datacenter_revisions")
    header = headers.get("Last-Event-ID")
    if header is not None and header.strip():
        resume = resume_of(header, "the Last-Event-ID header", federated)
    else:
        resume = resume_of(_single(query, "last_event_id") or "", "last_event_id", federated)
    return scope_of(query), resume
