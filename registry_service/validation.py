"""The validation of client input: names, addresses, metadata, TTLs, scopes, resume points.

Validation returns canonical values (lower-case host names, compressed IPv6) or raises
`InvalidArgumentError` with a message that names the field, the value's problem and the limit.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
from collections.abc import Mapping, Sequence

from registry_service.domain import (
    CHECK_DEFAULT_FAILURES,
    CHECK_DEFAULT_INTERVAL_SECONDS,
    CHECK_DEFAULT_PASSES,
    CHECK_DEFAULT_TIMEOUT_SECONDS,
    OWNER_STATUSES,
    Check,
    CheckKind,
    Limits,
    Node,
    NodeKey,
    Scope,
    WatchResume,
)
from registry_service.errors import InvalidArgumentError
from registry_service.selectors import Selector, SelectorError, parse_selector

_ID = re.compile(r"[a-z0-9][a-z0-9._-]*")
_TYPE = re.compile(r"[a-z][a-z0-9-]*")
_DATACENTER = re.compile(r"[a-z0-9][a-z0-9-]*")
_METADATA_KEY = re.compile(r"[a-zA-Z0-9._/-]+")
_HOST_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_GRPC_SERVICE = re.compile(r"[A-Za-z0-9._/-]{0,200}")
_HTTP_PATH = re.compile(r"/[\x21-\x7e]{0,1023}")  # printable ASCII, no space: one request line
_THRESHOLD_MAX = 2**32 - 1  # the wire's uint32
RESERVED_METADATA_PREFIX = "registry."


def _check_name(
    field_name: str, value: str, pattern: re.Pattern[str], rule: str, max_length: int
) -> str:
    if not value:
        raise InvalidArgumentError(f"{field_name} is required")
    if len(value) > max_length:
        raise InvalidArgumentError(
            f"{field_name} {value[:80]!r} is {len(value)} characters; the limit is {max_length}"
        )
    if not pattern.fullmatch(value):
        raise InvalidArgumentError(f"{field_name} {value[:80]!r} must match {rule}")
    return value


def _check_datacenter(field_name: str, value: str, limits: Limits) -> str:
    return _check_name(
        field_name, value, _DATACENTER, "[a-z0-9][a-z0-9-]*", limits.datacenter_max_length
    )


def validate_key(key: NodeKey, limits: Limits) -> NodeKey:
    """Checks datacenter, type and id against their character sets and lengths."""
    return NodeKey(
        _check_datacenter("datacenter", key.datacenter, limits),
        _check_name("type", key.type, _TYPE, "[a-z][a-z0-9-]*", limits.type_max_length),
        _check_name("id", key.id, _ID, "[a-z0-9][a-z0-9._-]*", limits.id_max_length),
    )


def canonical_address(address: str) -> str:
    """Returns `host:port` in canonical form: lower-case host, compressed bracketed IPv6.

    Raises:
        InvalidArgumentError: not `host:port` with an RFC 1123 name, an IPv4 address or a bracketed
            IPv6 address, and a port from 1 to 65535.
    """
    if not address:
        raise InvalidArgumentError("address is required (host:port)")
    if len(address) > 300:
        raise InvalidArgumentError("address is longer than 300 characters")
    host, sep, port_text = address.rpartition(":")
    if not sep or not host:
        raise InvalidArgumentError(f"address {address!r} must be host:port")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise InvalidArgumentError(f"address {address!r}: port must be a number from 1 to 65535")
    port = int(port_text)
    if host.startswith("["):
        if not host.endswith("]"):
            raise InvalidArgumentError(f"address {address!r}: unclosed '[' around the IPv6 address")
        try:
            ip6 = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise InvalidArgumentError(f"address {address!r}: not a valid IPv6 address") from None
        return f"[{ip6.compressed}]:{port}"
    if ":" in host:
        raise InvalidArgumentError(
            f"address {address!r}: put an IPv6 address in brackets, [::1]:80"
        )
    host = host.lower()
    if re.fullmatch(r"[0-9.]+", host):
        try:
            return f"{ipaddress.IPv4Address(host)}:{port}"
        except ValueError:
            raise InvalidArgumentError(f"address {address!r}: not a valid IPv4 address") from None
    labels = host.removesuffix(".").split(".")
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise InvalidArgumentError(
            f"address {address!r}: host must be an RFC 1123 name (labels of a-z, 0-9 and '-')"
        )
    return f"{'.'.join(labels)}:{port}"


def validate_metadata(metadata: Mapping[str, str], limits: Limits) -> dict[str, str]:
    """Checks metadata against the count, key, value and total size limits and the reserved
    prefix."""
    if len(metadata) > limits.metadata_max_entries:
        raise InvalidArgumentError(
            f"metadata has {len(metadata)} entries; the limit is {limits.metadata_max_entries}"
        )
    total = 0
    for key, value in metadata.items():
        key_bytes = len(key.encode())
        value_bytes = len(value.encode())
        if not key or key_bytes > limits.metadata_key_max_bytes or not _METADATA_KEY.fullmatch(key):
            raise InvalidArgumentError(
                f"metadata key {key[:80]!r} must be 1-{limits.metadata_key_max_bytes} characters "
                "of [a-zA-Z0-9._/-]"
            )
        if key.startswith(RESERVED_METADATA_PREFIX):
            raise InvalidArgumentError(
                f"metadata key {key!r}: the prefix {RESERVED_METADATA_PREFIX!r} is reserved"
            )
        if value_bytes > limits.metadata_value_max_bytes:
            raise InvalidArgumentError(
                f"metadata value of {key!r} is {value_bytes} bytes; the limit is "
                f"{limits.metadata_value_max_bytes}"
            )
        total += key_bytes + value_bytes
    if total > limits.metadata_max_total_bytes:
        raise InvalidArgumentError(
            f"metadata is {total} bytes in all; the limit is {limits.metadata_max_total_bytes}"
        )
    return dict(metadata)


def validate_ttl(ttl_seconds: int, limits: Limits) -> int:
    """0 means the default; anything else must lie in [ttl_min_seconds, ttl_max_seconds]."""
    if ttl_seconds == 0:
        return limits.ttl_default_seconds
    if not limits.ttl_min_seconds <= ttl_seconds <= limits.ttl_max_seconds:
        raise InvalidArgumentError(
            f"ttl_seconds {ttl_seconds} is out of range; allowed {limits.ttl_min_seconds}-"
            f"{limits.ttl_max_seconds} (0 for the default {limits.ttl_default_seconds})"
        )
    return ttl_seconds


def validate_node(node: Node, limits: Limits) -> Node:
    """Returns the node in canonical form, ready to store; incarnation is left for the registry."""
    key = validate_key(node.key, limits)
    if node.status not in OWNER_STATUSES:
        raise InvalidArgumentError(
            f"status {node.status.value} is set by the registry or an operator only; "
            "register with UP or DRAINING"
        )
    return Node(
        id=key.id,
        type=key.type,
        datacenter=key.datacenter,
        address=canonical_address(node.address),
        metadata=validate_metadata(node.metadata, limits),
        incarnation=0,
        status=node.status,
        health=node.health,
    )


def validate_checks(checks: Sequence[Check], limits: Limits) -> tuple[Check, ...]:
    """The checks a registration asks the registry to run, with each zero field's default.

    Raises:
        InvalidArgumentError: too many checks, an interval below the minimum, a timeout above
            the maximum or its interval, or a field that does not belong to the check's kind.
    """
    if checks and not limits.health_checks_max_per_node:
        raise InvalidArgumentError(
            "this registry runs no health checks (health_checks_max_per_node is 0): report the "
            "node's health yourself (its health on an update, as `noderegistry register "
            "--check` does)"
        )
    if len(checks) > limits.health_checks_max_per_node:
        raise InvalidArgumentError(
            f"checks has {len(checks)} entries; the limit is {limits.health_checks_max_per_node} "
            "(health_checks_max_per_node)"
        )
    return tuple(_check(f"checks[{index}]", check, limits) for index, check in enumerate(checks))


def _check(name: str, check: Check, limits: Limits) -> Check:
    interval = check.interval_seconds or CHECK_DEFAULT_INTERVAL_SECONDS
    if not math.isfinite(interval) or interval < limits.health_check_min_interval_seconds:
        raise InvalidArgumentError(
            f"{name}.interval_seconds {interval:g} is below the limit "
            f"{limits.health_check_min_interval_seconds:g} (health_check_min_interval_seconds)"
        )
    timeout = check.timeout_seconds or min(
        CHECK_DEFAULT_TIMEOUT_SECONDS, interval, limits.health_check_max_timeout_seconds
    )
    if not math.isfinite(timeout) or timeout <= 0:
        raise InvalidArgumentError(f"{name}.timeout_seconds {timeout:g} must be above 0")
    if timeout > limits.health_check_max_timeout_seconds:
        raise InvalidArgumentError(
            f"{name}.timeout_seconds {timeout:g} is above the limit "
            f"{limits.health_check_max_timeout_seconds:g} (health_check_max_timeout_seconds)"
        )
    if timeout > interval:
        raise InvalidArgumentError(
            f"{name}.timeout_seconds {timeout:g} is longer than its interval_seconds "
            f"{interval:g}: a probe must end before the next one is due"
        )
    for field, value in (
        ("failures_before_failing", check.failures_before_failing),
        ("passes_before_passing", check.passes_before_passing),
    ):
        if not 0 <= value <= _THRESHOLD_MAX:
            raise InvalidArgumentError(f"{name}.{field} {value} must be from 1 (0: the default)")
    if not 0 <= check.port <= 65535:
        raise InvalidArgumentError(
            f"{name}.port {check.port} must be from 1 to 65535 (0: the node's port)"
        )
    path = check.path or "/"
    if check.kind is CheckKind.GRPC and not _GRPC_SERVICE.fullmatch(check.service):
        raise InvalidArgumentError(
            f"{name}.service {check.service[:80]!r} must be a gRPC service name "
            "(up to 200 of [A-Za-z0-9._/-]; empty: the whole server)"
        )
    if check.kind is not CheckKind.GRPC and check.service:
        raise InvalidArgumentError(f"{name}.service is for gRPC checks only")
    if check.kind is CheckKind.HTTP and not _HTTP_PATH.fullmatch(path):
        raise InvalidArgumentError(
            f"{name}.path {path[:80]!r} must start with / and hold up to 1024 printable "
            "characters without spaces"
        )
    if check.kind is not CheckKind.HTTP and path != "/":
        raise InvalidArgumentError(f"{name}.path is for HTTP checks only")
    return dataclasses.replace(
        check,
        path=path if check.kind is CheckKind.HTTP else "/",
        interval_seconds=float(interval),
        timeout_seconds=float(timeout),
        failures_before_failing=check.failures_before_failing or CHECK_DEFAULT_FAILURES,
        passes_before_passing=check.passes_before_passing or CHECK_DEFAULT_PASSES,
    )


def selector_of(text: str) -> Selector:
    """A label selector from client input (selectors.py). Its size is checked against the
    setting `selector_max_bytes` with the scope it belongs to (validate_scope)."""
    try:
        return parse_selector(text)
    except SelectorError as err:
        raise InvalidArgumentError(str(err)) from None


def validate_scope(scope: Scope, limits: Limits) -> Scope:
    """Checks a scope's selector size, datacenters and types against the limits."""
    if scope.selector.size_bytes > limits.selector_max_bytes:
        raise InvalidArgumentError(
            f"selector is {scope.selector.size_bytes} bytes; the limit is "
            f"{limits.selector_max_bytes} (selector_max_bytes)"
        )
    for datacenter in scope.datacenters:
        _check_datacenter("scope datacenter", datacenter, limits)
    for node_type in scope.types:
        _check_name("scope type", node_type, _TYPE, "[a-z][a-z0-9-]*", limits.type_max_length)
    return scope


def validate_resume(resume: WatchResume, limits: Limits) -> WatchResume:
    """Revisions are never negative; a revision per datacenter only for a subscriber that keeps
    them (`datacenter_revisions`)."""
    if resume.revision < 0:
        raise InvalidArgumentError(f"resume_revision {resume.revision} must be >= 0")
    for datacenter, revision in resume.revisions.items():
        _check_datacenter("resume_revisions datacenter", datacenter, limits)
        if revision < 0:
            raise InvalidArgumentError(f"resume_revisions[{datacenter}] {revision} must be >= 0")
    if resume.revisions and not resume.federated:
        raise InvalidArgumentError("resume_revisions needs datacenter_revisions set")
    return resume
