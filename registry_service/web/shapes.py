"""Every JSON body the server writes, one function per shape (D63): the HTTP API's (D49), the
admin port's, the host's admin port's (process/host_admin.py) and the error body of both.
Handlers parse a request, call a use case and answer with a shape from here; no other module
builds a JSON body. The CLI renders on its own (registry_cli/ never imports the service).

The node shapes carry the same content as the gRPC messages, with names and enum values a person
reads (`"UP"`, not `NODE_STATUS_UP`) and revisions as numbers. The OpenAPI document
(web/openapi.py) describes the HTTP API's shapes and a test checks real answers against it.

Every datacenter of a list or a snapshot carries its own `revision`, `complete_revision`,
`stale` and `age_seconds`, and whether it is `remote` (D53: a followed datacenter's revisions
are its own registry's); the top level keeps this frontend's etcd's. A watch message names the
followed datacenter it is about (`datacenter`), null for this frontend's etcd.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import grpc

from registry_service.control import Announcement, OperatorEntry, PushSwitch
from registry_service.core.evictor import EvictorStatus
from registry_service.core.operations import NodeAction, describe_switch
from registry_service.core.self_preservation import BudgetPolicy, DatacenterBudget
from registry_service.domain import (
    AuditEntry,
    DatacenterNodes,
    DeltaMessage,
    EventType,
    Node,
    NodeEvent,
    NodeKey,
    NodeList,
    ProgressMessage,
    Registration,
    SnapshotMessage,
    WatchMessage,
)
from registry_service.hub.subscription import Subscription
from registry_service.store.base import StoredNode
from registry_service.web.peers import ClusterAnswer
from registry_service.web.readiness import Readiness

_LAST_PLAN_DECISIONS = 1000

# -- errors and probes -----------------------------------------------------------------------


def error_json(code: grpc.StatusCode, message: str) -> dict[str, Any]:
    """Every refusal of either HTTP port: `{"error": {"code": "NOT_FOUND", "message": ...}}`."""
    return {"error": {"code": code.name, "message": message}}


def readiness_json(readiness: Readiness) -> dict[str, Any]:
    """`/readyz` on the admin port and the HTTP API port."""
    return {
        "ready": readiness.ready,
        "degraded": readiness.degraded,
        "reason": readiness.reason,
        "store_connected": readiness.store_connected,
        "cache_age_seconds": readiness.cache_age_seconds,
    }


# -- nodes and the watch (the HTTP API) ------------------------------------------------------


def node_json(node: Node) -> dict[str, Any]:
    """One node as the HTTP API and the console show it."""
    return {
        "datacenter": node.datacenter,
        "type": node.type,
        "id": node.id,
        "address": node.address,
        "status": node.status.value,
        "health": node.health.value,
        "damped": node.damped,
        "incarnation": node.incarnation,
        "metadata": dict(node.metadata),
    }


def datacenter_json(datacenter: DatacenterNodes) -> dict[str, Any]:
    """One datacenter's part of a list, with its revisions and staleness."""
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


def member_json(listing: NodeList, node: Node) -> dict[str, Any]:
    """One member (GET /v1/nodes/{dc}/{type}/{id}), with the revision of the list it is in."""
    return {
        "revision": listing.revision,
        "stale": listing.stale,
        "age_seconds": round(listing.age_seconds, 3),
        "node": node_json(node),
    }


def event_json(event: NodeEvent) -> dict[str, Any]:
    """One node event; `reason` only for a removal."""
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


# -- suspects and the audit trail (both ports) -----------------------------------------------


def suspect_json(registration: Registration, ceiling_seconds: float) -> dict[str, Any]:
    """A member held as SUSPECT: the node, since when, and when the ceiling removes it."""
    return {
        **node_json(registration.node),
        "suspect_since": registration.suspect_since,
        "removed_at_the_latest": registration.suspect_since + ceiling_seconds,
    }


def suspects_json(held: Sequence[Registration], ceiling_seconds: float) -> dict[str, Any]:
    """GET /admin/suspects."""
    return {"suspects": [suspect_json(registration, ceiling_seconds) for registration in held]}


def self_preservation_json(
    held: Sequence[Registration], sizes: Mapping[str, int], ceiling_seconds: float
) -> dict[str, Any]:
    """GET /v1/cluster/suspects: the suspects, and per datacenter (`sizes`: its members) whether
    the eviction budget holds members back (self-preservation, the alarm)."""
    per_datacenter: dict[str, int] = {}
    for registration in held:
        datacenter = registration.node.datacenter
        per_datacenter[datacenter] = per_datacenter.get(datacenter, 0) + 1
    return {
        "self_preservation": bool(held),
        "datacenters": [
            {
                "datacenter": datacenter,
                "members": members,
                "suspects": per_datacenter.get(datacenter, 0),
                "self_preservation": datacenter in per_datacenter,
            }
            for datacenter, members in sorted(sizes.items())
        ],
        "suspects": [suspect_json(registration, ceiling_seconds) for registration in held],
    }


