"""The HTTP API's JSON shapes (docs/design.md §11), one function per message, from the domain types:
the same content as the gRPC messages, with names and enum values a person reads (`"UP"`, not
`NODE_STATUS_UP`) and revisions as numbers. The OpenAPI document (web/openapi.py) describes these
shapes and a test checks real answers against it.

Every datacenter of a list or a snapshot carries its own `revision`, `complete_revision`,
`stale` and `age_seconds`, and whether it is `remote` (docs/design.md §10: a followed datacenter's
revisions are its own registry's); the top level keeps this frontend's etcd's. A watch message
names the followed datacenter it is about (`datacenter`), null for this frontend's etcd.
"""

from __future__ import annotations

from typing import Any

from registry_service.domain import (
    DatacenterNodes,
    DeltaMessage,
    EventType,
    NodeEvent,
    NodeList,
    ProgressMessage,
    SnapshotMessage,
    WatchMessage,
)
from registry_service.web.admin_config import node_json


def datacenter_json(datacenter: DatacenterNodes) -> dict[str, Any]:
    return {
        "datacenter": datacenter.datacenter,
        "remote": datacenter.remote,
        "revision": datacenter.revision,
        "complete_revision": datacenter.complete_revision,
        "stale": datacenter.stale,
        "age_seconds": round(datacenter.age_seconds, 3),
        "nodes": [node_json(node) for node in datacenter.nodes],
    }


def node_list_json(listing: NodeList) -> dict[str, Any]:
    """GetNodes' content: the revision, staleness and age, and the nodes per datacenter."""
    return {
        "revision": listing.revision,
        "stale": listing.stale,
        "age_seconds": round(listing.age_seconds, 3),
        "datacenters": [datacenter_json(dc) for dc in listing.datacenters],
    }


def event_json(event: NodeEvent) -> dict[str, Any]:
    removed = event.type is EventType.REMOVED
    return {
        "type": event.type.value,
        "node": node_json(event.node),
        "reason": event.reason.value if removed else None,
    }


def watch_message_json(message: WatchMessage) -> tuple[str, dict[str, Any]]:
    """A watch message as (event name, data) of one Server-Sent Event."""
    if isinstance(message, SnapshotMessage):
        reason = message.resync_reason
        return "snapshot", {
            **node_list_json(message.nodes),
            "datacenter": message.datacenter or None,
            "resync": reason is not None,
            "resync_reason": reason.value if reason is not None else None,
        }
    if isinstance(message, DeltaMessage):
        return "delta", {
            "revision": message.revision,
            "datacenter": message.datacenter or None,
            "relisted": message.relisted,
            "events": [event_json(event) for event in message.events],
        }
    assert isinstance(message, ProgressMessage)
    return "progress", {
        "revision": message.revision,
        "datacenter": message.datacenter or None,
        "stale": message.stale,
        "age_seconds": message.age_seconds,
    }
