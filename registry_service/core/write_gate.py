"""Which writes a frontend takes at all, asked before any etcd work by Register, KeepAlive and
Deregister alike:

- a node of this registry's own datacenter only (federation, docs/design.md §10): another
  datacenter's nodes are written by that datacenter's registry (WrongDatacenterError names it);
- while etcd can be reached (store-outage mode, D22): writes fail at once, so that the client
  tries another frontend, instead of each waiting out the etcd deadline.
"""

from __future__ import annotations

from typing import Protocol

from registry_service.datacenters import Datacenters
from registry_service.domain import NodeKey
from registry_service.errors import StoreUnavailableError


class StoreLink(Protocol):
    """Whether this frontend reaches etcd (the watch hub knows: `stale` while it cannot)."""

    @property
    def stale(self) -> bool:
        """Whether this frontend cannot reach etcd now."""


class WriteGate:
    """Refuses the writes this frontend must not take, with the error that says where to go."""

    def __init__(self, link: StoreLink, datacenters: Datacenters | None = None) -> None:
        self._link = link
        self._datacenters = datacenters or Datacenters()

    def check(self, key: NodeKey) -> None:
        """Both checks, for a write of `key`."""
        self.check_datacenter(key)
        self.check_store()

    def check_datacenter(self, key: NodeKey) -> None:
        """Raises WrongDatacenterError for a node of another datacenter."""
        self._datacenters.check_writable(key)

    def check_store(self) -> None:
        """Raises StoreUnavailableError while etcd cannot be reached."""
        if self._link.stale:
            raise StoreUnavailableError(
                "this frontend cannot reach etcd (or etcd has no leader): writes fail until it "
                "can; retry on another frontend. Lists are still served, marked stale "
                "(GetNodes CACHED, WatchNodes)"
            )
