"""What a frontend says of its own readiness (`/readyz` on the admin port and the HTTP API port).

Its own module because the JSON shapes (web/shapes.py) and the surfaces' configs both need it,
and the shapes sit below the surfaces.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Readiness:
    """What `/readyz` answers: ready means "can serve" (200), degraded means "serving stale
    lists, refusing writes" (still 200), not ready is 503 (not loaded yet, shutting down)."""

    ready: bool
    reason: str
    store_connected: bool
    """etcd reachable with a quorum (the watch up and the quorum probe answered)."""
    cache_age_seconds: float
    """Time since the etcd watch last spoke."""

    @property
    def degraded(self) -> bool:
        return self.ready and not self.store_connected
