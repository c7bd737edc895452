"""What the `admin` verbs print for people: tables and lines made from the admin port's JSON
documents (with `-o json` the documents themselves are printed, README "Operations")."""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping
from typing import Any

from registry_cli.output import table


def when(epoch: float | None) -> str:
    """A wall-clock time as ISO 8601 UTC (seconds), or `-`."""
    if not epoch:
        return "-"
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _ago(epoch: float | None) -> str:
    return f"{max(0.0, time.time() - epoch):.1f}s" if epoch else "-"


def frontends(doc: Mapping[str, Any]) -> str:
    """`admin frontends`: one row per announced frontend; * marks the one that answered."""
    rows = [
        (
            f["id"] + (" *" if f.get("self") else ""),
            f["host"],
            str(f["pid"]),
            f["worker"],
            f["grpc_address"],
            f["admin_url"],
            f["version"],
            str(f["subscribers"]),
            when(f["started_at"]),
        )
        for f in doc["frontends"]
    ]
    header = ("ID", "HOST", "PID", "WORKER", "GRPC", "ADMIN", "VERSION", "SUBSCRIBERS", "STARTED")
    lines = table(header, rows)
    lines.append(f"{len(rows)} frontend(s) announced; * answered this command")
    return "\n".join(lines)


def push(doc: Mapping[str, Any]) -> str:
    """`admin push`: the switch and its gray list on one line, with who changed it last."""
    text = f"pushes {'ON' if doc['enabled'] else 'OFF'}"
    gray = doc["gray"]
    held = gray["scopes"] + gray["networks"]
    if held:
        text += f"; gray list holds back {', '.join(held)}"
    if doc.get("changed_by"):
        text += f"; changed by {doc['changed_by']} at {when(doc['changed_at'])}"
    if doc.get("revision"):
        text += f" (revision {doc['revision']})"
    return text


def _scope(subscriber: Mapping[str, Any]) -> str:
    scope = subscriber["scope"]
    datacenters = ",".join(scope["datacenters"]) or "*"
    types = ",".join(scope["types"]) or "*"
    return f"{datacenters}/{types}"


def subscribers(doc: Mapping[str, Any], *, pending_only: bool) -> str:
    """`admin subscribers`/`convergence`: the subscribers (`pending_only`: those not converged) and
    a summary."""
    chosen = [s for s in doc["subscribers"] if not (pending_only and s["converged"])]
    rows = [
        (
            s["frontend"],
            s.get("worker", "-"),
            s["peer"],
            _scope(s),
            str(s["sent_revision"]),
            str(s["acked_revision"]) if s["acknowledging"] else "never",
            "yes" if s["converged"] else "no",
            _ago(s.get("pending_since")),
            "held" if s["held"] else "-",
        )
        for s in sorted(chosen, key=lambda s: (s["frontend"], s["peer"]))
    ]
    header = ("FRONTEND", "WORKER", "PEER", "SCOPE", "SENT", "ACKED", "CONVERGED", "OWED", "PUSH")
    lines = table(header, rows) if rows else []
    total, pending = len(doc["subscribers"]), doc["not_converged"]
    revision = doc["revision"]
    if pending:
        lines.append(
            f"{pending} of {total} subscriber(s) have not acknowledged revision {revision}; the "
            f"oldest owes it for {doc['oldest_pending_seconds']:.1f}s"
        )
    else:
        lines.append(f"all {total} subscriber(s) acknowledged revision {revision}")
    lines.append(f"asked {len(doc['frontends'])} frontend(s)")
    for gone in doc["unreachable"]:
        lines.append(f"UNREACHABLE {gone['frontend']} at {gone['admin_url']}: {gone['error']}")
    return "\n".join(lines)


def suspects(doc: Mapping[str, Any]) -> str:
    """`admin suspects`: each suspect, since when, and when it is removed at the latest."""
    rows = [
        (
            f"{s['datacenter']}/{s['type']}/{s['id']}",
            s["address"],
            when(s["suspect_since"]),
            when(s["removed_at_the_latest"]),
        )
        for s in doc["suspects"]
    ]
    lines = table(("NODE", "ADDRESS", "SUSPECT SINCE", "REMOVED AT THE LATEST"), rows)
    lines.append(f"{len(rows)} suspect(s)")
    return "\n".join(lines)


def settled(doc: Mapping[str, Any]) -> str:
    """`admin suspects confirm|cancel`: one line per node, its revision or its error."""
    verb = "confirmed (evicted)" if doc["action"] == "confirm" else "cancelled (UP again)"
    lines = []
    for node, outcome in sorted(doc["nodes"].items()):
        if "error" in outcome:
            lines.append(f"{node}: error: {outcome['error']}")
        else:
            lines.append(f"{node} {verb} at revision {outcome['revision']}")
    return "\n".join(lines) or "no suspects matched"


