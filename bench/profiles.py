"""The sizes of each profile: `full` (make bench), `quick` (make bench-quick), `smoke` (the test
suite: seconds, every family of rows at a tiny size so that the harness cannot rot)."""

from __future__ import annotations

from typing import Any

# subscribers; node counts registered; changes sampled per fan-out run; seconds each lease load is
# held; subscriber processes; registrations kept alive for the lease figures; silent nodes for the
# expiry figure; registrations expiring at once. ZooKeeper: whether the profile measures it (not
# the smoke profile: the test suite needs no JVM, D132), the subscriber count measured beside it
# and the processes its kazoo sessions are spread over (threads, not an event loop: fewer per
# process). Issue 21 (D131): `burst` (held leases, their SDK client processes, the Registers of
# the burst and how many in flight, TTL, the pace at which the held ones register, seconds
# watched before the burst); `capacity` and `capacity_single` (the steps in leases, TTL, pace,
# Registers in flight while stepping, seconds watched per step, registrations per client process,
# the goal); `overload` (its load when no capacity was measured, seconds at twice it, seconds
# watched after); `scale` (nodes, Registers in flight, nodes changed while the frontend is cut
# off); `xds` (ADS clients beside as many WatchNodes subscribers, and the clients and changes of
# the churn, issue 23); `health` (nodes with a gRPC check and its interval, issue 24); `console`
# (nodes registered, changes applied, in Chromium: issue 26). A
# `label` names sizes smaller than the goals'.
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {
        "subscribers": [10],
        "zookeeper": False,
        "zookeeper_subscribers": 10,
        "zookeeper_processes": 1,
        "nodes": [50],
        "changes": 5,
        "hold": 0.0,
        "processes": 1,
        "leases": 0,
        "silent": 5,
        "mass": 0,
        "burst": {
            "held": 100,
            "holders": 2,
            "burst": 50,
            "in_flight": 16,
            "ttl": 3,
            "pace": 200,
            "before_seconds": 2.0,
        },
        "capacity": {
            "steps": [50, 100],
            "ttl": 3,
            "pace": 200,
            "in_flight": 16,
            "window_seconds": 3.0,
            "per_process": 100,
            "label": " (smoke steps)",
        },
        "capacity_single": {
            "steps": [10, 20],
            "ttl": 3,
            "pace": 100,
            "in_flight": 8,
            "window_seconds": 3.0,
            "per_process": 10,
            "label": " (smoke steps)",
        },
        "overload": {
            "ttl": 3,
            "pace": 200,
            "per_process": 100,
            "normal_without_capacity": 50,
            "before_seconds": 2.0,
            "overload_seconds": 3.0,
            "observe_seconds": 6.0,
            "label": " (smoke)",
        },
        "scale": {"nodes": 200, "in_flight": 32, "relist_changes": 20, "label": " (smoke)"},
        "xds": {"clients": 10, "churn_clients": 5, "churn_changes": 200},
        "health": {"nodes": 50, "interval": 1.0},
        "console": {"nodes": 200, "changes": 20},
    },
    "quick": {
        "subscribers": [100, 1000],
        "zookeeper": True,
        "zookeeper_subscribers": 1000,
        "zookeeper_processes": 4,
        "nodes": [1000],
        "changes": 20,
        "hold": 11.0,
        "processes": 2,
        "leases": 2000,
        "silent": 100,
        "mass": 2000,
        "burst": {
            "held": 4000,
            "holders": 4,
            "burst": 2000,
            "in_flight": 128,
            "ttl": 10,
            "pace": 300,
            "before_seconds": 10.0,
        },
        "capacity": {
            "steps": [2000, 4000, 6000, 8000, 12000],
            "ttl": 10,
            "pace": 300,
            "in_flight": 32,
            "window_seconds": 20.0,
            "per_process": 3000,
            "goal_leases": 40000,
            "label": " (quick steps)",
        },
        "capacity_single": {
            "steps": [250, 500, 1000, 2000],
            "ttl": 10,
            "pace": 300,
            "in_flight": 32,
            "window_seconds": 20.0,
            "per_process": 250,
            "label": " (quick steps)",
        },
        "overload": {
            "ttl": 10,
            "pace": 300,
            "per_process": 3000,
            "normal_without_capacity": 4000,
            "before_seconds": 10.0,
            "overload_seconds": 20.0,
            "observe_seconds": 30.0,
            "label": " (quick)",
        },
        "scale": {"nodes": 10000, "in_flight": 128, "relist_changes": 200, "label": " (quick)"},
        "xds": {"clients": 1000, "churn_clients": 100, "churn_changes": 2000},
        "health": {"nodes": 2000, "interval": 10.0},
        "console": {"nodes": 10_000, "changes": 100},
    },
    "full": {
        "subscribers": [100, 1000, 5000],
        "zookeeper": True,
        "zookeeper_subscribers": 1000,
        "zookeeper_processes": 4,
        "nodes": [1000, 10000, 50000],
        "changes": 40,
        "hold": 22.0,
        "processes": 2,
        "leases": 3000,
        "silent": 100,
        "mass": 10000,
        "burst": {
            "held": 20000,
            "holders": 4,
            "burst": 10000,
            "in_flight": 128,
            "ttl": 10,
            "pace": 300,
            "before_seconds": 10.0,
        },
        "capacity": {
            "steps": [10000, 20000, 30000, 40000, 60000],
            "ttl": 10,
            "pace": 300,
            "in_flight": 32,
            "window_seconds": 30.0,
            "per_process": 7500,
            "goal_leases": 40000,
        },
        "capacity_single": {
            "steps": [1000, 2000, 3000, 4000, 6000, 8000],
            "ttl": 10,
            "pace": 300,
            "in_flight": 32,
            "window_seconds": 30.0,
            "per_process": 500,
        },
        "overload": {
            "ttl": 10,
            "pace": 300,
            "per_process": 7500,
            "normal_without_capacity": 10000,
            "before_seconds": 10.0,
            "overload_seconds": 60.0,
            "observe_seconds": 60.0,
        },
        "scale": {"nodes": 100000, "in_flight": 128, "relist_changes": 1000},
        "xds": {"clients": 1000, "churn_clients": 100, "churn_changes": 10000},
        "health": {"nodes": 10_000, "interval": 10.0},
        "console": {"nodes": 10_000, "changes": 100},
    },
}
