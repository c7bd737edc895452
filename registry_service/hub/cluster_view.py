"""The frontend's read model: every member and live key of the cluster at one revision.

The watch hub alone writes it: `apply` each revision's batch as the store's watch delivers it,
`relist` after a compacted watch made the hub re-read everything. Everyone else (the registry,
the evictor, metrics, the admin surface) reads it through the queries below, never through its
indexes, which exist for speed and change with it.

Contracts:
- `apply` and `relist` return the node events that lead from the old view to the new one, in
  etcd's order within a revision; a removal carries the reason written beside it (the identity
  record of the same revision).
- A member is expired while its live key is absent, whatever order the two keys change in.
- Each datacenter's revision is that of the last change to one of its members; each (datacenter,
  type)'s likewise (`scope_revision`: what a blocking read waits to see move). Neither ever goes
  back, nor is forgotten when the last member goes.
- `known_types` are the (datacenter, type)s with a member or an identity record when the view
  was loaded, and every one that got either since: never forgotten while the frontend runs (the
  node-count gauges report them at 0 rather than drop them).
"""

from __future__ import annotations

from collections.abc import Iterator

from registry_service.domain import (
    DatacenterNodes,
    EventType,
    Node,
    NodeEvent,
    NodeKey,
    NodeList,
    Registration,
    RemovalReason,
    Scope,
)
from registry_service.store.base import (
    ClusterState,
    IdentityPut,
    LiveChanged,
    Member,
    MemberDeleted,
    MemberPut,
    StoreBatch,
)


