"""A NodeWatch's local view, without a network: stream steps in, the view and its events out.

The view applies every step (snapshot, delta, progress) to a *shadow* list, exactly what the
registry says, and publishes the shadow as the view that `current()` shows. One exception,
Eureka's client-side protection (decision D13): when the shadow has lost a large share of the
view's nodes for reasons other than deregistration (an empty or much smaller list), the view is
held back, flagged stale, until the loss has lasted `shrink_hold_seconds` or the nodes are back.
Deliberate departures are never held back. The hold is checked on every step, progress included,
so it ends on time on an idle cluster.

Federation (several datacenters, each with a registry of its own): the frontend streams the remote
datacenters it follows beside its own etcd's, each in its own registry's revisions. The view keeps
one revision per registry (`revision` for the frontend's own, `remote_revisions` for the others:
the vector a watch resumes from) and each datacenter's staleness. A remote datacenter the frontend
has not reached yet is kept as the view had it, marked stale: never emptied.

Never back in time (decision D80): a list of a registry older than what the view holds of it (a
frontend whose copy lags, when the watch resumed there) is refused. The view keeps its own list,
marks that registry stale, and skips the stream's messages of it up to the revision it holds;
the first one past it applies and ends the refusal (a relisted difference past it cannot apply
to the view's list: the watch resumes instead, `ViewUpdate.resume`).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from client_sdk._config import ShrinkReport, WatchConfig
from client_sdk._models import (
    DatacenterState,
    EventType,
    Node,
    NodeEvent,
    NodeKey,
    NodeList,
    RemovalReason,
)

log = logging.getLogger("client_sdk")


def diff(old: dict[NodeKey, Node], new: dict[NodeKey, Node], revision: int) -> list[NodeEvent]:
    """The events that turn `old` into `new`: removals first, then additions and updates."""
    events = [
        NodeEvent(EventType.REMOVED, node, revision)
        for key, node in sorted(old.items())
        if key not in new
    ]
    for key, node in sorted(new.items()):
        previous = old.get(key)
        if previous is None:
            events.append(NodeEvent(EventType.ADDED, node, revision))
        elif previous != node:
            events.append(NodeEvent(EventType.UPDATED, node, revision))
    return events


@dataclass(frozen=True)
class ViewUpdate:
    """What one step changed.

    Attributes:
        events: the view's changes, in order; empty when nothing changed or a shrink is held.
        held: set on the step that started holding back a suspicious shrink.
        refused: the registries ("" the frontend's own, else a remote datacenter) whose part of
            the step was older than the view and not applied.
        resume: the step cannot be applied at all (a relisted difference made from an older
            list): the stream must be resumed from the view's revisions.
    """

    events: tuple[NodeEvent, ...] = ()
    held: ShrinkReport | None = None
    refused: tuple[str, ...] = ()
    resume: bool = False


class WatchView:
    """The shadow list, the published view, and the shrink guard between them.

    Args:
        config: the shrink guard's thresholds.
        clock: monotonic seconds (tests drive their own).
    """

    def __init__(self, config: WatchConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._shadow: dict[NodeKey, Node] = {}
        self._view: dict[NodeKey, Node] = {}
        self._deliberate: set[NodeKey] = set()
        self._revision = 0
        self._view_revision = 0
        self._held_since: float | None = None
        self._recent_losses: collections.deque[tuple[float, NodeKey]] = collections.deque()
        self._frontend_stale = False
        self._frontend_age_seconds = 0.0
        self._local_changed: dict[str, int] = {}  # the frontend's own datacenters' last changes
        self._remote: dict[str, DatacenterState] = {}  # remote datacenters, in their revisions
        self._behind: dict[str, int] = {}  # registry -> what it held when it refused older
        self.resyncs = 0
        self.shrinks_held = 0

    @property
    def revision(self) -> int:
        """The revision the stream is complete up to (deltas and progress included)."""
        return self._revision

    @property
    def remote_revisions(self) -> dict[str, int]:
        """Per remote datacenter, its registry's revision the view is complete up to."""
        return {dc: state.revision for dc, state in self._remote.items() if state.revision > 0}

    @property
    def stale(self) -> bool:
        """Whether the view may be out of date.

        The frontend said it cannot reach etcd, a remote datacenter's list is stale, or a
        suspicious shrink is held back.
        """
        return (
            self._held_since is not None
            or self._frontend_stale
            or bool(self._behind)
            or any(state.stale for state in self._remote.values())
        )

    def held_revision(self, registry: str) -> int:
        """The revision the view holds of a registry ("": the frontend's own)."""
        if not registry:
            return self._revision
        state = self._remote.get(registry)
        return state.revision if state else 0

    def current(self) -> NodeList:
        """The published view, per datacenter, at its revision."""
        revision = self._view_revision if self._held_since is not None else self._revision
        return self._node_list(self._view, revision)

    def stream_state(self) -> NodeList:
        """Exactly what the stream says (no shrink held back): where a relay starts from."""
        return self._node_list(self._shadow, self._revision)

    def _node_list(self, nodes: Mapping[NodeKey, Node], revision: int) -> NodeList:
        datacenters: dict[str, list[Node]] = {}
        for key in sorted(nodes):
            datacenters.setdefault(key.datacenter, []).append(nodes[key])
        states = {
            dc: DatacenterState(
                revision,
                self._local_changed.get(dc, 0),
                stale=self._frontend_stale or "" in self._behind,
                age_seconds=self._frontend_age_seconds,
            )
            for dc in datacenters
            if dc not in self._remote
        }
        states.update(self._remote)
        return NodeList(
            revision=revision,
            datacenters={dc: tuple(nodes) for dc, nodes in datacenters.items()},
            cache_age_seconds=self._frontend_age_seconds,
            stale=self.stale,
            datacenter_states=dict(sorted(states.items())),
        )

    # -- stream steps -------------------------------------------------------------------------

    def apply_snapshot(
        self,
        nodes: Iterable[Node],
        revision: int,
        *,
        resync: bool,
        states: Mapping[str, DatacenterState] | None = None,
        datacenter: str = "",
    ) -> ViewUpdate:
        """Applies a whole list: the first message, or a resync after a gap.

        The whole scope at `revision`, each datacenter's state in `states`; or, with
        `datacenter`, that remote datacenter's list alone at its registry's `revision`,
        replacing only what the view had of it.
        """
        states = states or {}
        if datacenter:
            if revision < self.held_revision(datacenter):
                return self._refuse(datacenter)
            if resync:
                self.resyncs += 1
            self._behind.pop(datacenter, None)
            self._shadow = {k: n for k, n in self._shadow.items() if k.datacenter != datacenter}
            self._shadow.update((n.key, n) for n in nodes if n.datacenter == datacenter)
            self._remote[datacenter] = states.get(
                datacenter, DatacenterState(revision, remote=True)
            )
            return self._publish(None)
        remotes = {dc for dc, state in states.items() if state.remote}
        refused: list[str] = []
        if revision < self._revision:  # the frontend's own registry, older: keep the view's
            refused.append("")
            self._behind[""] = self._revision
            shadow = {
                k: n
                for k, n in self._shadow.items()
                if k.datacenter not in remotes and k.datacenter not in self._remote
            }
            shadow.update((n.key, n) for n in nodes if n.datacenter in remotes)
        else:
            self._behind.pop("", None)
            shadow = {node.key: node for node in nodes}
            self._local_changed = {
                dc: st.changed_revision for dc, st in states.items() if not st.remote
            }
            self._revision = revision
        remote: dict[str, DatacenterState] = {}
        for dc in remotes:
            state, previous = states[dc], self._remote.get(dc)
            if previous is not None and state.revision < previous.revision:
                # Not reached by the frontend yet (revision 0), or older than the view's: keep
                # what the view had, stale.
                shadow = {k: n for k, n in shadow.items() if k.datacenter != dc}
                shadow.update((k, n) for k, n in self._shadow.items() if k.datacenter == dc)
                remote[dc] = dataclasses.replace(previous, stale=True)
                if state.revision:
                    refused.append(dc)
                    self._behind[dc] = previous.revision
            else:
                remote[dc] = state
                self._behind.pop(dc, None)
        if resync and len(refused) < 1 + len(remotes):
            self.resyncs += 1
        self._remote = remote
        self._shadow = shadow
        return dataclasses.replace(self._publish(None), refused=tuple(refused))

    def apply_delta(
        self, events: Sequence[NodeEvent], revision: int, *, relisted: bool, datacenter: str = ""
    ) -> ViewUpdate:
        """Applies the changes of one revision (of `datacenter`'s registry when set).

        `relisted` changes are diffed against the view instead.
        """
        held = self._behind.get(datacenter)
        if held is not None:
            if revision <= held:
                return self._refuse(datacenter)  # it has them
            if relisted:  # a difference from a list older than the view's
                return ViewUpdate(refused=(datacenter,), resume=True)
            del self._behind[datacenter]
        if datacenter:
            previous = self._remote.get(datacenter, DatacenterState(0, remote=True))
            self._remote[datacenter] = dataclasses.replace(
                previous,
                revision=revision,
                changed_revision=revision if events else previous.changed_revision,
                stale=False,  # a change can only come from its registry
                age_seconds=0.0,
            )
        else:
            self._frontend_stale = False  # a change can only come from etcd
            self._frontend_age_seconds = 0.0
            self._revision = revision
            for event in events:
                self._local_changed[event.node.datacenter] = revision
        for event in events:
            if event.type is EventType.REMOVED:
                self._shadow.pop(event.node.key, None)
                if event.reason is RemovalReason.DEREGISTERED:
                    self._deliberate.add(event.node.key)
            else:
                self._shadow[event.node.key] = event.node
                self._deliberate.discard(event.node.key)
        return self._publish(None if relisted else list(events))

    def apply_progress(
        self, revision: int, *, stale: bool, age_seconds: float = 0.0, datacenter: str = ""
    ) -> ViewUpdate:
        """Applies a progress message: nothing changed up to `revision`.

        In `datacenter`'s registry's revisions when set. `stale`: the frontend cannot reach etcd
        (or that datacenter); `age_seconds`: how long ago it last heard from it.
        """
        held = self._behind.get(datacenter)
        if held is not None:
            if revision < held:
                return self._refuse(datacenter)
            del self._behind[datacenter]  # the frontend has reached what the view holds
        if datacenter:
            previous = self._remote.get(datacenter, DatacenterState(0, remote=True))
            self._remote[datacenter] = dataclasses.replace(
                previous,
                revision=max(previous.revision, revision),
                stale=stale,
                age_seconds=age_seconds,
            )
        else:
            self._frontend_stale = stale
            self._frontend_age_seconds = age_seconds
            self._revision = max(self._revision, revision)
        return self._publish([])

    def _refuse(self, registry: str) -> ViewUpdate:
        """A step of `registry` older than the view: not applied.

        The registry is stale until the stream passes the revision the view holds of it.
        """
        self._behind.setdefault(registry, self.held_revision(registry))
        state = self._remote.get(registry)
        if registry and state is not None:
            self._remote[registry] = dataclasses.replace(state, stale=True)
        return dataclasses.replace(self._publish([]), refused=(registry,))

    # -- the shrink guard ---------------------------------------------------------------------

    def _suspicious(self, now: float) -> int:
        """How many nodes the view would lose for no deliberate reason, if that is suspicious.

        Counts the losses of the last `shrink_window_seconds`; 0 when they are not a
        suspicious shrink.
        """
        window = self._config.shrink_window_seconds
        while self._recent_losses and now - self._recent_losses[0][0] > window:
            self._recent_losses.popleft()
        pending = sum(
            1 for key in self._view if key not in self._shadow and key not in self._deliberate
        )
        if not pending:
            return 0
        lost = pending + len(self._recent_losses)
        baseline = len(self._view) + len(self._recent_losses)
        threshold = max(self._config.shrink_min_nodes, self._config.shrink_ratio * baseline)
        return lost if lost >= threshold else 0

    def _publish(self, events: list[NodeEvent] | None) -> ViewUpdate:
        """Makes the shadow the view, unless that is a suspicious shrink to hold back.

        `events` are the stream's own events for this step; None means "compute them by diff"
        (snapshots, relisted deltas, releasing a hold).
        """
        now = self._clock()
        lost = self._suspicious(now)
        held: ShrinkReport | None = None
        if lost:
            if self._held_since is None:
                baseline = len(self._view) + len(self._recent_losses)
                held = ShrinkReport(baseline, baseline - lost, self._revision)
                self._held_since = now
                self.shrinks_held += 1
                log.warning(
                    "watch: holding back a suspicious shrink (%d of %d nodes gone at revision %d)",
                    lost,
                    baseline,
                    self._revision,
                )
            if now - self._held_since < self._config.shrink_hold_seconds:
                return ViewUpdate(held=held)
            log.warning("watch: the shrink lasted %.0fs; accepting it", now - self._held_since)
            self._recent_losses.clear()
        elif self._held_since is not None:
            log.info("watch: the held-back nodes are back; the view is current again")
        if self._held_since is not None:
            self._held_since = None
            events = None
        if events is None:
            events = [self._with_reason(e) for e in diff(self._view, self._shadow, self._revision)]
        for event in events:
            if event.type is EventType.REMOVED and event.reason is not RemovalReason.DEREGISTERED:
                self._recent_losses.append((now, event.node.key))
        self._view = dict(self._shadow)
        self._view_revision = self._revision
        self._deliberate.clear()
        return ViewUpdate(tuple(events), held)

    def _with_reason(self, event: NodeEvent) -> NodeEvent:
        if event.type is EventType.REMOVED and event.node.key in self._deliberate:
            return NodeEvent(event.type, event.node, event.revision, RemovalReason.DEREGISTERED)
        return event
