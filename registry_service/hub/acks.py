"""What a subscriber has confirmed (AckWatch), and since when it owes a confirmation: pure logic.

A subscription keeps one `AckTracker`. The transport reports each snapshot or delta it wrote
(`written`), the subscriber its acknowledgements (`ack`). From these come:

- the ack latency (written -> acknowledged, in seconds: the `written_to_acked` stage);
- `unacked_since`: when the oldest message not yet acknowledged was written (0: none owed);
- `overdue(now, deadline)`: a subscriber that opted into acknowledgements and has owed one for
  longer than the deadline is silent: the hub re-pushes it (resync UNCONFIRMED).

Streams that never acknowledge and did not opt in keep nothing per message (`tracking` stays
false until their first acknowledgement).
"""

from __future__ import annotations

import collections
from collections.abc import Callable

_WRITTEN_KEPT = 64


class AckTracker:
    """One subscription's acknowledgements: the ack latency, and whether one is overdue."""

    def __init__(self, *, acknowledging: bool, observe: Callable[[float], None]) -> None:
        """`acknowledging`: the subscriber promised to acknowledge (WatchNodesRequest field 3).
        `observe(seconds)` gets each ack latency."""
        self.acknowledging = acknowledging
        self.acked_revision = 0
        self.delivered_revision = 0  # the newest snapshot or delta written
        self.unacked_since = 0.0  # monotonic time the oldest unacknowledged message was written
        self._observe = observe
        self._written: collections.deque[tuple[int, float]] | None = (
            collections.deque(maxlen=_WRITTEN_KEPT) if acknowledging else None
        )

    @property
    def tracking(self) -> bool:
        """Whether this subscriber's messages are timed (it acknowledges, or said it would)."""
        return self._written is not None

    def written(self, revision: int, at: float) -> None:
        """A snapshot or delta of `revision` was written to the stream at monotonic time `at`."""
        self.delivered_revision = max(self.delivered_revision, revision)
        if self._written is None:
            return
        self._written.append((revision, at))
        if revision > self.acked_revision and not self.unacked_since:
            self.unacked_since = at

    def ack(self, revision: int, sent_revision: int, now: float) -> None:
        """The subscriber applied everything up to `revision` (never counted beyond what it was
        sent)."""
        self.acked_revision = max(self.acked_revision, min(revision, sent_revision))
        if self._written is None:
            self._written = collections.deque(maxlen=_WRITTEN_KEPT)
            return
        latest = 0.0
        while self._written and self._written[0][0] <= revision:
            latest = self._written.popleft()[1]
        if latest:
            self._observe(now - latest)
        if self.acked_revision >= self.delivered_revision:
            self.unacked_since = 0.0
        elif self._written:
            self.unacked_since = self._written[0][1]

    def overdue(self, now: float, deadline_seconds: float) -> bool:
        """An acknowledging subscriber has owed an acknowledgement longer than the deadline."""
        return (
            self.acknowledging
            and deadline_seconds > 0
            and self.unacked_since > 0
            and now - self.unacked_since >= deadline_seconds
        )

    def forgive(self) -> None:
        """Forgets what is owed (the subscriber is re-pushed: the resync is owed instead)."""
        self.unacked_since = 0.0
        if self._written is not None:
            self._written.clear()
