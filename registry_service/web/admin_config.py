"""What the admin surface is handed (Consul-style: a config of small interfaces, never the
frontend itself). Its JSON shapes are web/shapes.py's."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry

from registry_service.control import OperatorEntry, PushSwitch
from registry_service.core.evictor import EvictorStatus
from registry_service.core.operations import NodeAction, PushChange
from registry_service.core.self_preservation import BudgetPolicy
from registry_service.domain import (
    AuditEntry,
    NodeKey,
    NodeList,
    NodeStatus,
    Registration,
    Scope,
)
from registry_service.hub.operator_state import OperatorView
from registry_service.hub.subscription import Subscription
from registry_service.listeners import Listener
from registry_service.store.base import StoredNode
from registry_service.web.auth import HttpAuth
from registry_service.web.connection_guard import HttpLimits
from registry_service.web.peers import PeerAdmins
from registry_service.web.readiness import Readiness


class WatchControl(Protocol):
    """What the admin surface reads of the watch hub."""

    @property
    def revision(self) -> int: ...

    @property
    def subscriptions(self) -> list[Subscription]: ...

    def node_list(self, scope: Scope) -> NodeList: ...


class EvictionReport(Protocol):
    """What the admin surface shows of the evictor."""

    @property
    def status(self) -> EvictorStatus: ...

    @property
    def policy(self) -> BudgetPolicy: ...


class OperatorActions(Protocol):
    """The operator's use cases (core/operations.py) the admin surface drives."""

    def suspects(self) -> list[Registration]: ...

    async def settle_suspect(self, key: NodeKey, *, evict: bool, operator: str = "") -> int: ...

    async def audit(self, key: NodeKey) -> list[AuditEntry]: ...

    async def operator_audit(self) -> list[OperatorEntry]: ...

    async def set_push_switch(
        self, change: PushChange, operator: str
    ) -> tuple[PushSwitch, int]: ...

    async def set_override(
        self, key: NodeKey, status: NodeStatus | None, operator: str, reason: str = ""
    ) -> NodeAction: ...

    async def evict(
        self, key: NodeKey, operator: str, *, hold_seconds: float = 0.0, reason: str = ""
    ) -> NodeAction: ...

    async def lift_hold(self, key: NodeKey, operator: str) -> NodeAction: ...

    async def stored_node(self, key: NodeKey) -> StoredNode: ...


@dataclass(frozen=True)
class AdminConfig:
    """Everything the admin surface uses, each part as small as it needs (Consul-style): the
    composition root hands these over and the admin never sees the frontend itself."""

    listener: Listener
    """Where the HTTP server listens (`admin_listen`); port 0 picks a free one
    (`AdminServer.port`)."""
    frontend_id: str
    """This frontend's name, as `/admin/evictor` reports it."""
    metrics: CollectorRegistry
    """What `/metrics` serves: the frontend's own Prometheus registry."""
    readiness: Callable[[], Readiness]
    """Whether the frontend can serve, and how well (`/readyz`)."""
    watch: WatchControl
    """Nodes and subscribers as this frontend holds them."""
    operator_state: OperatorView
    """The announced frontends and the push switch as applied here (read-only)."""
    eviction: EvictionReport
    """The evictor's state and budget policy."""
    operations: OperatorActions
    """The push switch, actions on nodes, suspects and the audit trail."""
    auth: HttpAuth
    """Who may do what (TLS client certificates, bearer tokens and their scopes)."""
    peers: PeerAdmins
    """How the cluster-wide views ask the other frontends."""
    http_limits: HttpLimits = field(default_factory=HttpLimits)
    """What one client may hold on the port (web/connection_guard.py)."""
    ssl_context: ssl.SSLContext | None = None
    """TLS of the admin port (the gRPC port's certificate); None: plaintext."""