def settled_json(evict: bool, outcomes: Mapping[str, int | str]) -> dict[str, Any]:
    """POST /admin/suspects/confirm|cancel: per node path its revision, or why it failed."""
    return {
        "action": "confirm" if evict else "cancel",
        "nodes": {
            path: {"revision": outcome} if isinstance(outcome, int) else {"error": outcome}
            for path, outcome in outcomes.items()
        },
    }


def audit_json(key: NodeKey, entries: Iterable[AuditEntry]) -> dict[str, Any]:
    """A node's recorded transitions, oldest first (the admin port's and the HTTP API's)."""
    return {
        "node": key.path,
        "entries": [
            {
                "revision": entry.revision,
                "time": entry.time,
                "cause": entry.cause.value,
                "incarnation": entry.incarnation,
                "frontend": entry.frontend,
                "detail": entry.detail,
                "operator": entry.operator or None,
            }
            for entry in entries
        ],
    }


def operator_audit_json(entries: Iterable[OperatorEntry]) -> dict[str, Any]:
    """GET /admin/audit without a node: every operator action and who did it."""
    return {
        "operator_actions": [
            {
                "revision": entry.revision,
                "time": entry.time,
                "action": entry.action,
                "operator": entry.operator,
                "target": entry.target,
                "detail": entry.detail,
                "frontend": entry.frontend,
            }
            for entry in entries
        ]
    }


# -- this frontend, as its admin port reports it ---------------------------------------------


def admin_nodes_json(listing: NodeList) -> dict[str, Any]:
    """GET /admin/nodes: the nodes by datacenter, as this frontend holds them."""
    return {
        "revision": listing.revision,
        "cache_age_seconds": round(listing.age_seconds, 3),
        "datacenters": {
            dc.datacenter: [node_json(node) for node in dc.nodes] for dc in listing.datacenters
        },
    }


def subscriber_json(subscription: Subscription, frontend: str, revision: int) -> dict[str, Any]:
    """One subscriber as the cluster-wide views list it; `converged` to `revision`."""
    owed = subscription.unacked_since
    return {
        "id": subscription.id,
        "frontend": frontend,
        "peer": subscription.peer,
        "scope": {
            "datacenters": sorted(subscription.scope.datacenters),
            "types": sorted(subscription.scope.types),
        },
        "sent_revision": subscription.sent_revision,
        "offered_revision": subscription.offered_revision,
        "acked_revision": subscription.acked_revision,
        "acknowledging": subscription.acknowledging,
        "converged": subscription.converged(revision),
        # Wall-clock time the oldest message it has not acknowledged was written.
        "pending_since": round(time.time() - (time.monotonic() - owed), 3) if owed else None,
        "held": subscription.held,
        "backlog": subscription.backlog,
        "resyncs": subscription.resyncs,
    }


def subscribers_json(
    frontend: str, revision: int, push_enabled: bool, subscriptions: Iterable[Subscription]
) -> dict[str, Any]:
    """GET /admin/subscribers: this frontend's subscribers, `converged` to `revision`."""
    return {
        "frontend": frontend,
        "revision": revision,
        "push_enabled": push_enabled,
        "subscribers": [
            subscriber_json(s, frontend, revision)
            for s in sorted(subscriptions, key=lambda s: s.id)
        ],
    }


def _budget_json(budget: DatacenterBudget) -> dict[str, Any]:
    return {
        "members": budget.members,
        "budget": budget.budget,
        "spent": budget.spent,
        "silent": budget.silent,
        "suspects": budget.suspects,
        "self_preservation": budget.preserving,
    }


def evictor_json(frontend: str, status: EvictorStatus, policy: BudgetPolicy) -> dict[str, Any]:
    """GET /admin/evictor: eviction as this frontend sees it."""
    return {
        "frontend": frontend,
        "candidate": status.candidate,
        "leader": status.leader,
        "leader_since": status.leader_since or None,
        "last_sweep": status.last_sweep or None,
        "dry_run": status.dry_run,
        "held_by_outage": status.held_by_outage,
        "removed": dict(status.removed),
        "suspected": status.suspected,
        "policy": {
            "ratio": policy.ratio,
            "minimum": policy.minimum,
            "type_minimum": policy.type_minimum,
            "min_members": policy.min_members,
            "window_seconds": policy.window_seconds,
            "ceiling_seconds": policy.ceiling_seconds,
        },
        "datacenters": {
            dc: _budget_json(budget) for dc, budget in sorted(status.plan.datacenters.items())
        },
        "types": {
            f"{dc}/{node_type}": _budget_json(budget)
            for (dc, node_type), budget in sorted(status.plan.types.items())
        },
        # What the last sweep decided (in dry-run mode: what it would have done).
        "last_plan": [
            {"node": decision.key.path, "action": decision.action.value}
            for decision in status.plan.decisions[:_LAST_PLAN_DECISIONS]
        ],
    }


