"""JSON encoding of what the registry stores in etcd: small, versioned, readable by etcdctl.

Member and identity records carry `written_at`, the writing frontend's wall clock as it sent the
transaction: what the watching frontends time `commit_to_received` by (D33). Readers that do not
know the field ignore it.

Fields added later are optional, written only when set, so that old records still decode and old
readers ignore what they do not know: a member's `override` (an operator's status) and `session`
(the client session whose lease it shares, D73), an identity's `hold_until`/`held_by` (an
operator's eviction hold), an audit record's `operator`; a member's `health`, `damped`,
`damped_until` and `checks` (docs/design.md §13).

A flap record (`flaps/<dc>/<type>/<id>`) holds flap damping's penalty for a node, apart from its
member record so that a flap that changes nothing subscribers see writes nothing they see.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from registry_service.domain import (
    AuditCause,
    AuditEntry,
    Check,
    CheckKind,
    FlapRecord,
    Health,
    Identity,
    Node,
    NodeKey,
    NodeStatus,
    Override,
    Registration,
    RemovalReason,
)

RECORD_VERSION = 1


class RecordError(ValueError):
    """A value in etcd is not a record this version understands."""


def encode_registration(registration: Registration, written_at: float = 0.0) -> bytes:
    """A member record; `written_at` (wall clock seconds) stamps it for the watchers (D33)."""
    node = registration.node
    return json.dumps(
        {
            "v": RECORD_VERSION,
            "id": node.id,
            "type": node.type,
            "datacenter": node.datacenter,
            "address": node.address,
            "metadata": dict(node.metadata),
            "incarnation": node.incarnation,
            "status": node.status.value,
            "lease": f"{registration.lease_id:x}",
            "ttl": registration.ttl_seconds,
            "token_sha256": registration.token_hash,
            "idempotency_sha256": registration.idempotency_hash,
            "sealed_token": registration.sealed_token,
            **({"suspect_since": registration.suspect_since} if registration.suspect_since else {}),
            **(
                {"override": _override_json(registration.override)} if registration.override else {}
            ),
            **({"session": registration.session} if registration.session else {}),
            **({"written_at": round(written_at, 6)} if written_at else {}),
            **_health_json(registration),
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()


def _health_json(registration: Registration) -> dict[str, Any]:
    node = registration.node
    fields: dict[str, Any] = {}
    if node.health is not Health.UNCHECKED:
        fields["health"] = node.health.value
    if node.damped:
        fields["damped"] = True
        fields["damped_until"] = round(registration.damped_until, 3)
    if registration.checks:
        fields["checks"] = [_check_json(check) for check in registration.checks]
    return fields


def _check_json(check: Check) -> dict[str, Any]:
    return {
        "kind": check.kind.value,
        "service": check.service,
        "path": check.path,
        "port": check.port,
        "interval": check.interval_seconds,
        "timeout": check.timeout_seconds,
        "failures": check.failures_before_failing,
        "passes": check.passes_before_passing,
    }


def _check(data: dict[str, Any]) -> Check:
    return Check(
        kind=CheckKind(data["kind"]),
        service=str(data.get("service", "")),
        path=str(data.get("path", "/")),
        port=int(data.get("port", 0)),
        interval_seconds=float(data["interval"]),
        timeout_seconds=float(data["timeout"]),
        failures_before_failing=int(data["failures"]),
        passes_before_passing=int(data["passes"]),
    )


def decode_registration(raw: bytes) -> Registration:
    """The registration in a member record. Raises RecordError when it is not one."""
    try:
        data = json.loads(raw)
        node = Node(
            id=sys.intern(data["id"]),
            type=sys.intern(data["type"]),
            datacenter=sys.intern(data["datacenter"]),
            address=data["address"],
            metadata=data.get("metadata", {}),
            incarnation=int(data["incarnation"]),
            status=NodeStatus(data.get("status", "UP")),
            health=Health(data.get("health", "UNCHECKED")),
            damped=bool(data.get("damped", False)),
        )
        return Registration(
            node=node,
            lease_id=int(data["lease"], 16),
            ttl_seconds=int(data["ttl"]),
            token_hash=data["token_sha256"],
            idempotency_hash=data.get("idempotency_sha256", ""),
            sealed_token=data.get("sealed_token", ""),
            suspect_since=float(data.get("suspect_since", 0.0)),
            override=_override(data["override"]) if data.get("override") else None,
            checks=tuple(_check(check) for check in data.get("checks", ())),
            damped_until=float(data.get("damped_until", 0.0)),
            session=sys.intern(data["session"]) if data.get("session") else "",
        )
    except (ValueError, KeyError, TypeError) as err:
        raise RecordError(f"not a membership record: {err}") from err


def _override_json(override: Override) -> dict[str, object]:
    return {
        "status": override.status.value,
        "owner_status": override.owner_status.value,
        "by": override.by,
        "at": round(override.at, 3),
    }


def _override(data: dict[str, Any]) -> Override:
    return Override(
        status=NodeStatus(data["status"]),
        owner_status=NodeStatus(data["owner_status"]),
        by=str(data.get("by", "")),
        at=float(data.get("at", 0.0)),
    )


def encode_identity(identity: Identity, written_at: float = 0.0) -> bytes:
    """An identity record; `written_at` tells the collector how long the id has been gone."""
    reason = identity.removal_reason.value if identity.removal_reason else None
    return json.dumps(
        {
            "v": RECORD_VERSION,
            "incarnation": identity.incarnation,
            "removed": reason,
            **({"written_at": round(written_at, 6)} if written_at else {}),
            **(
                {"hold_until": round(identity.hold_until, 3), "held_by": identity.held_by}
                if identity.hold_until
                else {}
            ),
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()


def decode_identity(raw: bytes) -> Identity:
    """The identity in an identity record. Raises RecordError when it is not one."""
    return decode_identity_written(raw)[0]


def decode_identity_written(raw: bytes) -> tuple[Identity, float]:
    """An identity record and its `written_at` (0 when absent), parsed once."""
    try:
        data = json.loads(raw)
        removed = data.get("removed")
        identity = Identity(
            incarnation=int(data["incarnation"]),
            removal_reason=RemovalReason(removed) if removed else None,
            hold_until=float(data.get("hold_until", 0.0)),
            held_by=str(data.get("held_by", "")),
        )
        return identity, float(data.get("written_at", 0.0))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise RecordError(f"not an identity record: {err}") from err


def encode_flaps(record: FlapRecord) -> bytes:
    """A flap record as stored (JSON with its record version)."""
    return json.dumps(
        {
            "v": RECORD_VERSION,
            "penalty": round(record.penalty, 3),
            "at": round(record.at, 6),
            "health": record.health.value,
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()


def decode_flaps(raw: bytes) -> FlapRecord:
    """A stored flap record; RecordError when it is unreadable."""
    try:
        data = json.loads(raw)
        return FlapRecord(
            penalty=float(data["penalty"]),
            at=float(data["at"]),
            health=Health(data.get("health", "UNCHECKED")),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise RecordError(f"not a flap record: {err}") from err


def written_at(raw: bytes) -> float:
    """The `written_at` of a member or identity record; 0 when absent or unreadable."""
    try:
        return float(json.loads(raw).get("written_at", 0.0))
    except (ValueError, TypeError, AttributeError):
        return 0.0


def encode_audit(entry: AuditEntry) -> bytes:
    """One membership transition as an audit record."""
    return json.dumps(
        {
            "v": RECORD_VERSION,
            "cause": entry.cause.value,
            "incarnation": entry.incarnation,
            "time": round(entry.time, 3),
            "frontend": entry.frontend,
            "detail": entry.detail,
            **({"operator": entry.operator} if entry.operator else {}),
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()


def decode_audit(key: NodeKey, raw: bytes, revision: int) -> AuditEntry:
    """The transition in the audit record of `key` written at `revision`. Raises RecordError."""
    try:
        data = json.loads(raw)
        return AuditEntry(
            key=key,
            cause=AuditCause(data["cause"]),
            incarnation=int(data["incarnation"]),
            time=float(data["time"]),
            frontend=str(data.get("frontend", "")),
            revision=revision,
            detail=str(data.get("detail", "")),
            operator=str(data.get("operator", "")),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise RecordError(f"not an audit record: {err}") from err
