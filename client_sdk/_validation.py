"""What the SDK checks before a call leaves the process.

Only what holds for every deployment: fields that must be present, types the wire cannot carry,
ranges of the wire's own integers, values only the registry may set. Patterns and length limits
are the frontend's settings and stay its to check (its message names the setting). A broken rule
raises InvalidArgumentError naming the argument, never a bare ValueError or TypeError.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from client_sdk._checks import Check, CheckKind
from client_sdk._errors import invalid_argument
from client_sdk._models import (
    Consistency,
    Health,
    Node,
    NodeKey,
    NodeStatus,
    Scope,
)

TTL_MAX_SECONDS = 2**32 - 1  # the wire's uint32


def check_ttl(ttl_seconds: object) -> None:
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int):
        raise invalid_argument(
            f"ttl_seconds must be a whole number of seconds, not {ttl_seconds!r}"
        )
    if not 0 <= ttl_seconds <= TTL_MAX_SECONDS:
        raise invalid_argument(
            f"ttl_seconds must be from 0 (the registry's default) to {TTL_MAX_SECONDS}, "
            f"not {ttl_seconds}"
        )


def check_text(field: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise invalid_argument(f"{field} is required (a non-empty string), not {value!r}")


def check_metadata(metadata: object) -> None:
    if not isinstance(metadata, Mapping):
        raise invalid_argument(f"metadata must be a mapping of strings, not {metadata!r}")
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise invalid_argument(f"metadata {key!r}: keys and values must be strings")


def check_status(status: object) -> None:
    if not isinstance(status, NodeStatus):
        raise invalid_argument(f"status must be a NodeStatus, not {status!r}")
    if status in (NodeStatus.SUSPECT, NodeStatus.OUT_OF_SERVICE):
        raise invalid_argument(
            f"status {status.value} is set by the registry or an operator only; use UP or DRAINING"
        )


def check_health(health: object) -> None:
    if not isinstance(health, Health):
        raise invalid_argument(f"health must be a client_sdk.Health, not {health!r}")


def check_node(node: object) -> None:
    """A node to register: identity and address present, metadata strings, status UP/DRAINING."""
    if not isinstance(node, Node):
        raise invalid_argument(f"node must be a client_sdk.Node, not {node!r}")
    for field in ("id", "type", "datacenter", "address"):
        check_text(field, getattr(node, field))
    check_metadata(node.metadata)
    check_status(node.status)
    check_health(node.health)
    if node.damped:
        raise invalid_argument("damped is set by the registry only; register with damped=False")


def check_checks(checks: object) -> None:
    """Checks to ask for: Check values of a known kind, numbers the wire carries.

    Their limits (how many, how often) are the registry's settings.
    """
    if isinstance(checks, str | bytes) or not isinstance(checks, Sequence):
        raise invalid_argument(f"checks must be a sequence of client_sdk.Check, not {checks!r}")
    for index, check in enumerate(checks):
        if not isinstance(check, Check) or not isinstance(check.kind, CheckKind):
            raise invalid_argument(f"checks[{index}] must be a client_sdk.Check, not {check!r}")
        for field in ("interval_seconds", "timeout_seconds"):
            value = getattr(check, field)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise invalid_argument(
                    f"checks[{index}].{field} must be seconds >= 0, not {value!r}"
                )
        for field in ("port", "failures_before_failing", "passes_before_passing"):
            value = getattr(check, field)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
                raise invalid_argument(
                    f"checks[{index}].{field} must be a whole number >= 0, not {value!r}"
                )


def check_key(key: object) -> None:
    if not isinstance(key, NodeKey):
        raise invalid_argument(f"key must be a client_sdk.NodeKey, not {key!r}")
    for field in ("datacenter", "type", "id"):
        check_text(f"key.{field}", getattr(key, field))


def check_scope(scope: object) -> None:
    if not isinstance(scope, Scope):
        raise invalid_argument(f"scope must be a client_sdk.Scope, not {scope!r}")
    for field in ("datacenters", "types"):
        for name in getattr(scope, field):
            check_text(f"scope.{field} entry", name)
    # The selector's syntax is the registry's to judge (its message names the position).
    if not isinstance(scope.selector, str):
        raise invalid_argument(f"scope.selector must be a string, not {scope.selector!r}")


def check_consistency(consistency: object) -> None:
    if not isinstance(consistency, Consistency):
        raise invalid_argument(f"consistency must be a Consistency, not {consistency!r}")


def check_seconds(field: str, value: object) -> None:
    """A duration the caller chose (a drain's grace): a number, not negative."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise invalid_argument(f"{field} must be a number of seconds >= 0, not {value!r}")