# -- the cluster, as the operator's routes act on it -----------------------------------------


def frontends_json(frontend: str, announced: Iterable[Announcement]) -> dict[str, Any]:
    """GET /admin/frontends: every announced frontend, this one marked `self`."""
    return {
        "frontend": frontend,
        "frontends": [
            {
                "id": a.id,
                "self": a.id == frontend,
                "host": a.host,
                "pid": a.pid,
                "worker": f"{a.worker_index}/{a.worker_count}",
                "grpc_address": a.grpc_address,
                "admin_url": a.admin_url,
                "version": a.version,
                "started_at": a.started_at,
                "subscribers": a.subscribers,
            }
            for a in sorted(announced, key=lambda a: a.id)
        ],
    }


def push_json(switch: PushSwitch) -> dict[str, Any]:
    """The push switch (GET and PUT /admin/push add who answers or the revision written)."""
    return {
        "enabled": switch.enabled,
        "gray": {
            "scopes": [str(scope) for scope in switch.held_scopes],
            "networks": list(switch.held_networks),
        },
        "changed_by": switch.changed_by or None,
        "changed_at": switch.changed_at or None,
        "summary": describe_switch(switch),
    }


def stored_node_json(key: NodeKey, stored: StoredNode) -> dict[str, Any]:
    """GET /admin/nodes/{dc}/{type}/{id}: the node's record as etcd has it."""
    registration, identity = stored.registration, stored.identity
    override = registration.override if registration else None
    return {
        "node": key.path,
        "member": node_json(registration.node) if registration else None,
        "live": stored.live,
        "override": {
            "status": override.status.value,
            "owner_status": override.owner_status.value,
            "by": override.by,
            "at": override.at,
        }
        if override
        else None,
        "held_until": identity.hold_until if identity and identity.hold_until else None,
        "held_by": identity.held_by if identity and identity.hold_until else None,
        "revision": stored.revision,
    }


def node_action_json(key: NodeKey, action: str, done: NodeAction, operator: str) -> dict[str, Any]:
    """POST /admin/nodes/{dc}/{type}/{id}/{action}: what it did, and the revision it wrote."""
    return {
        "node": key.path,
        "action": action,
        "revision": done.revision,
        "status": done.status.value if done.status else None,
        "operator": operator,
    }


def convergence_json(
    revision: int, asked_by: str, answer: ClusterAnswer, now: float
) -> dict[str, Any]:
    """Every announced frontend's subscribers against `revision`, merged, and the frontends that
    did not answer (GET /admin/convergence and /v1/cluster/convergence)."""
    pending = [s for s in answer.subscribers if not s.get("converged")]
    return {
        "revision": revision,
        "asked_by": asked_by,
        "frontends": sorted(answer.answered),
        "unreachable": [
            {"frontend": peer.frontend, "admin_url": peer.admin_url, "error": peer.error}
            for peer in answer.unreachable
        ],
        "subscribers": answer.subscribers,
        "not_converged": len(pending),
        "oldest_pending_seconds": round(
            max(
                (now - s["pending_since"] for s in pending if s.get("pending_since")),
                default=0.0,
            ),
            3,
        ),
    }


# -- the host's admin port (a supervisor's) --------------------------------------------------


def host_subscribers_json(
    answers: Iterable[tuple[str, Mapping[str, Any] | None]],
) -> dict[str, Any]:
    """GET /admin/subscribers of a supervisor: each worker's (`subscribers_json`) merged, each
    subscriber with its worker; a worker that did not answer is listed as null."""
    merged: dict[str, Any] = {"subscribers": [], "workers": {}, "frontends": []}
    for worker, data in answers:
        if data is None:
            merged["workers"][worker] = None
            continue
        merged["frontends"].append(data.get("frontend"))
        merged["workers"][worker] = {
            "frontend": data.get("frontend"),
            "revision": data.get("revision"),
            "push_enabled": data.get("push_enabled"),
        }
        merged["subscribers"].extend(
            {**subscriber, "worker": worker} for subscriber in data.get("subscribers", [])
        )
    return merged