def node(doc: Mapping[str, Any]) -> str:
    """`admin node show`: the node's record, renewing or not, its override and hold."""
    member = doc["member"]
    lines = [f"node {doc['node']} (etcd revision {doc['revision']})"]
    if member is None:
        lines.append("  not a member")
    else:
        lines.append(
            f"  {member['status']} at {member['address']}, incarnation {member['incarnation']}, "
            f"{'renewing' if doc['live'] else 'NOT renewing'}"
        )
    override = doc.get("override")
    if override:
        lines.append(
            f"  operator override {override['status']} by {override['by']} since "
            f"{when(override['at'])}; the owner's status: {override['owner_status']}"
        )
    if doc.get("held_until"):
        lines.append(f"  held out by {doc['held_by']} until {when(doc['held_until'])}")
    return "\n".join(lines)


def node_action(doc: Mapping[str, Any]) -> str:
    """`admin node ACTION`: what the action did, at which revision, by whom."""
    outcome = {
        "evict": "evicted (REMOVED, reason EVICTED)",
        "unhold": "may register again",
    }.get(doc["action"], f"is {doc['status']}")
    return f"{doc['node']} {outcome} at revision {doc['revision']} (by {doc['operator']})"


def audit(doc: Mapping[str, Any]) -> str:
    """`admin audit`: a node's transitions, or every operator action without a node."""
    if "operator_actions" in doc:
        return _operator_audit(doc)
    rows = [
        (
            str(e["revision"]),
            when(e["time"]),
            e["cause"],
            str(e["incarnation"]),
            e["operator"] or "-",
            e["frontend"],
            e["detail"] or "-",
        )
        for e in doc["entries"]
    ]
    header = ("REVISION", "TIME", "CAUSE", "INCARNATION", "OPERATOR", "FRONTEND", "DETAIL")
    lines = table(header, rows)
    lines.append(f"{len(rows)} transition(s) of {doc['node']}")
    return "\n".join(lines)


def evictor(doc: Mapping[str, Any]) -> str:
    """`admin evictor`: leadership, the budget policy, and each pool's budget and suspects."""
    policy = doc["policy"]
    lines = [
        f"frontend {doc['frontend']}: {'LEADS' if doc['leader'] else 'does not lead'} eviction"
        + (" (dry run)" if doc["dry_run"] else "")
        + (", held by an etcd outage" if doc["held_by_outage"] else ""),
        f"budget: {policy['ratio']:.0%} of members per {policy['window_seconds']:g}s, at least "
        f"{policy['minimum']} per datacenter and {policy['type_minimum']} per type; suspects "
        f"removed after {policy['ceiling_seconds']:g}s",
    ]
    if policy.get("min_members"):  # a frontend from before the setting does not send it
        lines.append(
            f"self-preservation only in datacenters of {policy['min_members']} members or more; "
            "smaller ones lose their expired members at once"
        )
    pools = [("datacenter", name, b) for name, b in doc["datacenters"].items()]
    pools += [("type", name, b) for name, b in doc["types"].items()]
    rows = [
        (
            kind,
            name,
            str(b["members"]),
            str(b["budget"]),
            str(b["spent"]),
            str(b["silent"]),
            str(b["suspects"]),
            "ON" if b["self_preservation"] else "-",
        )
        for kind, name, b in pools
    ]
    if rows:
        header = ("POOL", "NAME", "MEMBERS", "BUDGET", "SPENT", "SILENT", "SUSPECTS", "ALARM")
        lines += table(header, rows)
    elif doc["leader"]:
        lines.append("no member is silent")
    removed = ", ".join(f"{cause} {count}" for cause, count in sorted(doc["removed"].items()))
    lines.append(
        f"removed by this frontend: {removed or 'none'}; marked SUSPECT: {doc['suspected']}"
    )
    return "\n".join(lines)


def _operator_audit(doc: Mapping[str, Any]) -> str:
    rows = [
        (
            str(e["revision"]),
            when(e["time"]),
            e["operator"],
            e["action"],
            e["target"] or "-",
            e["detail"] or "-",
        )
        for e in doc["operator_actions"]
    ]
    lines = table(("REVISION", "TIME", "OPERATOR", "ACTION", "TARGET", "DETAIL"), rows)
    lines.append(f"{len(rows)} operator action(s)")
    return "\n".join(lines)
