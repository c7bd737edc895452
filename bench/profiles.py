"""The sizes of each profile: `full` (make bench), `quick` (make bench-quick), `smoke` (the test
suite: seconds, every family of rows at a tiny size so that the harness cannot rot)."""

from __future__ import annotations

from typing import Any

# subscribers; node counts registered; changes sampled per fan-out run; seconds each lease load is
# held; subscriber processes; registrations kept alive for the lease figures; silent nodes for the
# expiry figure; registrations expiring at once.
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {
        "subscribers": [10],
        "nodes": [50],
        "changes": 5,
        "hold": 0.0,
        "processes": 1,
        "leases": 0,
        "silent": 5,
        "mass": 0,
    },
    "quick": {
        "subscribers": [100, 1000],
        "nodes": [1000],
        "changes": 20,
        "hold": 11.0,
        "processes": 2,
        "leases": 2000,
        "silent": 100,
        "mass": 2000,
    },
    "full": {
        "subscribers": [100, 1000, 5000],
        "nodes": [1000, 10000, 50000],
        "changes": 40,
        "hold": 22.0,
        "processes": 2,
        "leases": 3000,
        "silent": 100,
        "mass": 10000,
    },
}
