"""A NodeWatch's local view, without a network: stream steps in, the view and its events out.

The view applies every step (snapshot, delta, progress) to a *shadow* list, exactly what the
registry says, and publishes the shadow as the view that `current()` shows. One exception,
Eureka's client-side protection (decision D13): when the shadow has lost a large share of the
view's nodes for reasons other than deregistration (an empty or much smaller list), the view is
held back, flagged stale, until the loss has lasted `shrink_hold_seconds` or the nodes are back.
Deliberate departures are never held back. The hold is checked on every step, progress included,
so it ends on time on an idle cluster.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from client_sdk._config import ShrinkReport, WatchConfig
from client_sdk._models import EventType, Node, NodeEvent, NodeKey, NodeList, RemovalReason

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
    """

    events: tuple[NodeEvent, ...] = ()
    held: ShrinkReport | None = None


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
        self.resyncs = 0
        self.shrinks_held = 0

    @property
    def revision(self) -> int:
        """The revision the stream is complete up to (deltas and progress included)."""
        return self._revision

    @property
    def stale(self) -> bool:
        """The frontend said it cannot reach etcd, or a suspicious shrink is held back."""
        return self._held_since is not None or self._frontend_stale

    def current(self) -> NodeList:
        """The published view, per datacenter, at its revision."""
        datacenters: dict[str, list[Node]] = {}
        for key in sorted(self._view):
            datacenters.setdefault(key.datacenter, []).append(self._view[key])
        revision = self._view_revision if self._held_since is not None else self._revision
        return NodeList(
            revision=revision,
            datacenters={dc: tuple(nodes) for dc, nodes in datacenters.items()},
            stale=self.stale,
        )

    # -- stream steps -------------------------------------------------------------------------

    def apply_snapshot(self, nodes: Iterable[Node], revision: int, *, resync: bool) -> ViewUpdate:
        """The whole scope at `revision` (the first message, or a resync after a gap)."""
        if resync:
            self.resyncs += 1
        self._shadow = {node.key: node for node in nodes}
        self._revision = revision
        return self._publish(None)

    def apply_delta(
        self, events: Sequence[NodeEvent], revision: int, *, relisted: bool
    ) -> ViewUpdate:
        """The changes of one revision; `relisted` ones are diffed against the view instead."""
        self._frontend_stale = False  # a change can only come from etcd
        for event in events:
            if event.type is EventType.REMOVED:
                self._shadow.pop(event.node.key, None)
                if event.reason is RemovalReason.DEREGISTERED:
                    self._deliberate.add(event.node.key)
            else:
                self._shadow[event.node.key] = event.node
                self._deliberate.discard(event.node.key)
        self._revision = revision
        return self._publish(None if relisted else list(events))

    def apply_progress(self, revision: int, *, stale: bool) -> ViewUpdate:
        """Nothing changed up to `revision`; `stale`: the frontend cannot reach etcd."""
        self._frontend_stale = stale
        self._revision = max(self._revision, revision)
        return self._publish([])

    # -- the shrink guard ---------------------------------------------------------------------

    def _suspicious(self, now: float) -> int:
        """How many nodes the view would lose for no deliberate reason, counting the losses of
        the last `shrink_window_seconds`, if that is a suspicious shrink; else 0."""
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
