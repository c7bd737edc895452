"""Operator state that lives in etcd, not in one process (docs/design.md §9): pure data, no I/O.

- `PushSwitch` (`switches/push`): pushes on or off, and a gray list of subscribers held back while
  the rest are pushed (scopes and/or peer networks). Every frontend and worker applies it from its
  one watch, and a frontend that starts reads it with its initial load.
- `Announcement` (`frontends/<id>`, on the frontend's own lease): who serves, where, what version,
  how many subscribers; what the cluster-wide admin views fan out to.
- `OperatorEntry` (`operator-audit/...`, on the audit lease): one operator action and who did it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from registry_service.domain import Scope
from registry_service.errors import InvalidArgumentError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class HeldScope:
    """A (datacenter, type) pair of the gray list; an empty field means any."""

    datacenter: str = ""
    type: str = ""

    def overlaps(self, scope: Scope) -> bool:
        """Whether a subscriber of `scope` can receive a node of this pair."""
        datacenter_ok = (
            not self.datacenter or not scope.datacenters or self.datacenter in scope.datacenters
        )
        type_ok = not self.type or not scope.types or self.type in scope.types
        return datacenter_ok and type_ok

    def __str__(self) -> str:
        return f"{self.datacenter or '*'}/{self.type or '*'}"


@dataclass(frozen=True, slots=True)
class PushSwitch:
    """The cluster's push switch (SOFARegistry's), as stored in etcd.

    Off: no subscriber gets deltas. On with a gray list: subscribers whose scope overlaps a held
    scope, or whose address lies in a held network, get none, the others are pushed as usual.
    Whoever is released (the switch turned on, or the gray list no longer holds it) gets one
    resync snapshot (PUSH_RESUMED): nothing is lost.
    """

    enabled: bool = True
    held_scopes: tuple[HeldScope, ...] = ()
    held_networks: tuple[str, ...] = ()  # CIDR, canonical (ipaddress' form)
    changed_by: str = ""
    changed_at: float = 0.0

    def holds(
        self, scope: Scope, peer_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    ) -> bool:
        """Whether a subscriber of `scope` at `peer_ip` gets no deltas now."""
        if not self.enabled:
            return True
        if any(held.overlaps(scope) for held in self.held_scopes):
            return True
        if peer_ip is not None:
            return any(peer_ip in network for network in _networks(self.held_networks))
        return False

    @property
    def gray(self) -> bool:
        """Whether a gray list holds some subscribers back while the others are pushed."""
        return bool(self.held_scopes or self.held_networks)


def _networks(cidrs: tuple[str, ...]) -> list[IPNetwork]:
    return [ipaddress.ip_network(cidr, strict=False) for cidr in cidrs]


def parse_held_scope(text: str) -> HeldScope:
    """`dc1/data`, `dc1/*`, `*/meta` (or `dc1`: every type of dc1) as a held scope."""
    datacenter, _, node_type = text.partition("/")
    datacenter = "" if datacenter in ("", "*") else datacenter
    node_type = "" if node_type in ("", "*") else node_type
    if not datacenter and not node_type:
        raise InvalidArgumentError(
            f"held scope {text!r} holds everything: switch pushes off instead"
        )
    return HeldScope(datacenter, node_type)


def parse_network(text: str) -> str:
    """A CIDR (`10.1.0.0/16`, `2001:db8::/32`, or one address) in canonical form."""
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise InvalidArgumentError(
            f"held network {text!r} is not an IP network (CIDR such as 10.1.0.0/16)"
        ) from None


def peer_address(peer: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP of a gRPC peer string (`ipv4:10.0.0.5:41000`, `ipv6:[::1]:41000`); None otherwise
    (a Unix socket, an unknown form)."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        host = rest.rpartition(":")[0]
    elif kind == "ipv6":
        host = rest.rpartition(":")[0].strip("[]")
    else:
        return None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Announcement:
    """A frontend as it announces itself under `frontends/<id>` (on its own lease: it goes away
    with the frontend). With workers, each worker announces itself with the host's admin address,
    which answers for all of them."""

    id: str
    host: str
    pid: int
    worker_index: int
    worker_count: int
    grpc_address: str
    admin_url: str
    version: str
    started_at: float
    subscribers: int = 0


@dataclass(frozen=True, slots=True)
class OperatorEntry:
    """One operator action, audited in etcd with the operator's identity."""

    action: str  # push.off, push.on, push.gray, node.maintenance, node.drain, node.clear, ...
    operator: str
    time: float
    frontend: str
    target: str = ""  # a node (dc/type/id), or "" for cluster-wide switches
    detail: str = ""
    revision: int = 0
