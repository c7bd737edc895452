"""What the HTTP API port is handed (as the admin surface: a config of small interfaces, never the
frontend itself)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from registry_service.core.reads import ScopeIndex
from registry_service.domain import (
    AuditEntry,
    Consistency,
    Limits,
    NodeKey,
    NodeList,
    Registration,
    Scope,
    WatchResume,
)
from registry_service.hub.cluster_view import ClusterView
from registry_service.hub.subscription import Subscription
from registry_service.listeners import Listener
from registry_service.rpc.access import StreamCounter
from registry_service.web.admin_control import ControlRoutes
from registry_service.web.auth import HttpAuth
from registry_service.web.connection_guard import HttpLimits
from registry_service.web.edge import HttpObserver
from registry_service.web.readiness import Readiness


class NodeReads(Protocol):
    """The use cases the API serves (reads.Reads): GetNodes, its blocking form, WatchNodes."""

    async def get_nodes(self, scope: Scope, consistency: Consistency) -> NodeList:
        """The scope's nodes, as consistent as asked (GetNodes)."""

    async def get_nodes_blocking(
        self,
        scope: Scope,
        consistency: Consistency,
        since: ScopeIndex,
        wait_seconds: float,
        *,
        interrupt: asyncio.Event | None = None,
    ) -> NodeList:
        """GetNodes answered once the scope changed after `since`, or after `wait_seconds`."""

    def scope_index(self, scope: Scope) -> ScopeIndex:
        """Where the scope last changed: the index a blocking read waits past."""

    @property
    def waiting(self) -> int:
        """Blocking reads waiting for a change now."""

    async def watch(
        self, scope: Scope, resume: WatchResume, *, peer: str = "", acknowledging: bool = False
    ) -> Subscription:
        """A subscription to the scope from `resume` (WatchNodes)."""


class ReadAdmission(Protocol):
    """Renewals first (rpc/admission.Admission, D72): reads are refused while the frontend's
    event loop lags, on this port as on the gRPC port."""

    def read(self, what: str) -> None:
        """Raises OverloadedError (429 with Retry-After here) while the event loop lags."""


class ChangeFeed(Protocol):
    """This frontend's etcd's view (watch_hub.WatchHub), for the operator's reads."""

    @property
    def view(self) -> ClusterView:
        """The read model of this frontend's etcd."""


class OperatorReads(Protocol):
    """The operator's reads the console shows (operations.Operations)."""

    def suspects(self) -> list[Registration]:
        """Every SUSPECT member in this frontend's view, oldest suspicion first."""

    async def audit(self, key: NodeKey) -> list[AuditEntry]:
        """The node's transitions within the audit retention."""


Convergence = Callable[[int, Mapping[str, str]], Awaitable[dict[str, Any]]]
"""Every frontend's subscribers against a revision (admin_control.cluster_convergence), given the
headers that carry the caller's token and identity to the other frontends."""


@dataclass(frozen=True)
class ApiConfig:
    """Everything the HTTP API and console use, each part as small as it needs."""

    listener: Listener
    """Where the HTTP API and console listen (`http_listen`); port 0 picks a free one
    (`ApiServer.port`)."""
    reads: NodeReads
    feed: ChangeFeed
    operator: OperatorReads
    convergence: Convergence
    readiness: Callable[[], Readiness]
    """/healthz and /readyz here too, for a load balancer in front of this port."""
    auth: HttpAuth
    """Who may read what (the admin port's middleware: TLS client certificates, tokens, scopes)."""
    streams: StreamCounter
    """Open event streams per peer, shared with the gRPC port's KeepAlive and WatchNodes."""
    limits: Limits
    """What a node key may be (a malformed one is a 400 naming the rule, as on gRPC)."""
    max_wait_seconds: float = 300.0
    """The longest blocking read (`http_max_wait_seconds`)."""
    suspect_ceiling_seconds: float = 900.0
    """When a suspect is removed at the latest, as the console shows it."""
    max_request_bytes: int = 1024 * 1024
    """Largest request body; the request's head is bounded by `http_limits`."""
    http_limits: HttpLimits = field(default_factory=HttpLimits)
    """What one client may hold: head time and size, idle time, connections per peer."""
    shutdown_grace_seconds: float = 5.0
    """On stop, how long open requests get before they are cancelled."""
    ssl_context: ssl.SSLContext | None = None
    observe: HttpObserver | None = None
    """Request metrics (route, method, status, seconds): telemetry/metrics.py's."""
    control: ControlRoutes | None = None
    """The admin port's operator handlers (frontends, push switch, actions on nodes and
    suspects), mounted under /v1/cluster/ for the console; None: the port only reads."""
    admission: ReadAdmission | None = None
    """What refuses reads while the frontend is overloaded (None: every read is taken)."""
