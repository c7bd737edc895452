"""The Grafana dashboard of node-registry, as code: `python deploy/monitoring/dashboard.py`
writes `registry-dashboard.json` beside it (D34: plain dictionaries, no library).

Each panel is a title, what it shows (the panel's description, and the README's list of panels),
a unit and PromQL queries. Tests keep the JSON, the README and the metrics honest: the committed
JSON is what this file generates, every query parses (promtool) and names only metrics a live
frontend exports.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

OUTPUT = Path(__file__).with_name("registry-dashboard.json")
RATE = "$__rate_interval"
SERVER_ERRORS = "UNKNOWN|INTERNAL|UNAVAILABLE|DEADLINE_EXCEEDED|DATA_LOSS|UNIMPLEMENTED"


@dataclass(frozen=True)
class Panel:
    title: str
    shows: str
    unit: str
    queries: tuple[tuple[str, str], ...]  # (PromQL, legend)
    stacked: bool = False


def _quantiles(
    metric: str, by: str, q: tuple[float, ...] = (0.5, 0.99), where: str = ""
) -> tuple[tuple[str, str], ...]:
    selector = f"{{{where}}}" if where else ""
    return tuple(
        (
            f"histogram_quantile({quantile}, sum by ({by}, le) "
            f"(rate({metric}_bucket{selector}[{RATE}])))",
            f"p{round(quantile * 100)} {{{{{by}}}}}",
        )
        for quantile in q
    )


# Every series the dashboard queries is the frontends': the `job` and `namespace` variables pick
# which (one Grafana, several registries); "All" also matches series without the label.
_OWN_METRIC = re.compile(r"\b((?:noderegistry|grpc_server|process)_\w+)(\{([^}]*)\})?")
SCOPE = 'job=~"$job", namespace=~"$namespace"'


def scoped(expr: str) -> str:
    """`expr` with the variables' selector on each of its series."""

    def add(match: re.Match[str]) -> str:
        inner = match.group(3)
        return f"{match.group(1)}{{{SCOPE}{', ' + inner if inner else ''}}}"

    return _OWN_METRIC.sub(add, expr)


