"""JSON encoding of the operator state in etcd (control.py): the push switch, frontend
announcements and the operator audit. Small, versioned, readable with `etcdctl get`; readers
ignore fields they do not know, writers add fields only as optional ones.
"""

from __future__ import annotations

import json
from typing import Any

from registry_service.control import Announcement, HeldScope, OperatorEntry, PushSwitch
from registry_service.store.records import RECORD_VERSION, RecordError


def _dumps(data: dict[str, Any]) -> bytes:
    return json.dumps({"v": RECORD_VERSION, **data}, separators=(",", ":"), sort_keys=True).encode()


def encode_push_switch(switch: PushSwitch) -> bytes:
    """The push switch and its gray list as a record."""
    return _dumps(
        {
            "enabled": switch.enabled,
            "gray": {
                "scopes": [
                    {"datacenter": s.datacenter, "type": s.type} for s in switch.held_scopes
                ],
                "networks": list(switch.held_networks),
            },
            "changed_by": switch.changed_by,
            "changed_at": round(switch.changed_at, 3),
        }
    )


def decode_push_switch(raw: bytes) -> PushSwitch:
    """The push switch in a record. Raises RecordError when it is not one."""
    try:
        data = json.loads(raw)
        gray = data.get("gray") or {}
        return PushSwitch(
            enabled=bool(data["enabled"]),
            held_scopes=tuple(
                HeldScope(str(s.get("datacenter", "")), str(s.get("type", "")))
                for s in gray.get("scopes", [])
            ),
            held_networks=tuple(str(n) for n in gray.get("networks", [])),
            changed_by=str(data.get("changed_by", "")),
            changed_at=float(data.get("changed_at", 0.0)),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise RecordError(f"not a push switch record: {err}") from err


def encode_announcement(announcement: Announcement) -> bytes:
    """A frontend's announcement as a record, for the console and the peers."""
    return _dumps(
        {
            "id": announcement.id,
            "host": announcement.host,
            "pid": announcement.pid,
            "worker_index": announcement.worker_index,
            "worker_count": announcement.worker_count,
            "grpc_address": announcement.grpc_address,
            "admin_url": announcement.admin_url,
            "version": announcement.version,
            "started_at": round(announcement.started_at, 3),
            "subscribers": announcement.subscribers,
        }
    )


def decode_announcement(raw: bytes) -> Announcement:
    """A frontend's announcement in a record. Raises RecordError when it is not one."""
    try:
        data = json.loads(raw)
        return Announcement(
            id=str(data["id"]),
            host=str(data.get("host", "")),
            pid=int(data.get("pid", 0)),
            worker_index=int(data.get("worker_index", 0)),
            worker_count=int(data.get("worker_count", 1)),
            grpc_address=str(data.get("grpc_address", "")),
            admin_url=str(data["admin_url"]),
            version=str(data.get("version", "")),
            started_at=float(data.get("started_at", 0.0)),
            subscribers=int(data.get("subscribers", 0)),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise RecordError(f"not a frontend announcement: {err}") from err


def encode_operator_entry(entry: OperatorEntry) -> bytes:
    """One operator action as an audit record."""
    return _dumps(
        {
            "action": entry.action,
            "operator": entry.operator,
            "time": round(entry.time, 3),
            "frontend": entry.frontend,
            "target": entry.target,
            "detail": entry.detail,
        }
    )


def decode_operator_entry(raw: bytes, revision: int) -> OperatorEntry:
    """One operator action in an audit record written at `revision`. Raises RecordError."""
    try:
        data = json.loads(raw)
        return OperatorEntry(
            action=str(data["action"]),
            operator=str(data.get("operator", "")),
            time=float(data["time"]),
            frontend=str(data.get("frontend", "")),
            target=str(data.get("target", "")),
            detail=str(data.get("detail", "")),
            revision=revision,
        )
    except (ValueError, KeyError, TypeError) as err:
        raise RecordError(f"not an operator audit record: {err}") from err
