"""xDS resource names: what `xds:///<name>` asks for (docs/decisions.md D91).

    data                    every node of type `data`, in every datacenter
    data.dc1                the `data` nodes of datacenter dc1
    data/zone=a,!canary     with a label selector on metadata (selectors.py)
    data.dc1/version%20in%20(2,3)

A type and a datacenter never contain `.` or `/`, so the first `.` and the first `/` split the
name unambiguously; a selector may contain `/` (metadata keys do). The name is percent-decoded
once (gRPC C-core, Go and Java decode a target's path; grpc-js passes it as written), so
`%20` stands for the spaces `in` and `notin` need. A URI query (`?...`) is no part of a name:
grpcio drops it from an `xds:` target. Nothing here raises: a name that does not parse is a
resource that does not exist (the xDS spec's answer), never an error.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from registry_service.domain import Limits, Scope
from registry_service.selectors import SelectorError, parse_selector

_TYPE = re.compile(r"[a-z][a-z0-9-]*")
_DATACENTER = re.compile(r"[a-z0-9][a-z0-9-]*")


@dataclass(frozen=True, slots=True)
class Target:
    """What one resource name selects: a node type, optionally one datacenter, a selector."""

    scope: Scope
    node_type: str
    datacenter: str = ""


def parse_name(name: str, limits: Limits) -> Target | None:
    """The target a resource name names, or None when it names nothing (does not exist)."""
    if len(name) > limits.type_max_length + limits.datacenter_max_length + 1 + (
        3 * limits.selector_max_bytes + 1
    ):
        return None
    try:
        decoded = urllib.parse.unquote(name, errors="strict") if "%" in name else name
    except UnicodeDecodeError:
        return None
    head, slash, selector_text = decoded.partition("/")
    node_type, dot, datacenter = head.partition(".")
    if not _TYPE.fullmatch(node_type) or len(node_type) > limits.type_max_length:
        return None
    if dot and (
        not _DATACENTER.fullmatch(datacenter) or len(datacenter) > limits.datacenter_max_length
    ):
        return None
    if slash and len(selector_text.encode()) > limits.selector_max_bytes:
        return None
    try:
        selector = parse_selector(selector_text) if slash else parse_selector("")
    except SelectorError:
        return None
    if slash and not selector:
        return None  # `data/`: say it without the slash
    datacenters = frozenset({datacenter}) if dot else frozenset()
    return Target(Scope(datacenters, frozenset({node_type}), selector), node_type, datacenter)