PANELS = (
    Panel(
        "Nodes per datacenter, type and status",
        "Registered nodes, counted once cluster-wide (only the leading evictor reports them): "
        "the elastic-scaling signal.",
        "short",
        (
            (
                "sum by (datacenter, type, status) (noderegistry_nodes)",
                "{{datacenter}}/{{type}} {{status}}",
            ),
        ),
        stacked=True,
    ),
    Panel(
        "Registrations and deregistrations",
        "Register and Deregister calls per second, by status code: failures show as codes other "
        "than OK.",
        "reqps",
        (
            (
                "sum by (grpc_method, grpc_code) (rate(grpc_server_handled_total"
                f'{{grpc_method=~"Register|Deregister"}}[{RATE}]))',
                "{{grpc_method}} {{grpc_code}}",
            ),
        ),
    ),
    Panel(
        "Renewals by result",
        "KeepAlive renewals answered per second, by result: NOT_FOUND means a node's lease was "
        "gone (it registers again), RESOURCE_EXHAUSTED a limit, UNAVAILABLE etcd.",
        "reqps",
        ((f"sum by (result) (rate(noderegistry_keepalives_total[{RATE}]))", "{{result}}"),),
        stacked=True,
    ),
    Panel(
        "Change -> subscriber latency per stage",
        "p50 and p99 of each stage of a change's way: commit_to_received (write sent -> watch "
        "event), received_to_queued, queued_to_written (per subscriber), written_to_acked "
        "(includes the subscribers' acknowledgement interval).",
        "s",
        _quantiles("noderegistry_change_stage_seconds", "stage"),
    ),
    Panel(
        "Subscribers and convergence",
        "Open WatchNodes streams, those that acknowledged the latest revision, and how many "
        "revisions the slowest acknowledging subscriber is behind.",
        "short",
        (
            ("sum(noderegistry_watch_subscribers)", "subscribers"),
            ("sum(noderegistry_watch_subscribers_converged)", "converged"),
            ("max(noderegistry_watch_slowest_ack_lag_revisions)", "slowest ack lag (revisions)"),
        ),
    ),
    Panel(
        "Watch messages sent",
        "Messages written to WatchNodes streams and node events in them, per second.",
        "ops",
        (
            (
                'sum(rate(grpc_server_msg_sent_total{grpc_method="WatchNodes"}[' + RATE + "]))",
                "messages",
            ),
            (f"sum(rate(noderegistry_watch_events_sent_total[{RATE}]))", "node events"),
        ),
    ),
    Panel(
        "Resyncs and relists",
        "Resync snapshots sent per second by reason (SLOW_CONSUMER: a subscriber fell behind), "
        "and full re-reads of etcd after a compacted watch.",
        "ops",
        (
            (f"sum by (reason) (rate(noderegistry_watch_resyncs_total[{RATE}]))", "{{reason}}"),
            (f"sum(rate(noderegistry_watch_relists_total[{RATE}]))", "relists"),
        ),
    ),
    Panel(
        "Evictions, suspects and self-preservation",
        "Members the evictor removed per second by cause, expired members held as SUSPECT, and "
        "the self-preservation alarm per datacenter (1: the eviction budget holds nodes back).",
        "short",
        (
            (f"sum by (cause) (rate(noderegistry_evictions_total[{RATE}]))", "evicted {{cause}}"),
            (f"sum(rate(noderegistry_suspects_marked_total[{RATE}]))", "marked SUSPECT"),
            (
                "max by (datacenter) (noderegistry_self_preservation)",
                "self-preservation {{datacenter}}",
            ),
        ),
    ),
    Panel(
        "Evictor leader, push switch, watch freshness",
        "Frontends leading eviction (should be 1), frontends with pushes held (push switch off), "
        "the etcd watch's revision lag and the oldest cache age in seconds.",
        "short",
        (
            ("sum(noderegistry_evictor_leader)", "evictor leaders"),
            ("count(noderegistry_push_enabled == 0)", "push held"),
            ("max(noderegistry_watch_lag_revisions)", "watch lag (revisions)"),
            ("max(noderegistry_cache_age_seconds)", "cache age (s)"),
        ),
    ),
    Panel(
        "Remote datacenters (federation)",
        "Each followed datacenter as this datacenter's frontends hold it: stale (1 while its "
        "registry or the link to it is down; its last list is served, marked stale), seconds "
        "since it was last heard from, and its nodes.",
        "short",
        (
            ("max by (datacenter) (noderegistry_remote_datacenter_stale)", "stale {{datacenter}}"),
            (
                "max by (datacenter) (noderegistry_remote_datacenter_age_seconds)",
                "age (s) {{datacenter}}",
            ),
            ("max by (datacenter) (noderegistry_remote_datacenter_nodes)", "nodes {{datacenter}}"),
        ),
    ),
    Panel(
        "RPC latency",
        "p50 and p99 of each unary RPC's duration at the frontends (Register, Deregister, "
        "GetNodes, AckWatch; streams are timed for their whole life, so they are left out).",
        "s",
        _quantiles("grpc_server_handling_seconds", "grpc_method", where='grpc_type="unary"'),
    ),
    Panel(
        "HTTP API",
        "HTTP API requests per second by route and status code, open event streams (/v1/watch) "
        "and blocking reads waiting for a change.",
        "short",
        (
            (
                f"sum by (route, code) (rate(noderegistry_http_requests_total[{RATE}]))",
                "{{route}} {{code}}",
            ),
            ("sum(noderegistry_http_event_streams)", "event streams"),
            ("sum(noderegistry_http_blocking_reads)", "blocking reads waiting"),
        ),
    ),
    Panel(
        "etcd request latency",
        "p50 and p99 of the frontends' etcd requests, by operation.",
        "s",
        _quantiles("noderegistry_etcd_request_seconds", "operation"),
    ),
    Panel(
        "etcd request errors",
        "Failed etcd requests per second, by operation and gRPC code.",
        "reqps",
        (
            (
                f"sum by (operation, code) (rate(noderegistry_etcd_request_errors_total[{RATE}]))",
                "{{operation}} {{code}}",
            ),
        ),
    ),
    Panel(
        "gRPC errors",
        "RPCs per second that ended with a server-side error code, by method.",
        "reqps",
        (
            (
                "sum by (grpc_method, grpc_code) (rate(grpc_server_handled_total"
                f'{{grpc_code=~"{SERVER_ERRORS}"}}[{RATE}]))',
                "{{grpc_method}} {{grpc_code}}",
            ),
        ),
    ),
    Panel(
        "Process memory",
        "Resident memory of each frontend process (and worker).",
        "bytes",
        (("process_resident_memory_bytes", "{{instance}} {{worker}}"),),
    ),
    Panel(
        "Process CPU",
        "CPU used by each frontend process (and worker), in cores.",
        "short",
        ((f"rate(process_cpu_seconds_total[{RATE}])", "{{instance}} {{worker}}"),),
    ),
    Panel(
        "Open file descriptors",
        "Open file descriptors of each process against its limit (every stream holds one "
        "connection's share).",
        "short",
        (
            ("process_open_fds", "{{instance}} {{worker}}"),
            ("process_max_fds", "limit {{instance}} {{worker}}"),
        ),
    ),
)


def _panel(index: int, panel: Panel) -> dict[str, object]:
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.shows,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
        "fieldConfig": {
            "defaults": {
                "unit": panel.unit,
                "custom": {"stacking": {"mode": "normal" if panel.stacked else "none"}},
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {
                "refId": chr(ord("A") + number),
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "expr": scoped(expr),
                "legendFormat": legend,
            }
            for number, (expr, legend) in enumerate(panel.queries)
        ],
    }


def _variable(name: str, query: str) -> dict[str, object]:
    """A variable of label values, several or all of them at once."""
    return {
        "name": name,
        "label": name,
        "type": "query",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "definition": query,
        "query": {"query": query, "refId": name},
        "refresh": 2,  # on time range change: new pods, new namespaces
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {"text": "All", "value": "$__all"},
        "sort": 1,
    }


def dashboard() -> dict[str, object]:
    return {
        "uid": "node-registry",
        "title": "node-registry",
        "description": "Cluster membership: nodes, registrations, the change path to subscribers, "
        "eviction, etcd and the frontend processes.",
        "tags": ["node-registry"],
        "timezone": "utc",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "editable": True,
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                },
                _variable("job", "label_values(noderegistry_build_info, job)"),
                _variable(
                    "namespace", 'label_values(noderegistry_build_info{job=~"$job"}, namespace)'
                ),
            ]
        },
        "panels": [_panel(i, panel) for i, panel in enumerate(PANELS)],
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def readme_section() -> str:
    """The README's list of panels (between its `dashboard` markers)."""
    return "\n".join(f"- **{panel.title}**: {panel.shows}" for panel in PANELS)


if __name__ == "__main__":
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT}")
