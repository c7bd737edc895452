"""The nodes one xDS resource holds, kept from its WatchNodes subscription: pure state.

An EDS resource is a subscriber like any other (docs/design.md §12): a snapshot, then deltas, each
applied here. Its version is the revision it is complete up to, in the local etcd's revisions,
followed by each followed datacenter's (`812,dc2=455`, the HTTP API's event ids, D50): the same
scope at the same version holds the same nodes, so every stream of a scope shares one built
resource per version (session.ResourceCache).
"""

from __future__ import annotations

from registry_service.domain import (
    DeltaMessage,
    EventType,
    Node,
    NodeKey,
    SnapshotMessage,
    WatchMessage,
)


class NodeSet:
    """A resource's nodes and the version they are complete up to."""

    def __init__(self) -> None:
        self.nodes: dict[NodeKey, Node] = {}
        self.revision = 0  # the local etcd's
        self.remote: dict[str, int] = {}  # per followed datacenter, its registry's revision
        self.loaded = False
        self._version = ""

    @property
    def version(self) -> str:
        """`<local revision>[,<datacenter>=<revision>]...`, datacenters in name order."""
        if not self._version:
            parts = [str(self.revision)]
            parts.extend(f"{dc}={revision}" for dc, revision in sorted(self.remote.items()))
            self._version = ",".join(parts)
        return self._version

    def apply(self, message: WatchMessage) -> bool:
        """Applies one watch message; True when the nodes or the version changed (the resource
        is to be sent again). Progress messages change neither: a version moves with content."""
        if isinstance(message, SnapshotMessage):
            self._version = ""
            self._snapshot(message)
            self.loaded = True
            return True
        if not isinstance(message, DeltaMessage):
            return False
        self._version = ""
        if message.datacenter:
            self.remote[message.datacenter] = message.revision
        else:
            self.revision = message.revision
        for event in message.events:
            if event.type is EventType.REMOVED:
                self.nodes.pop(event.node.key, None)
            else:
                self.nodes[event.node.key] = event.node
        return True

    def _snapshot(self, message: SnapshotMessage) -> None:
        datacenter = message.datacenter
        if datacenter:  # one followed datacenter's list alone
            self.nodes = {k: n for k, n in self.nodes.items() if k.datacenter != datacenter}
            for entry in message.nodes.datacenters:
                self.nodes.update((node.key, node) for node in entry.nodes)
            self.remote[datacenter] = message.revision
            return
        nodes: dict[NodeKey, Node] = {}
        remote: dict[str, int] = {}
        for entry in message.nodes.datacenters:
            if entry.remote and entry.complete_revision == 0:
                # Not reached yet by this frontend: kept as held (a remote list is never
                # emptied by a lost link, docs/design.md §10).
                nodes.update(
                    (k, n) for k, n in self.nodes.items() if k.datacenter == entry.datacenter
                )
                if entry.datacenter in self.remote:
                    remote[entry.datacenter] = self.remote[entry.datacenter]
                continue
            nodes.update((node.key, node) for node in entry.nodes)
            if entry.remote:
                remote[entry.datacenter] = entry.complete_revision
        self.nodes, self.remote, self.revision = nodes, remote, message.revision
