"""What the verbs print: tables and lines for people, JSON for scripts.

The JSON shapes are a stable interface (README "CLI", "JSON output"): fields are only ever added,
never renamed or removed. A list is one document; a stream (`watch`, `register`) is one object
per line, each with a `type`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from client_sdk import Consistency, EventType, Health, Node, NodeEvent, NodeList


def dumps(document: object, *, indent: int | None = None) -> str:
    """JSON with sorted keys, so that scripts and tests see a stable text."""
    return json.dumps(document, indent=indent, sort_keys=True)


class OutputClosed(Exception):
    """Whoever read standard output stopped (`watch -o json | head -1`): the command ends."""


def emit(text: str) -> None:
    """Prints at once: a script reading a stream sees each line as it happens.

    Raises:
        OutputClosed: the reader went away. Standard output then points at /dev/null, so that
            the interpreter's last flush does not fail with BrokenPipeError (Python's advice).
    """
    try:
        print(text, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        raise OutputClosed from None


def node_json(node: Node) -> dict[str, Any]:
    """One node in the CLI's JSON shape (a stable interface)."""
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


def health_text(node: Node) -> str:
    """`-` for a node without checks, else its health (`FAILING(damped)` when damping holds
    it)."""
    if node.health is Health.UNCHECKED:
        return "-"
    return f"{node.health.value}(damped)" if node.damped else node.health.value


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell, two spaces apart."""
    cells = [tuple(header), *(tuple(row) for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]


# -- nodes --------------------------------------------------------------------------------------


def _metadata_text(node: Node) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(node.metadata.items())) or "-"


def nodes_table(nodes: NodeList, consistency: Consistency) -> str:
    """The nodes, one a row, and a footer with the revision and, when it matters, the age."""
    lines = table(
        ("DATACENTER", "TYPE", "ID", "ADDRESS", "STATUS", "HEALTH", "INCARNATION", "METADATA"),
        [
            (
                n.datacenter,
                n.type,
                n.id,
                n.address,
                n.status.value,
                health_text(n),
                str(n.incarnation),
                _metadata_text(n),
            )
            for n in nodes
        ],
    )
    footer = f"{len(nodes)} node(s) at revision {nodes.revision}"
    remote_stale = {dc: s for dc, s in nodes.datacenter_states.items() if s.remote and s.stale}
    if nodes.stale and not remote_stale:
        footer += (
            f"; STALE: the frontend cannot reach etcd, this list is "
            f"{nodes.cache_age_seconds:.1f}s old and may be out of date"
        )
    elif consistency is Consistency.CACHED:
        footer += f"; cached, {nodes.cache_age_seconds:.1f}s old"
    for datacenter, state in sorted(remote_stale.items()):
        footer += (
            f"; datacenter {datacenter} STALE: its registry was last heard from "
            f"{state.age_seconds:.1f}s ago (its list is kept as it was)"
        )
    lines.append(footer)
    return "\n".join(lines)


def nodes_json(nodes: NodeList, consistency: Consistency) -> str:
    """`nodes -o json`: one document with the revision, staleness and nodes per datacenter."""
    return dumps(
        {
            "revision": nodes.revision,
            "consistency": consistency.value,
            "stale": nodes.stale,
            "age_seconds": round(nodes.cache_age_seconds, 3),
            "count": len(nodes),
            "datacenters": {
                dc: {"nodes": [node_json(n) for n in dc_nodes], **_state_json(nodes, dc)}
                for dc, dc_nodes in nodes.datacenters.items()
            },
        },
        indent=2,
    )


def _state_json(nodes: NodeList, datacenter: str) -> dict[str, Any]:
    """A datacenter's own revision, staleness and age, when the frontend gave them (one that
    follows other datacenters does: README "Several datacenters")."""
    state = nodes.datacenter_states.get(datacenter)
    if state is None:
        return {}
    return {
        "revision": state.revision,
        "remote": state.remote,
        "stale": state.stale,
        "age_seconds": round(state.age_seconds, 3),
    }


# -- watch --------------------------------------------------------------------------------------


def event_line(event: NodeEvent) -> str:
    """One watch event as a line: revision, type, key, address, incarnation, status."""
    node = event.node
    text = (
        f"{event.revision} {event.type.value} {node.key} {node.address} "
        f"incarnation={node.incarnation} status={node.status.value}"
    )
    if node.health is not Health.UNCHECKED:
        text += f" health={health_text(node)}"
    if event.type is EventType.REMOVED:
        text += f" reason={event.reason.value}"
    return text


def event_json(event: NodeEvent) -> str:
    """One watch event as a JSON line with its `type`."""
    data: dict[str, Any] = {
        "type": event.type.value,
        "revision": event.revision,
        "node": node_json(event.node),
    }
    if event.type is EventType.REMOVED:
        data["reason"] = event.reason.value
    return dumps(data)


def staleness_line(stale: bool, revision: int, age_seconds: float) -> str:
    """A STALE line while the frontend cannot reach etcd, CURRENT once it can again."""
    if stale:
        return (
            f"{revision} STALE the list may be out of date: the frontend last heard from etcd "
            f"{age_seconds:.1f}s ago"
        )
    return f"{revision} CURRENT the frontend hears from etcd again"


def staleness_json(stale: bool, revision: int, age_seconds: float) -> str:
    """The staleness line as JSON (`type` STALE or CURRENT)."""
    data: dict[str, Any] = {"type": "STALE" if stale else "CURRENT", "revision": revision}
    if stale:
        data["age_seconds"] = round(age_seconds, 3)
    return dumps(data)