class ClusterView:
    """Every member and live key at one revision; turns store batches into node events."""

    def __init__(self, state: ClusterState) -> None:
        self._revision = state.revision
        self._datacenter_revisions: dict[str, int] = {}
        self._type_revisions: dict[tuple[str, str], int] = {}
        self._known_types: set[tuple[str, str]] = set(state.known_types)
        self._index(state)
        for key, member in self._members.items():
            self._touch(key, member.mod_revision)

    def _index(self, state: ClusterState) -> None:
        self._members: dict[NodeKey, Member] = dict(state.members)
        self._live: set[NodeKey] = set(state.live)
        # Members whose live key is gone, kept up to date change by change: the evictor reads it
        # after every revision, and scanning every member there made registration quadratic.
        self._expired: set[NodeKey] = set(self._members) - self._live
        # Members grouped by (datacenter, type): a scoped snapshot reads only its groups instead
        # of filtering every member (thousands of scoped subscribers on a large cluster).
        self._groups: dict[tuple[str, str], dict[NodeKey, Member]] = {}
        for key, member in self._members.items():
            self._group(key)[key] = member
        self._known_types |= state.known_types | self._groups.keys()

    def _group(self, key: NodeKey) -> dict[NodeKey, Member]:
        return self._groups.setdefault((key.datacenter, key.type), {})

    def _ungroup(self, key: NodeKey) -> None:
        group = self._groups.get((key.datacenter, key.type))
        if group is not None:
            group.pop(key, None)
            if not group:
                del self._groups[(key.datacenter, key.type)]

    def _touch(self, key: NodeKey, revision: int) -> None:
        if revision > self._datacenter_revisions.get(key.datacenter, 0):
            self._datacenter_revisions[key.datacenter] = revision
        group = (key.datacenter, key.type)
        if revision > self._type_revisions.get(group, 0):
            self._type_revisions[group] = revision

    # -- written by the watch hub -------------------------------------------------------------

    def apply(self, batch: StoreBatch) -> tuple[NodeEvent, ...]:
        """Applies one revision's changes; returns the node events they make, in etcd's order."""
        reasons = {
            change.key: change.identity.removal_reason
            for change in batch.changes
            if isinstance(change, IdentityPut) and change.identity.removal_reason
        }
        events: list[NodeEvent] = []
        for change in batch.changes:
            if isinstance(change, MemberPut):
                previous = self._members.get(change.key)
                self._members[change.key] = change.member
                self._group(change.key)[change.key] = change.member
                self._known_types.add((change.key.datacenter, change.key.type))
                if change.key not in self._live:
                    self._expired.add(change.key)
                if previous is None:
                    events.append(NodeEvent(EventType.ADDED, change.member.registration.node))
                else:
                    node, before = change.member.registration.node, previous.registration.node
                    events.append(NodeEvent(EventType.UPDATED, node, previous=before))
                self._touch(change.key, batch.revision)
            elif isinstance(change, MemberDeleted):
                self._expired.discard(change.key)
                self._ungroup(change.key)
                gone = self._members.pop(change.key, None)
                if gone is not None:
                    reason = reasons.get(change.key) or RemovalReason.UNSPECIFIED
                    events.append(NodeEvent(EventType.REMOVED, gone.registration.node, reason))
                    self._touch(change.key, batch.revision)
            elif isinstance(change, IdentityPut):
                self._known_types.add((change.key.datacenter, change.key.type))
            elif isinstance(change, LiveChanged):
                if change.alive:
                    self._live.add(change.key)
                    self._expired.discard(change.key)
                else:
                    self._live.discard(change.key)
                    if change.key in self._members:
                        self._expired.add(change.key)
        self._revision = max(self._revision, batch.revision)
        return tuple(events)

    def relist(self, state: ClusterState) -> tuple[NodeEvent, ...]:
        """Takes a freshly read state in place of the view (after a compacted watch); returns the
        events that lead from the old view to it. Removals carry no reason: the deletes are gone
        with their revisions."""
        events: list[NodeEvent] = []
        for key, member in self._members.items():
            if key not in state.members:
                events.append(NodeEvent(EventType.REMOVED, member.registration.node))
        for key, member in state.members.items():
            previous = self._members.get(key)
            if previous is None:
                events.append(NodeEvent(EventType.ADDED, member.registration.node))
            elif previous.registration != member.registration:
                node, before = member.registration.node, previous.registration.node
                events.append(NodeEvent(EventType.UPDATED, node, previous=before))
        for event in events:
            self._touch(event.node.key, state.revision)
        self._index(state)
        self._revision = max(self._revision, state.revision)
        return tuple(events)

    # -- queries ------------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        """The newest revision applied (etcd's, including revisions that changed no member)."""
        return self._revision

    def scope_revision(self, scope: Scope) -> int:
        """The revision of the scope's last change (0: it never had a member)."""
        return max(
            (
                revision
                for (datacenter, node_type), revision in self._type_revisions.items()
                if scope.matches(NodeKey(datacenter, node_type, ""))
            ),
            default=0,
        )

    def registration(self, key: NodeKey) -> Registration | None:
        """The node's registration, or None when it is not a member."""
        member = self._members.get(key)
        return member.registration if member else None

    def known_types(self) -> frozenset[tuple[str, str]]:
        """The (datacenter, type)s this view knows (see the module docstring)."""
        return frozenset(self._known_types)

    def members(self, scope: Scope) -> Iterator[Member]:
        """Every member in the scope, in no particular order."""
        for _, group in self._groups_in(scope):
            yield from group.values()

    def expired(self) -> list[tuple[NodeKey, Member]]:
        """Members whose live key is gone: they stopped renewing."""
        return [(key, self._members[key]) for key in self._expired]

    def datacenter_sizes(self) -> dict[str, int]:
        """How many members each datacenter has."""
        sizes: dict[str, int] = {}
        for (datacenter, _), group in self._groups.items():
            sizes[datacenter] = sizes.get(datacenter, 0) + len(group)
        return sizes

    def type_sizes(self) -> dict[tuple[str, str], int]:
        """How many members each (datacenter, type) has."""
        return {group: len(members) for group, members in self._groups.items()}

    def node_list(self, scope: Scope, age_seconds: float = 0.0, stale: bool = False) -> NodeList:
        """The scope's nodes grouped per datacenter, each with its own revision (a healthy-only
        scope: its healthy nodes). A datacenter named in the scope is listed (empty) once it has
        ever had a member."""
        per_datacenter: dict[str, list[Node]] = {
            dc: [] for dc in scope.datacenters if dc in self._datacenter_revisions
        }
        selector = scope.selector
        for datacenter, group in self._groups_in(scope):
            members = (member.registration.node for member in group.values())
            if scope.filters:
                selected = [node for node in members if scope.passes(node)]
                # A label selector: a datacenter of no match is not listed; a healthy-only scope
                # lists a datacenter whose nodes all fail (empty).
                if selected or not selector:
                    per_datacenter.setdefault(datacenter, []).extend(selected)
            else:
                per_datacenter.setdefault(datacenter, []).extend(members)
        return NodeList(
            revision=self._revision,
            datacenters=tuple(
                DatacenterNodes(
                    datacenter=dc,
                    revision=self._datacenter_revisions.get(dc, 0),
                    nodes=tuple(sorted(nodes, key=lambda node: (node.type, node.id))),
                    complete_revision=self._revision,
                    stale=stale,
                    age_seconds=age_seconds,
                )
                for dc, nodes in sorted(per_datacenter.items())
            ),
            age_seconds=age_seconds,
            stale=stale,
        )

    def _groups_in(self, scope: Scope) -> Iterator[tuple[str, dict[NodeKey, Member]]]:
        for (datacenter, node_type), group in self._groups.items():
            if scope.matches(NodeKey(datacenter, node_type, "")):
                yield datacenter, group
